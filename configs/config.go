package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "time/tzdata" // zones work the same in a scratch container as on a VM

	"gopkg.in/yaml.v3"

	"github.com/pbirefresh/pbirefresh/scheduler"
)

// Config is a whole configuration file after defaults.
type Config struct {
	// Cloud: public (default) | usgov | usgovhigh | usdod | china | custom |
	// emulator (the built-in emulator, started in-process).
	Cloud     string    `yaml:"cloud"`
	Endpoints Endpoints `yaml:"endpoints"`
	TLS       TLS       `yaml:"tls"`
	// Emulator configures cloud: emulator.
	Emulator    EmulatorSettings       `yaml:"emulator"`
	Secrets     SecretSettings         `yaml:"secrets"`
	Credentials map[string]*Credential `yaml:"credentials"`
	Defaults    JobSettings            `yaml:"defaults"`
	Jobs        []*Job                 `yaml:"jobs"`
	// State is where the daemon keeps its runs.
	State State `yaml:"state"`
	// Limits cap refreshes in flight.
	Limits Limits `yaml:"limits"`
	// ShutdownTimeout bounds the exit after SIGTERM (default 30s).
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// HTTP is the daemon's server: metrics, health, API, status page.
	HTTP HTTP `yaml:"http"`
	// Notify lists where failures, timeouts, lost refreshes and
	// recoveries are reported.
	Notify []*NotifyTarget `yaml:"notify"`

	// Path is the file the configuration came from.
	Path string `yaml:"-"`
}

// State is the daemon's database.
type State struct {
	// Path of the SQLite file (default ./pbirefresh.db).
	Path      string    `yaml:"path"`
	Retention Retention `yaml:"retention"`
}

// Retention bounds the run history kept per job.
type Retention struct {
	Count int      `yaml:"count"` // default 1000 runs per job
	Age   Duration `yaml:"age"`   // default 2160h (90 days)
}

// NotifyTarget is a webhook to tell.
type NotifyTarget struct {
	Name string `yaml:"name"`
	// Type: webhook (generic JSON) | teams (workflow webhook) | slack.
	Type string `yaml:"type"`
	// URL is a secret reference: webhook URLs carry credentials.
	URL *SecretRef `yaml:"url"`
	// On: failure, timeout, lost, recovery (default all four).
	On      []string `yaml:"on"`
	Timeout Duration `yaml:"timeout"` // per attempt, default 10s
	Retries *int     `yaml:"retries"` // default 3
}

// HTTP configures the daemon's HTTP server.
type HTTP struct {
	// Listen is the address (default 127.0.0.1:9464; "off" disables it).
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token every POST must carry; required
	// to listen beyond loopback.
	TokenFile string `yaml:"token_file"`
}

// Loopback reports whether the listen address is on loopback only.
func (h HTTP) Loopback() bool {
	host, _, err := net.SplitHostPort(h.Listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Limits cap refreshes in flight; 0 means no cap.
type Limits struct {
	MaxInFlight   int `yaml:"max_in_flight"`
	PerCredential int `yaml:"per_credential"`
}

// Endpoints are the service roots. Load fills them from the cloud table
// unless overridden; all three URLs are required with cloud: custom.
type Endpoints struct {
	AuthorityHost string `yaml:"authority_host"`
	PowerBIAPI    string `yaml:"powerbi_api"`
	PowerBIScope  string `yaml:"powerbi_scope"`
	// KeyVaultChallengeVerification checks that a Key Vault challenge names
	// the vault's own domain (default true; false only for emulators).
	KeyVaultChallengeVerification *bool `yaml:"keyvault_challenge_verification"`
	// InstanceDiscovery is derived: on for Microsoft's authority hosts,
	// off for a custom one (MSAL would otherwise ask
	// login.microsoftonline.com about it).
	InstanceDiscovery bool `yaml:"-"`
}

// TLS holds the extra trust. TLS verification is never switched off.
type TLS struct {
	// CAFile is a PEM file of extra CA certificates, trusted beside the
	// system roots.
	CAFile string `yaml:"ca_file"`
}

// EmulatorSettings apply to cloud: emulator.
type EmulatorSettings struct {
	// Scenario is an emulator scenario file; empty: the built-in demo.
	Scenario string `yaml:"scenario"`
}

// SecretSettings tune the secret cache.
type SecretSettings struct {
	// CacheTTL is how long a secret value is reused before it is read
	// again (default 1h). A token service answer that the secret is wrong
	// or expired (AADSTS7000215, 7000222) reads it again at once.
	CacheTTL Duration `yaml:"cache_ttl"`
}

// Credential is an Entra ID app registration (service principal) or, for
// the legacy password flow, a user.
type Credential struct {
	TenantID     string       `yaml:"tenant_id"`
	ClientID     string       `yaml:"client_id"`
	ClientSecret *SecretRef   `yaml:"client_secret"`
	Certificate  *Certificate `yaml:"certificate"`
	Username     string       `yaml:"username"`
	Password     *SecretRef   `yaml:"password"`

	// Name is the credential's key under credentials.
	Name string `yaml:"-"`
}

// Certificate is a PEM file holding the certificate and its private key.
type Certificate struct {
	File string `yaml:"file"`
}

// SecretRef says where a secret lives; exactly one source is set.
type SecretRef struct {
	KeyVault *KeyVaultRef `yaml:"keyvault"`
	Env      string       `yaml:"env"`
	File     string       `yaml:"file"`

	inline bool // the secret value was written in the config
}

// KeyVaultRef names a Key Vault secret.
type KeyVaultRef struct {
	VaultURL   string `yaml:"vault_url"`
	SecretName string `yaml:"secret_name"`
	Version    string `yaml:"version"` // empty: the current version
}

// UnmarshalYAML refuses a secret value written inline.
func (s *SecretRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		s.inline = true
		return nil
	}
	type plain SecretRef
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = SecretRef(p)
	return nil
}

// Ref renders the reference as the string the secrets package resolves:
// the Key Vault secret identifier URL, env:NAME or file:PATH.
func (s *SecretRef) Ref() string {
	switch {
	case s == nil:
		return ""
	case s.KeyVault != nil:
		u := strings.TrimSuffix(s.KeyVault.VaultURL, "/") + "/secrets/" + s.KeyVault.SecretName
		if s.KeyVault.Version != "" {
			u += "/" + s.KeyVault.Version
		}
		return u
	case s.Env != "":
		return "env:" + s.Env
	default:
		return "file:" + s.File
	}
}

// JobSettings are the per-job knobs with defaults. A zero value means
// "inherit" in a job and "use the built-in default" under defaults.
type JobSettings struct {
	// Timeout is the client-side deadline of a run (default 2h).
	Timeout Duration `yaml:"timeout"`
	// OnTimeout: cancel (default; DELETEs our own enhanced refresh) | leave.
	OnTimeout string `yaml:"on_timeout"`
	// WhenBusy: wait (default; follow the other refresh to its end, then
	// start ours) | skip | fail.
	WhenBusy string `yaml:"when_busy"`
	Poll     Poll   `yaml:"poll"`
	// HistoryGrace is how long a new refresh may stay out of the history
	// (the service's lag) before it counts as lost (default 2m).
	HistoryGrace Duration `yaml:"history_grace"`

	// Timezone is the IANA zone of the schedule (default UTC).
	Timezone string `yaml:"timezone"`
	// Overlap: skip (default) | queue.
	Overlap string `yaml:"overlap"`
	// CatchUp: after downtime, the newest missed slot within this window
	// runs once (default 0: none).
	CatchUp *Duration `yaml:"catch_up"`
	// Jitter delays each run by up to this much (default 0).
	Jitter *Duration `yaml:"jitter"`
	// JitterMode: random (default, per run) | fixed (a stable per-job offset).
	JitterMode string `yaml:"jitter_mode"`
	// DST: what wall-clock schedules do at daylight-saving changes.
	DST DSTPolicy `yaml:"dst"`
}

// DSTPolicy: gap shift (default) | skip; repeat first (default) | both.
type DSTPolicy struct {
	Gap    string `yaml:"gap"`
	Repeat string `yaml:"repeat"`
}

// Poll bounds the adaptive polling interval.
type Poll struct {
	MinInterval Duration `yaml:"min_interval"` // default 5s
	MaxInterval Duration `yaml:"max_interval"` // default 2m
}

// Job is one dataset refresh definition.
type Job struct {
	Name        string `yaml:"name"`
	Credential  string `yaml:"credential"`
	WorkspaceID string `yaml:"workspace_id"`
	DatasetID   string `yaml:"dataset_id"`
	// Refresh present means an enhanced refresh; absent, a classic one.
	Refresh *Enhanced `yaml:"refresh"`
	// NotifyOption is for classic refreshes only (service principals may
	// only use NoNotification).
	NotifyOption string `yaml:"notify_option"`
	// Schedule is a cron expression (5 fields, optional leading seconds,
	// @daily and friends, @every); empty: run only on demand.
	Schedule string `yaml:"schedule"`
	// Enabled: false pauses the job (default true).
	Enabled     *bool `yaml:"enabled"`
	JobSettings `yaml:",inline"`

	// Parsed is the schedule, parsed by the scheduler's own parser (nil
	// without a schedule).
	Parsed *scheduler.Schedule `yaml:"-"`
	// Location is the job's time zone.
	Location *time.Location `yaml:"-"`

	// Effective is JobSettings with the defaults applied.
	Effective JobSettings `yaml:"-"`
}

// Enhanced are the enhanced refresh options (Premium, PPU, Embedded or
// Fabric capacity).
type Enhanced struct {
	Type               string   `yaml:"type"`        // full | clear_values | calculate | data_only | automatic | defragment
	CommitMode         string   `yaml:"commit_mode"` // transactional | partial_batch
	MaxParallelism     *int     `yaml:"max_parallelism"`
	RetryCount         *int     `yaml:"retry_count"`
	ApplyRefreshPolicy *bool    `yaml:"apply_refresh_policy"`
	EffectiveDate      string   `yaml:"effective_date"` // YYYY-MM-DD
	Timeout            string   `yaml:"timeout"`        // hh:mm:ss, per attempt, service-side
	Objects            []Object `yaml:"objects"`
}

// Object is a table, or one partition of it.
type Object struct {
	Table     string `yaml:"table"`
	Partition string `yaml:"partition"`
}

// Duration is a time.Duration written as a string ("90s", "2h").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if n.Kind != yaml.ScalarNode || n.Decode(&s) != nil {
		return fmt.Errorf("line %d: want a duration such as 30s, 5m or 2h", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// Clouds maps a cloud name to its endpoints (contract §1).
var Clouds = map[string]Endpoints{
	"public":    {AuthorityHost: "https://login.microsoftonline.com", PowerBIAPI: "https://api.powerbi.com", PowerBIScope: "https://analysis.windows.net/powerbi/api/.default"},
	"usgov":     {AuthorityHost: "https://login.microsoftonline.com", PowerBIAPI: "https://api.powerbigov.us", PowerBIScope: "https://analysis.usgovcloudapi.net/powerbi/api/.default"},
	"usgovhigh": {AuthorityHost: "https://login.microsoftonline.us", PowerBIAPI: "https://api.high.powerbigov.us", PowerBIScope: "https://high.analysis.usgovcloudapi.net/powerbi/api/.default"},
	"usdod":     {AuthorityHost: "https://login.microsoftonline.us", PowerBIAPI: "https://api.mil.powerbigov.us", PowerBIScope: "https://mil.analysis.usgovcloudapi.net/powerbi/api/.default"},
	"china":     {AuthorityHost: "https://login.chinacloudapi.cn", PowerBIAPI: "https://api.powerbi.cn", PowerBIScope: "https://analysis.chinacloudapi.cn/powerbi/api/.default"},
}

// microsoftHosts are authority hosts MSAL knows; instance discovery stays
// on for them.
var microsoftHosts = map[string]bool{
	"https://login.microsoftonline.com": true, "https://login.microsoftonline.us": true,
	"https://login.chinacloudapi.cn": true, "https://login.partner.microsoftonline.cn": true,
}

// Load reads, defaults and validates a configuration file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Msg: fmt.Sprintf("read config: %v", err), Fix: "check the path given to --config"}
	}
	return Parse(path, b)
}

// Parse is Load on bytes; name labels the messages.
func Parse(name string, b []byte) (*Config, error) {
	// The node tree (for line:col in messages) is built only when there is
	// something to report: a 10,000-job file then costs one parse, not two.
	root := func() *yaml.Node {
		var n yaml.Node
		yaml.Unmarshal(b, &n)
		return &n
	}
	cfg := &Config{Path: name}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeError(name, root(), err)
	}
	cfg.Path = name
	pos := &positions{root: root}
	if errs := cfg.defaultAndValidate(pos); len(errs) > 0 {
		sortByPosition(errs)
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

var posRE = regexp.MustCompile(`^[^:]*:(\d+):(\d+):`)

// sortByPosition orders messages by line and column (stable otherwise).
func sortByPosition(errs []error) {
	key := func(e error) (int, int) {
		m := posRE.FindStringSubmatch(e.Error())
		if m == nil {
			return 0, 0
		}
		l, _ := strconv.Atoi(m[1])
		c, _ := strconv.Atoi(m[2])
		return l, c
	}
	sort.SliceStable(errs, func(i, j int) bool {
		li, ci := key(errs[i])
		lj, cj := key(errs[j])
		return li < lj || li == lj && ci < cj
	})
}

// Error is one configuration problem with its fix.
type Error struct {
	Msg string
	Fix string
}

func (e *Error) Error() string {
	if e.Fix == "" {
		return e.Msg
	}
	return e.Msg + "; " + e.Fix
}

// Hint returns the fix.
func (e *Error) Hint() string { return e.Fix }

var (
	yamlLineRE     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownFieldRE = regexp.MustCompile(`field (\S+) not found in type`)
)

// decodeError rewrites yaml.v3's messages ("line 3: field shedule not
// found in type configs.Job") into "file:3:5: unknown key ..." lines.
func decodeError(name string, root *yaml.Node, err error) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var errs []error
	for _, m := range msgs {
		// One problem per line: yaml.v3 quotes values, newlines and all.
		m = strings.Join(strings.Fields(m), " ")
		sm := yamlLineRE.FindStringSubmatch(m)
		if sm == nil {
			errs = append(errs, &Error{Msg: name + ": " + strings.TrimPrefix(m, "yaml: "), Fix: "fix the YAML"})
			continue
		}
		line, msg := sm[1], sm[2]
		fix := "fix the YAML syntax"
		if strings.Contains(msg, "is not a duration") {
			fix = "write durations like 30s, 5m or 2h"
		}
		if inner := yamlLineRE.FindStringSubmatch(msg); inner != nil { // our own UnmarshalYAML errors
			msg, fix = inner[2], "check the value against configs/example.yaml"
			if strings.Contains(msg, "duration") {
				fix = "write durations like 30s, 5m or 2h"
			}
		}
		col := ""
		if f := unknownFieldRE.FindStringSubmatch(msg); f != nil {
			msg = fmt.Sprintf("unknown key %q", f[1])
			fix = "remove it or correct its spelling (configs/example.yaml lists every key)"
			col = keyColumn(root, line, f[1])
		} else if te != nil {
			fix = "check the value against configs/example.yaml"
		}
		if col == "" {
			col = "1"
		}
		errs = append(errs, &Error{Msg: fmt.Sprintf("%s:%s:%s: %s", name, line, col, msg), Fix: fix})
	}
	return errors.Join(errs...)
}

// keyColumn finds the column of a mapping key on a line.
func keyColumn(n *yaml.Node, line, key string) string {
	if n == nil {
		return ""
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Value == key && strconv.Itoa(k.Line) == line {
				return strconv.Itoa(k.Column)
			}
		}
	}
	for _, c := range n.Content {
		if col := keyColumn(c, line, key); col != "" {
			return col
		}
	}
	return ""
}

// positions maps key paths ("jobs[0].refresh.type") to "line:col",
// parsing the file's node tree on first use.
type positions struct {
	root func() *yaml.Node
	m    map[string]string
}

func (p *positions) record(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			p.record(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			kp := k.Value
			if path != "" {
				kp = path + "." + k.Value
			}
			p.m[kp] = fmt.Sprintf("%d:%d", v.Line, v.Column)
			p.record(v, kp)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ip := fmt.Sprintf("%s[%d]", path, i)
			p.m[ip] = fmt.Sprintf("%d:%d", c.Line, c.Column)
			p.record(c, ip)
		}
	}
}

// at returns the position of path or of its nearest present parent.
func (p *positions) at(path string) string {
	if p.m == nil {
		p.m = map[string]string{}
		p.record(p.root(), "")
	}
	for path != "" {
		if lc, ok := p.m[path]; ok {
			return lc
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return "1:1"
}

var (
	guidRE     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	jobNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
	envNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	timeoutRE  = regexp.MustCompile(`^([0-1]?[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$`)
	secretName = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
)

// Enhanced refresh option values: config spelling → service spelling.
var (
	refreshTypes = map[string]string{"full": "Full", "clear_values": "ClearValues", "calculate": "Calculate", "data_only": "DataOnly", "automatic": "Automatic", "defragment": "Defragment"}
	commitModes  = map[string]string{"transactional": "Transactional", "partial_batch": "PartialBatch"}
	notifyOpts   = map[string]bool{"NoNotification": true, "MailOnFailure": true, "MailOnCompletion": true}
)

// ServiceType returns the service's spelling of a refresh type.
func ServiceType(t string) string { return refreshTypes[t] }

// ServiceCommitMode returns the service's spelling of a commit mode.
func ServiceCommitMode(m string) string { return commitModes[m] }

func keys[V any](m map[string]V) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, " | ")
}

// problems collects validation errors as "file:line:col: who: problem",
// each with its fix.
type problems struct {
	file string
	pos  *positions
	errs []error
}

func (p *problems) add(path, who, fix, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if who != "" {
		msg = who + ": " + msg
	}
	p.errs = append(p.errs, &Error{Msg: fmt.Sprintf("%s:%s: %s", p.file, p.pos.at(path), msg), Fix: fix})
}

func (c *Config) defaultAndValidate(pos *positions) []error {
	probs := &problems{file: c.Path, pos: pos}
	bad := probs.add

	// Cloud and endpoints.
	if c.Cloud == "" {
		c.Cloud = "public"
	}
	ep := c.Endpoints
	switch c.Cloud {
	case "custom":
		if ep.AuthorityHost == "" || ep.PowerBIAPI == "" || ep.PowerBIScope == "" {
			bad("endpoints", "", "set endpoints.authority_host, endpoints.powerbi_api and endpoints.powerbi_scope", "cloud custom needs all three endpoints")
		}
	case "emulator":
		// Filled in by cmd/pbirefresh once the emulator is listening.
	default:
		base, ok := Clouds[c.Cloud]
		if !ok {
			bad("cloud", "", "use one of public | usgov | usgovhigh | usdod | china | custom | emulator", "unknown cloud %q", c.Cloud)
			break
		}
		if ep.AuthorityHost == "" {
			ep.AuthorityHost = base.AuthorityHost
		}
		if ep.PowerBIAPI == "" {
			ep.PowerBIAPI = base.PowerBIAPI
		}
		if ep.PowerBIScope == "" {
			ep.PowerBIScope = base.PowerBIScope
		}
	}
	for _, f := range []struct{ key, val string }{{"authority_host", ep.AuthorityHost}, {"powerbi_api", ep.PowerBIAPI}} {
		if f.val != "" && !strings.HasPrefix(f.val, "https://") {
			bad("endpoints."+f.key, "", "use an https:// URL (the Azure SDKs refuse plain http)", "%s %q is not an https URL", f.key, f.val)
		}
	}
	if ep.PowerBIScope != "" && !strings.HasSuffix(ep.PowerBIScope, "/.default") {
		bad("endpoints.powerbi_scope", "", "app-only tokens need the resource's /.default scope, e.g. https://analysis.windows.net/powerbi/api/.default", "powerbi_scope %q does not end in /.default", ep.PowerBIScope)
	}
	ep.AuthorityHost = strings.TrimSuffix(ep.AuthorityHost, "/")
	ep.PowerBIAPI = strings.TrimSuffix(ep.PowerBIAPI, "/")
	ep.InstanceDiscovery = microsoftHosts[strings.ToLower(ep.AuthorityHost)]
	if ep.KeyVaultChallengeVerification == nil {
		v := c.Cloud != "emulator"
		ep.KeyVaultChallengeVerification = &v
	}
	c.Endpoints = ep
	if c.Cloud != "emulator" && c.Emulator.Scenario != "" {
		bad("emulator", "", "remove the emulator section or set cloud: emulator", "emulator settings apply only with cloud: emulator")
	}
	if c.TLS.CAFile != "" {
		if _, err := os.Stat(c.TLS.CAFile); err != nil {
			bad("tls.ca_file", "", "point tls.ca_file at a PEM file of CA certificates", "cannot read ca_file: %v", err)
		}
	}
	if c.Secrets.CacheTTL == 0 {
		c.Secrets.CacheTTL = Duration(time.Hour)
	}

	// Credentials.
	credNames := make([]string, 0, len(c.Credentials))
	for name := range c.Credentials {
		credNames = append(credNames, name)
	}
	sort.Strings(credNames)
	for _, name := range credNames {
		cr := c.Credentials[name]
		p := "credentials." + name
		who := fmt.Sprintf("credential %q", name)
		if cr == nil {
			bad(p, who, "give tenant_id, client_id and one of client_secret, certificate or username + password", "is empty")
			continue
		}
		cr.Name = name
		if !guidRE.MatchString(cr.TenantID) && !strings.Contains(cr.TenantID, ".") {
			bad(p+".tenant_id", who, "use the Directory (tenant) ID from the app registration's overview page", "tenant_id %q is not a GUID or a domain", cr.TenantID)
		}
		if !guidRE.MatchString(cr.ClientID) {
			bad(p+".client_id", who, "use the Application (client) ID from the app registration's overview page", "client_id %q is not a GUID", cr.ClientID)
		}
		kinds := 0
		if cr.ClientSecret != nil {
			kinds++
			c.checkSecretRef(probs, p+".client_secret", who, cr.ClientSecret)
		}
		if cr.Certificate != nil {
			kinds++
			if cr.Certificate.File == "" {
				bad(p+".certificate.file", who, "point file at a PEM holding the certificate and its private key", "certificate needs a file")
			}
		}
		if cr.Username != "" || cr.Password != nil {
			kinds++
			if cr.Username == "" || cr.Password == nil {
				bad(p, who, "the password flow needs both username and password (a secret reference)", "username and password go together")
			} else {
				c.checkSecretRef(probs, p+".password", who, cr.Password)
			}
		}
		if kinds != 1 {
			bad(p, who, "keep exactly one of client_secret, certificate or username + password", "has %d ways to sign in", kinds)
		}
	}

	// Defaults.
	d := &c.Defaults
	if d.Timeout == 0 {
		d.Timeout = Duration(2 * time.Hour)
	}
	if d.OnTimeout == "" {
		d.OnTimeout = "cancel"
	}
	if d.WhenBusy == "" {
		d.WhenBusy = "wait"
	}
	if d.Poll.MinInterval == 0 {
		d.Poll.MinInterval = Duration(5 * time.Second)
	}
	if d.Poll.MaxInterval == 0 {
		d.Poll.MaxInterval = Duration(2 * time.Minute)
	}
	if d.HistoryGrace == 0 {
		d.HistoryGrace = Duration(2 * time.Minute)
	}
	if d.Timezone == "" {
		d.Timezone = "UTC"
	}
	if d.Overlap == "" {
		d.Overlap = "skip"
	}
	zero := Duration(0)
	if d.CatchUp == nil {
		d.CatchUp = &zero
	}
	if d.Jitter == nil {
		d.Jitter = &zero
	}
	if d.JitterMode == "" {
		d.JitterMode = "random"
	}
	if d.DST.Gap == "" {
		d.DST.Gap = "shift"
	}
	if d.DST.Repeat == "" {
		d.DST.Repeat = "first"
	}
	if c.State.Path == "" {
		c.State.Path = "pbirefresh.db"
	}
	if c.State.Retention.Count == 0 {
		c.State.Retention.Count = 1000
	}
	if c.State.Retention.Count < 0 {
		bad("state.retention.count", "", "keep at least 1 run per job", "retention count %d is negative", c.State.Retention.Count)
	}
	if c.State.Retention.Age == 0 {
		c.State.Retention.Age = Duration(90 * 24 * time.Hour)
	}
	if c.Limits.MaxInFlight < 0 || c.Limits.PerCredential < 0 {
		bad("limits", "", "use 0 for no cap, or a positive number", "limits must not be negative")
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(30 * time.Second)
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:9464"
	}
	if c.HTTP.Listen != "off" {
		if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil || port == "" {
			bad("http.listen", "", "write host:port, e.g. 127.0.0.1:9464, or off", "listen %q is not host:port", c.HTTP.Listen)
		} else if !c.HTTP.Loopback() && c.HTTP.TokenFile == "" {
			bad("http.listen", "", "set http.token_file to a file holding a long random token (POSTs must carry it), or listen on 127.0.0.1",
				"listening on %s, beyond loopback, needs a token_file", c.HTTP.Listen)
		}
	}
	if c.HTTP.TokenFile != "" {
		if b, err := os.ReadFile(c.HTTP.TokenFile); err != nil {
			bad("http.token_file", "", "create the file (readable by the daemon) with a long random token, e.g. openssl rand -hex 32", "cannot read token_file: %v", err)
		} else if len(strings.TrimSpace(string(b))) < 16 {
			bad("http.token_file", "", "put a token of at least 16 characters in it, e.g. openssl rand -hex 32", "token_file holds a token shorter than 16 characters")
		}
	}
	c.checkSettings(probs, "defaults", "", d)

	// Notifications.
	targets := map[string]bool{}
	for i, n := range c.Notify {
		p := fmt.Sprintf("notify[%d]", i)
		if n == nil {
			bad(p, "", "give the target a name, type and url", "notification target is empty")
			continue
		}
		who := fmt.Sprintf("notify target %q", n.Name)
		if n.Name == "" || targets[n.Name] {
			bad(p+".name", who, "give every target its own name", "name is missing or used twice")
		}
		targets[n.Name] = true
		switch n.Type {
		case "webhook", "teams", "slack":
		default:
			bad(p+".type", who, "use webhook, teams or slack", "unknown type %q", n.Type)
		}
		if n.URL == nil {
			bad(p+".url", who, "reference the webhook URL: {env: VAR}, {file: PATH} or {keyvault: {...}}", "url is missing")
		} else {
			c.checkSecretRef(probs, p+".url", who, n.URL)
		}
		if len(n.On) == 0 {
			n.On = []string{"failure", "timeout", "lost", "recovery"}
		}
		for _, e := range n.On {
			if e != "failure" && e != "timeout" && e != "lost" && e != "recovery" {
				bad(p+".on", who, "use failure, timeout, lost and recovery", "unknown event %q", e)
			}
		}
		if n.Timeout == 0 {
			n.Timeout = Duration(10 * time.Second)
		}
		if n.Retries == nil {
			three := 3
			n.Retries = &three
		} else if *n.Retries < 0 || *n.Retries > 10 {
			bad(p+".retries", who, "use 0 to 10", "retries %d is out of range", *n.Retries)
		}
	}

	// Jobs.
	names := map[string]int{}
	for i, j := range c.Jobs {
		p := fmt.Sprintf("jobs[%d]", i)
		if j == nil {
			bad(p, "", "give the job a name, credential, workspace_id and dataset_id", "job is empty")
			continue
		}
		who := fmt.Sprintf("job %q", j.Name)
		if !jobNameRE.MatchString(j.Name) {
			bad(p+".name", who, "use letters, digits, '.', '_' or '-' (up to 100)", "name %q is not a valid job name", j.Name)
		}
		if prev, dup := names[j.Name]; dup {
			bad(p+".name", who, "give every job its own name", "name is also used by jobs[%d]", prev)
		}
		names[j.Name] = i
		if _, ok := c.Credentials[j.Credential]; !ok {
			bad(p+".credential", who, fmt.Sprintf("use one of the names under credentials (%s)", keys(c.Credentials)), "unknown credential %q", j.Credential)
		}
		if !guidRE.MatchString(j.WorkspaceID) {
			bad(p+".workspace_id", who, "copy the workspace id from the URL app.powerbi.com/groups/<workspace_id>/...", "workspace_id %q is not a GUID", j.WorkspaceID)
		}
		if !guidRE.MatchString(j.DatasetID) {
			bad(p+".dataset_id", who, "copy the dataset id from the URL .../datasets/<dataset_id>/details", "dataset_id %q is not a GUID", j.DatasetID)
		}
		if j.NotifyOption != "" && !notifyOpts[j.NotifyOption] {
			bad(p+".notify_option", who, "use NoNotification, MailOnFailure or MailOnCompletion", "unknown notify_option %q", j.NotifyOption)
		}
		if j.Refresh != nil {
			if j.NotifyOption != "" {
				bad(p+".notify_option", who, "remove notify_option: it applies only to classic refreshes, and the service refuses it with enhanced options", "notify_option cannot be combined with refresh (enhanced) options")
			}
			c.checkEnhanced(probs, p+".refresh", who, j.Refresh)
		}
		c.checkSettings(probs, p, who, &j.JobSettings)
		j.Effective = merge(j.JobSettings, *d)
		if j.Enabled == nil {
			yes := true
			j.Enabled = &yes
		}
		e := j.Effective
		loc, err := time.LoadLocation(e.Timezone)
		if err != nil || e.Timezone == "Local" {
			where := p + ".timezone"
			if j.Timezone == "" {
				where = "defaults.timezone"
			}
			bad(where, who, "use an IANA zone name such as Europe/Berlin or America/New_York", "unknown time zone %q", e.Timezone)
			loc = time.UTC
		}
		j.Location = loc
		if j.Schedule != "" {
			sch, err := scheduler.Parse(j.Schedule, loc, scheduler.DST{Gap: e.DST.Gap, Repeat: e.DST.Repeat})
			if err != nil {
				bad(p+".schedule", who, "write 5 fields (minute hour day-of-month month day-of-week), an optional leading seconds field, @daily and friends, or @every 15m", "schedule %q: %v", j.Schedule, err)
			}
			j.Parsed = sch
		}
		if e.Overlap != "skip" && e.Overlap != "queue" {
			bad(p+".overlap", who, "use skip or queue", "unknown overlap %q", e.Overlap)
		}
		if e.JitterMode != "random" && e.JitterMode != "fixed" {
			bad(p+".jitter_mode", who, "use random or fixed", "unknown jitter_mode %q", e.JitterMode)
		}
		if e.DST.Gap != "shift" && e.DST.Gap != "skip" {
			bad(p+".dst.gap", who, "use shift or skip", "unknown dst.gap %q", e.DST.Gap)
		}
		if e.DST.Repeat != "first" && e.DST.Repeat != "both" {
			bad(p+".dst.repeat", who, "use first or both", "unknown dst.repeat %q", e.DST.Repeat)
		}
		if j.Effective.Poll.MinInterval > j.Effective.Poll.MaxInterval {
			bad(p+".poll", who, "make poll.min_interval at most poll.max_interval", "poll.min_interval %s is above poll.max_interval %s", j.Effective.Poll.MinInterval.D(), j.Effective.Poll.MaxInterval.D())
		}
	}
	return probs.errs
}

func merge(j, d JobSettings) JobSettings {
	if j.Timeout == 0 {
		j.Timeout = d.Timeout
	}
	if j.OnTimeout == "" {
		j.OnTimeout = d.OnTimeout
	}
	if j.WhenBusy == "" {
		j.WhenBusy = d.WhenBusy
	}
	if j.Poll.MinInterval == 0 {
		j.Poll.MinInterval = d.Poll.MinInterval
	}
	if j.Poll.MaxInterval == 0 {
		j.Poll.MaxInterval = d.Poll.MaxInterval
	}
	if j.HistoryGrace == 0 {
		j.HistoryGrace = d.HistoryGrace
	}
	if j.Timezone == "" {
		j.Timezone = d.Timezone
	}
	if j.Overlap == "" {
		j.Overlap = d.Overlap
	}
	if j.CatchUp == nil {
		j.CatchUp = d.CatchUp
	}
	if j.Jitter == nil {
		j.Jitter = d.Jitter
	}
	if j.JitterMode == "" {
		j.JitterMode = d.JitterMode
	}
	if j.DST.Gap == "" {
		j.DST.Gap = d.DST.Gap
	}
	if j.DST.Repeat == "" {
		j.DST.Repeat = d.DST.Repeat
	}
	return j
}

func (c *Config) checkSettings(probs *problems, p, who string, s *JobSettings) {
	bad := func(path, fix, format string, a ...any) { probs.add(path, who, fix, format, a...) }
	if s.OnTimeout != "" && s.OnTimeout != "cancel" && s.OnTimeout != "leave" {
		bad(p+".on_timeout", "use cancel or leave", "unknown on_timeout %q", s.OnTimeout)
	}
	if s.WhenBusy != "" && s.WhenBusy != "wait" && s.WhenBusy != "skip" && s.WhenBusy != "fail" {
		bad(p+".when_busy", "use wait, skip or fail", "unknown when_busy %q", s.WhenBusy)
	}
	if s.Poll.MinInterval != 0 && s.Poll.MinInterval.D() < time.Second {
		bad(p+".poll.min_interval", "use 1s or more: Power BI throttles callers that poll faster", "poll.min_interval %s is below 1s", s.Poll.MinInterval.D())
	}
	if s.Timeout != 0 && s.Timeout.D() < time.Minute {
		bad(p+".timeout", "give the refresh at least a minute", "timeout %s is below 1m", s.Timeout.D())
	}
	return
}

func (c *Config) checkSecretRef(probs *problems, p, who string, s *SecretRef) {
	bad := func(path, fix, format string, a ...any) { probs.add(path, who, fix, format, a...) }
	if s.inline {
		// The value itself is never echoed.
		bad(p, "store it in Key Vault (keyvault: {vault_url, secret_name}), an environment variable (env: NAME) or a file (file: /run/credentials/...) and reference it here",
			"a secret value is written in the config")
		return
	}
	n := 0
	if s.KeyVault != nil {
		n++
		kv := s.KeyVault
		if !strings.HasPrefix(kv.VaultURL, "https://") && !(c.Cloud == "emulator" && kv.VaultURL == "") {
			bad(p+".keyvault.vault_url", "use the vault's https URL, e.g. https://contoso.vault.azure.net", "vault_url %q is not an https URL", kv.VaultURL)
		}
		if !secretName.MatchString(kv.SecretName) {
			bad(p+".keyvault.secret_name", "use the secret's name as shown in the vault (letters, digits, dashes)", "secret_name %q is not a Key Vault secret name", kv.SecretName)
		}
	}
	if s.Env != "" {
		n++
		if !envNameRE.MatchString(s.Env) {
			bad(p+".env", "name an environment variable (letters, digits, underscores)", "env %q is not a variable name", s.Env)
		}
	}
	if s.File != "" {
		n++
	}
	if n != 1 {
		bad(p, "keep exactly one of keyvault, env or file", "has %d secret sources", n)
	}
	return
}

func (c *Config) checkEnhanced(probs *problems, p, who string, e *Enhanced) {
	bad := func(path, fix, format string, a ...any) { probs.add(path, who, fix, format, a...) }
	if e.Type != "" && refreshTypes[e.Type] == "" {
		bad(p+".type", "use "+keys(refreshTypes), "unknown refresh type %q", e.Type)
	}
	if e.CommitMode != "" && commitModes[e.CommitMode] == "" {
		bad(p+".commit_mode", "use transactional or partial_batch", "unknown commit_mode %q", e.CommitMode)
	}
	if e.MaxParallelism != nil && (*e.MaxParallelism < 1 || *e.MaxParallelism > 1000) {
		bad(p+".max_parallelism", "use 1 to 1000 (the service's default is 10)", "max_parallelism %d is out of range", *e.MaxParallelism)
	}
	if e.RetryCount != nil && (*e.RetryCount < 0 || *e.RetryCount > 100) {
		bad(p+".retry_count", "use 0 to 100", "retry_count %d is out of range", *e.RetryCount)
	}
	if e.CommitMode == "partial_batch" && (e.ApplyRefreshPolicy == nil || *e.ApplyRefreshPolicy) {
		bad(p+".commit_mode", "set apply_refresh_policy: false, or use commit_mode: transactional (the service fails partial_batch with a refresh policy, and apply_refresh_policy defaults to true)",
			"partial_batch cannot be used with apply_refresh_policy true")
	}
	if e.EffectiveDate != "" {
		if _, err := time.Parse("2006-01-02", e.EffectiveDate); err != nil {
			bad(p+".effective_date", "write the date as YYYY-MM-DD", "effective_date %q is not a date", e.EffectiveDate)
		}
	}
	if e.Timeout != "" && !timeoutRE.MatchString(e.Timeout) {
		bad(p+".timeout", "write it as hh:mm:ss, at most 23:59:59 (the service caps a refresh with its retries at 24 h)", "service timeout %q is not hh:mm:ss under 24 h", e.Timeout)
	}
	for i, o := range e.Objects {
		if o.Table == "" {
			bad(fmt.Sprintf("%s.objects[%d]", p, i), "name the table (and optionally its partition)", "object without a table")
		}
	}
	return
}

// EmulatorVault reports whether a Key Vault reference means the embedded
// emulator's vault (cloud: emulator with no vault_url).
func (s *SecretRef) EmulatorVault() bool {
	return s != nil && s.KeyVault != nil && s.KeyVault.VaultURL == ""
}

// Job returns the job with the given name, or nil.
func (c *Config) Job(name string) *Job {
	for _, j := range c.Jobs {
		if j != nil && j.Name == name {
			return j
		}
	}
	return nil
}

// JobNames lists the jobs' names, for error messages.
func (c *Config) JobNames() string {
	var n []string
	for _, j := range c.Jobs {
		if j != nil {
			n = append(n, j.Name)
		}
	}
	return strings.Join(n, ", ")
}
