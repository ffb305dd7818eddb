package configs

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	_ "time/tzdata" // zones work the same in a scratch container as on a VM

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/internal/pgurl"
	"github.com/pbirefresh/pbirefresh/internal/strictyaml"
	"github.com/pbirefresh/pbirefresh/notify"
	"github.com/pbirefresh/pbirefresh/scheduler"
)

var (
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

// quote writes a user's value into a message, cut to a readable length.
func quote(s string) string { return strictyaml.Quote(s) }

// validator applies defaults and collects every problem of one file.
type validator struct {
	c     *Config
	f     *strictyaml.File
	opts  Options
	probs strictyaml.Problems
}

// add records a problem at the value of a key path ("jobs[0].refresh.type").
func (v *validator) add(path, who, fix, format string, a ...any) {
	v.probs = append(v.probs, v.f.Problem(path, who, fix, format, a...))
}

// enum checks a value against its vocabulary: the message and the fix come
// from the same list, so they cannot drift. An empty value is "not set".
func enum[T ~string](v *validator, path, who, key string, val T, values []T) bool {
	if val == "" || pbirefresh.Valid(val, values) {
		return true
	}
	v.add(path, who, "use "+pbirefresh.OneOf(values), "unknown %s %s", key, quote(string(val)))
	return false
}

func (v *validator) run() {
	c := v.c
	pathSet := c.State.Path != ""
	merge(c, DefaultConfig)
	if c.State.Postgres != nil {
		if pathSet {
			v.add("state.path", "", "keep state.path (SQLite, one daemon) or state.postgres (PostgreSQL, any number of replicas), not both", "state.path and state.postgres are both set")
		}
		c.State.Path = ""
	}
	v.resolveCloud()
	v.credentials()
	v.state()
	v.http()
	v.notify()
	defaultsOK := v.settings("defaults", "", &c.Defaults)
	merge(&c.Defaults, DefaultJobSettings)
	if defaultsOK.timezone {
		if _, err := time.LoadLocation(c.Defaults.Timezone); err != nil || c.Defaults.Timezone == "Local" {
			v.add("defaults.timezone", "", zoneFix, "unknown time zone %s", quote(c.Defaults.Timezone))
			defaultsOK.timezone = false
		}
	}
	if p := c.Defaults.Poll; p.MinInterval > p.MaxInterval {
		v.add("defaults.poll", "", pollFix, "poll.min_interval %s is above poll.max_interval %s", p.MinInterval.D(), p.MaxInterval.D())
	}
	v.jobs(defaultsOK)
	v.dependencies()
	if len(c.Jobs) == 0 && !v.opts.AllowNoJobs {
		v.add("jobs", "", "add a job under jobs (configs/example.yaml shows one), or write them with `pbirefresh import`", "the configuration has no jobs: the daemon would do nothing")
	}
}

func (v *validator) credentials() {
	c := v.c
	names := make([]string, 0, len(c.Credentials))
	for name := range c.Credentials {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cr := c.Credentials[name]
		p := "credentials." + name
		who := "credential " + quote(name)
		if cr == nil {
			v.add(p, who, "give tenant_id, client_id and one of client_secret, certificate or username + password", "is empty")
			continue
		}
		cr.Name = name
		if !strictyaml.IsGUID(cr.TenantID) && !strings.Contains(cr.TenantID, ".") {
			v.add(p+".tenant_id", who, "use the Directory (tenant) ID from the app registration's overview page", "tenant_id %s is not a GUID or a domain", quote(cr.TenantID))
		}
		if !strictyaml.IsGUID(cr.ClientID) {
			v.add(p+".client_id", who, "use the Application (client) ID from the app registration's overview page", "client_id %s is not a GUID", quote(cr.ClientID))
		}
		kinds := 0
		if cr.ClientSecret != nil {
			kinds++
			v.secretRef(p+".client_secret", who, cr.ClientSecret)
		}
		if cr.Certificate != nil {
			kinds++
			if cr.Certificate.File == "" {
				v.add(p+".certificate.file", who, "point file at a PEM holding the certificate and its private key", "certificate needs a file")
			}
		}
		if cr.Username != "" || cr.Password != nil {
			kinds++
			if cr.Username == "" || cr.Password == nil {
				v.add(p, who, "the password flow needs both username and password (a secret reference)", "username and password go together")
			} else {
				v.secretRef(p+".password", who, cr.Password)
			}
		}
		if kinds != 1 {
			v.add(p, who, "keep exactly one of client_secret, certificate or username + password", "has %d ways to sign in", kinds)
		}
	}
}

func (v *validator) secretRef(p, who string, s *SecretRef) {
	if s.inline {
		// The value itself is never echoed.
		v.add(p, who, "store it in Key Vault (keyvault: {vault_url, secret_name}), an environment variable (env: NAME) or a file (file: /run/credentials/...) and reference it here",
			"a secret value is written in the config")
		return
	}
	n := 0
	if kv := s.KeyVault; kv != nil {
		n++
		if !strings.HasPrefix(kv.VaultURL, "https://") && !(v.c.Cloud == "emulator" && kv.VaultURL == "") {
			v.add(p+".keyvault.vault_url", who, "use the vault's https URL, e.g. https://contoso.vault.azure.net", "vault_url %s is not an https URL", quote(kv.VaultURL))
		}
		if !secretName.MatchString(kv.SecretName) {
			v.add(p+".keyvault.secret_name", who, "use the secret's name as shown in the vault (letters, digits, dashes)", "secret_name %s is not a Key Vault secret name", quote(kv.SecretName))
		}
	}
	if s.Env != "" {
		n++
		if !envNameRE.MatchString(s.Env) {
			v.add(p+".env", who, "name an environment variable (letters, digits, underscores)", "env %s is not a variable name", quote(s.Env))
		}
	}
	if s.File != "" {
		n++
	}
	if n != 1 {
		v.add(p, who, "keep exactly one of keyvault, env or file", "has %d secret sources", n)
	}
}

func (v *validator) state() {
	c := v.c
	if pg := c.State.Postgres; pg != nil {
		v.postgres(pg)
	}
	if c.State.Retention.Count < 0 {
		v.add("state.retention.count", "", "keep at least 1 run per job", "retention count %d is negative", c.State.Retention.Count)
	}
	if c.Limits.MaxInFlight < 0 || c.Limits.PerCredential < 0 {
		v.add("limits", "", "use 0 for no cap, or a positive number", "limits must not be negative")
	}
}

// pgURLFix is the fix for a state.postgres.url that is not a libpq URL.
const pgURLFix = "write a libpq URL: postgres://user@host:5432/database?sslmode=verify-full&sslrootcert=/path/ca.pem"

// pgTLSFix is the fix for a connection that does not verify the server.
const pgTLSFix = "use sslmode=verify-full in the URL: ...?sslmode=verify-full&sslrootcert=/path/ca.pem (sslrootcert: the server's CA; without it, the system's roots verify the server); " +
	"only a database on this host (localhost, 127.0.0.1, ::1, a socket) may do without verification"

func (v *validator) postgres(pg *Postgres) {
	const p = "state.postgres"
	c, err := pgurl.Parse(pg.URL)
	switch {
	case pg.URL == "":
		v.add(p+".url", "", pgURLFix, "url is missing")
	case err != nil:
		v.add(p+".url", "", pgURLFix, "url %s is not a postgres:// URL: %v", quote(pgurl.Redact(pg.URL)), err)
	case c.Hosts == nil:
		v.add(p+".url", "", pgURLFix+"; for a local socket, postgres://user@/database?host=/var/run/postgresql", "url %s names no host", quote(pgurl.Redact(pg.URL)))
	}
	if c.Password {
		// The value itself is never echoed.
		v.add(p+".url", "", "remove the password from the URL and reference it: password: {env: PGPASSWORD_VAR} or {file: ...} or {keyvault: {...}}", "a password is written in the URL")
	}
	if err == nil && c.Hosts != nil {
		if problem, fix := pgTLS(c); problem != "" {
			v.add(p+".url", "", fix, "%s", problem)
		}
	}
	if pg.Password != nil {
		v.secretRef(p+".password", "", pg.Password)
		if pg.EntraToken {
			v.add(p+".entra_token", "", "keep one of password and entra_token", "password and entra_token are both set")
		}
	}
	if pg.LeaseTTL == 0 {
		pg.LeaseTTL = Duration(15 * time.Second)
	} else if pg.LeaseTTL.D() < 3*time.Second {
		v.add(p+".lease_ttl", "", "use 3s or more (15s is the default: takeover within about 20 s)", "lease_ttl %s is below 3s", pg.LeaseTTL.D())
	}
}

// pgTLS says what is wrong with a connection's TLS, and the fix: an
// unknown sslmode, or, for a database beyond this host, anything short of
// verifying the server's certificate and name. libpq's default (prefer)
// and allow fall back to clear text and trust any certificate; require
// encrypts but trusts any certificate (with sslrootcert, any its CA
// signed); verify-ca trusts any certificate its CA signed, whatever its
// name. TLS verification is never switched off; a database on this host
// may do without it. "": nothing.
func pgTLS(c pgurl.Conn) (problem, fix string) {
	mode, written := c.Params["sslmode"], "sslmode="+c.Params["sslmode"]
	if c.SSLTrue {
		written = "ssl=true (sslmode=require)"
	}
	if mode == "" && c.Params["sslrootcert"] == "system" {
		mode = "verify-full" // as libpq and pgx do
	}
	switch mode {
	case "", "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		return fmt.Sprintf("unknown sslmode %s", quote(mode)), "use sslmode=verify-full (libpq's modes: disable, allow, prefer, require, verify-ca, verify-full)"
	}
	var remote []string
	for _, h := range c.Hosts {
		if !localHost(h) {
			remote = append(remote, quote(h))
		}
	}
	if len(remote) == 0 || mode == "verify-full" {
		return "", ""
	}
	hosts := strings.Join(remote, ", ")
	switch mode {
	case "":
		problem = fmt.Sprintf("url sets no sslmode: libpq's default (prefer) falls back to clear text and never verifies the certificate of %s", hosts)
	case "disable":
		problem = fmt.Sprintf("sslmode=disable sends the state database's traffic in clear text (to %s)", hosts)
	case "allow":
		problem = fmt.Sprintf("sslmode=allow tries clear text first and never verifies the certificate of %s", hosts)
	case "prefer":
		problem = fmt.Sprintf("sslmode=prefer falls back to clear text and never verifies the certificate of %s", hosts)
	case "require":
		problem = fmt.Sprintf("%s encrypts but checks neither that the certificate names %s nor, without sslrootcert, who signed it: whoever is on the path can pose as the database", written, hosts)
	case "verify-ca":
		problem = fmt.Sprintf("sslmode=verify-ca does not check the name in the certificate of %s: any certificate its CA signed passes", hosts)
	}
	return problem, pgTLSFix
}

// localHost: a host on this machine: loopback, or a socket directory (a
// path), or "" (libpq's default: a socket, else localhost).
func localHost(h string) bool {
	if h == "" || strings.HasPrefix(h, "/") || len(h) >= 3 && h[0] >= 'A' && h[0] <= 'Z' && h[1] == ':' && h[2] == '\\' {
		return true
	}
	return loopbackHost(h)
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) http() {
	h := v.c.HTTP
	if h.Listen != "off" {
		if _, port, err := net.SplitHostPort(h.Listen); err != nil || port == "" {
			v.add("http.listen", "", "write host:port, e.g. 127.0.0.1:9464, or off", "listen %s is not host:port", quote(h.Listen))
		} else if !h.Loopback() && h.TokenFile == "" {
			v.add("http.listen", "", "set http.token_file to a file holding a long random token (POSTs must carry it), or listen on 127.0.0.1",
				"listening on %s, beyond loopback, needs a token_file", h.Listen)
		}
	}
	if h.TokenFile != "" && !v.opts.NoHTTP {
		// A token readable by every user lets any of them trigger runs: it
		// is refused, as ssh refuses such a private key. (A group-readable
		// one gets a warning when the daemon starts.)
		if fi, err := os.Stat(h.TokenFile); err == nil && fi.Mode().Perm()&0o007 != 0 {
			v.add("http.token_file", "", "chmod 600 "+h.TokenFile+" (on Kubernetes, defaultMode: 0400 on the secret volume)",
				"token_file %s is readable by every user (mode %#o)", h.TokenFile, fi.Mode().Perm())
		}
		if b, err := os.ReadFile(h.TokenFile); err != nil {
			v.add("http.token_file", "", "create the file (readable by the daemon) with a long random token, e.g. openssl rand -hex 32", "cannot read token_file: %v", err)
		} else if len(strings.TrimSpace(string(b))) < 16 {
			v.add("http.token_file", "", "put a token of at least 16 characters in it, e.g. openssl rand -hex 32", "token_file holds a token shorter than 16 characters")
		}
	}
}

func (v *validator) notify() {
	seen := map[string]bool{}
	for i, n := range v.c.Notify {
		p := fmt.Sprintf("notify[%d]", i)
		if n == nil {
			v.add(p, "", "give the target a name, type and url", "notification target is empty")
			continue
		}
		who := "notify target " + quote(n.Name)
		if n.Name == "" || seen[n.Name] {
			v.add(p+".name", who, "give every target its own name", "name is missing or used twice")
		}
		seen[n.Name] = true
		switch n.Type {
		case "webhook", "teams", "slack":
		default:
			v.add(p+".type", who, "use webhook, teams or slack", "unknown type %s", quote(n.Type))
		}
		if n.URL == nil {
			v.add(p+".url", who, "reference the webhook URL: {env: VAR}, {file: PATH} or {keyvault: {...}}", "url is missing")
		} else {
			v.secretRef(p+".url", who, n.URL)
		}
		for j, e := range n.On {
			enum(v, fmt.Sprintf("%s.on[%d]", p, j), who, "event", e, notify.Kinds())
		}
		if n.Retries != nil && (*n.Retries < 0 || *n.Retries > 10) {
			v.add(p+".retries", who, "use 0 to 10", "retries %d is out of range", *n.Retries)
		}
		merge(n, DefaultNotifyTarget)
	}
}

const (
	zoneFix = "use an IANA zone name such as Europe/Berlin or America/New_York"
	pollFix = "make poll.min_interval at most poll.max_interval"
)

// settingsOK says which of a settings block's values may be used.
type settingsOK struct{ timezone, dst bool }

// settings checks the keys a block sets itself (the defaults section, or
// one job's overrides); inherited values were checked where they were
// written, so a bad default is reported once, at its own line.
func (v *validator) settings(p, who string, s *JobSettings) settingsOK {
	enum(v, p+".on_timeout", who, "on_timeout", s.OnTimeout, pbirefresh.TimeoutPolicies())
	enum(v, p+".when_busy", who, "when_busy", s.WhenBusy, pbirefresh.BusyPolicies())
	enum(v, p+".overlap", who, "overlap", s.Overlap, pbirefresh.Overlaps())
	enum(v, p+".jitter_mode", who, "jitter_mode", s.JitterMode, pbirefresh.JitterModes())
	ok := settingsOK{timezone: true, dst: true}
	ok.dst = enum(v, p+".dst.gap", who, "dst.gap", s.DST.Gap, pbirefresh.GapPolicies())
	ok.dst = enum(v, p+".dst.repeat", who, "dst.repeat", s.DST.Repeat, pbirefresh.RepeatPolicies()) && ok.dst
	if s.Poll.MinInterval != 0 && s.Poll.MinInterval.D() < time.Second {
		v.add(p+".poll.min_interval", who, "use 1s or more: Power BI throttles callers that poll faster", "poll.min_interval %s is below 1s", s.Poll.MinInterval.D())
	}
	if s.Timeout != 0 && s.Timeout.D() < time.Minute {
		v.add(p+".timeout", who, "give the refresh at least a minute", "timeout %s is below 1m", s.Timeout.D())
	}
	if s.StaleAfter != nil && s.StaleAfter.D() != 0 && s.StaleAfter.D() < time.Minute {
		v.add(p+".stale_after", who, "use a duration longer than the job's schedule interval, e.g. 26h for a daily job, or 0 for none", "stale_after %s is below 1m", s.StaleAfter.D())
	}
	return ok
}

func (v *validator) jobs(defaults settingsOK) {
	c := v.c
	names := map[string]int{}
	for i, j := range c.Jobs {
		p := fmt.Sprintf("jobs[%d]", i)
		if j == nil {
			v.add(p, "", "give the job a name, credential, workspace_id and dataset_id", "job is empty")
			continue
		}
		who := "job " + quote(j.Name)
		if !jobNameRE.MatchString(j.Name) {
			v.add(p+".name", who, "use letters, digits, '.', '_' or '-' (up to 100)", "name %s is not a valid job name", quote(j.Name))
		}
		if prev, dup := names[j.Name]; dup {
			v.add(p+".name", who, "give every job its own name", "name is also used by jobs[%d]", prev)
		}
		names[j.Name] = i
		if _, ok := c.Credentials[j.Credential]; !ok {
			v.add(p+".credential", who, fmt.Sprintf("use one of the names under credentials (%s)", keys(c.Credentials)), "unknown credential %s", quote(j.Credential))
		}
		v.target(p, who, j)
		switch {
		case j.IsDataflow() && j.NotifyOption != "" && j.NotifyOption != "NoNotification" && j.NotifyOption != "MailOnFailure":
			v.add(p+".notify_option", who, "a dataflow takes NoNotification or MailOnFailure", "unknown notify_option %s for a dataflow", quote(j.NotifyOption))
		case j.NotifyOption != "" && !notifyOpts[j.NotifyOption]:
			v.add(p+".notify_option", who, "use NoNotification, MailOnFailure or MailOnCompletion", "unknown notify_option %s", quote(j.NotifyOption))
		}
		if j.IsDataflow() && j.Refresh != nil {
			v.add(p+".refresh", who, "remove refresh: enhanced options apply to datasets; a dataflow refresh takes only notify_option", "a dataflow has no enhanced refresh")
		}
		enum(v, p+".on_upstream", who, "on_upstream", j.OnUpstream, UpstreamPolicies())
		if j.OnUpstream != "" && len(j.After) == 0 {
			v.add(p+".on_upstream", who, "remove on_upstream, or name the upstream jobs under after", "on_upstream without after")
		}
		if j.OnUpstream == "" {
			j.OnUpstream = UpstreamWait
		}
		if j.Refresh != nil {
			if j.NotifyOption != "" {
				v.add(p+".notify_option", who, "remove notify_option: it applies only to classic refreshes, and the service refuses it with enhanced options", "notify_option cannot be combined with refresh (enhanced) options")
			}
			v.enhanced(p+".refresh", who, j.Refresh)
		}
		own := v.settings(p, who, &j.JobSettings)
		j.Effective = j.JobSettings
		merge(&j.Effective, c.Defaults)
		if j.Enabled == nil {
			j.Enabled = ptr(true)
		}
		e := j.Effective
		j.Location = time.UTC
		if j.Timezone != "" {
			if loc, err := time.LoadLocation(j.Timezone); err == nil && j.Timezone != "Local" {
				j.Location = loc
			} else {
				v.add(p+".timezone", who, zoneFix, "unknown time zone %s", quote(j.Timezone))
			}
		} else if defaults.timezone {
			j.Location, _ = time.LoadLocation(e.Timezone)
		}
		if j.Schedule != "" {
			// A bad zone or DST policy was reported where it was written;
			// the schedule is still checked, under the defaults.
			dst := scheduler.DST{Gap: e.DST.Gap, Repeat: e.DST.Repeat}
			if !own.dst || !defaults.dst && (j.DST.Gap == "" || j.DST.Repeat == "") {
				dst = scheduler.DST{}
			}
			sch, err := scheduler.Parse(j.Schedule, j.Location, dst)
			if err != nil {
				v.add(p+".schedule", who, "write 5 fields (minute hour day-of-month month day-of-week), an optional leading seconds field, @daily and friends, or @every 15m", "schedule %s: %v", quote(j.Schedule), err)
			}
			j.Parsed = sch
		}
		if (j.Poll.MinInterval != 0 || j.Poll.MaxInterval != 0) && e.Poll.MinInterval > e.Poll.MaxInterval {
			v.add(p+".poll", who, pollFix, "poll.min_interval %s is above poll.max_interval %s", e.Poll.MinInterval.D(), e.Poll.MaxInterval.D())
		}
	}
}

// target checks that a job names one workspace and one thing to refresh.
func (v *validator) target(p, who string, j *Job) {
	switch {
	case j.WorkspaceID != "" && j.Workspace != "":
		v.add(p+".workspace", who, "keep one of workspace_id and workspace (a name)", "workspace_id and workspace are both set")
	case j.Workspace != "":
		if strings.TrimSpace(j.Workspace) == "" {
			v.add(p+".workspace", who, "give the workspace's name as Power BI shows it", "workspace name is blank")
		}
	case !strictyaml.IsGUID(j.WorkspaceID):
		v.add(p+".workspace_id", who, "copy the workspace id from the URL app.powerbi.com/groups/<workspace_id>/..., or give its name as workspace", "workspace_id %s is not a GUID", quote(j.WorkspaceID))
	}
	n := 0
	for _, s := range []string{j.DatasetID, j.Dataset, j.DataflowID} {
		if s != "" {
			n++
		}
	}
	switch {
	case n > 1:
		v.add(p+".dataset_id", who, "keep one of dataset_id, dataset (a name) and dataflow_id", "the job names %d things to refresh", n)
	case j.Dataset != "":
		if strings.TrimSpace(j.Dataset) == "" {
			v.add(p+".dataset", who, "give the dataset's name as Power BI shows it", "dataset name is blank")
		}
	case j.DataflowID != "":
		if !strictyaml.IsGUID(j.DataflowID) {
			v.add(p+".dataflow_id", who, "copy the dataflow id from the URL .../dataflows/<dataflow_id>", "dataflow_id %s is not a GUID", quote(j.DataflowID))
		}
	case !strictyaml.IsGUID(j.DatasetID):
		v.add(p+".dataset_id", who, "copy the dataset id from the URL .../datasets/<dataset_id>/details, or give its name as dataset", "dataset_id %s is not a GUID", quote(j.DatasetID))
	}
}

// dependencies checks after: known jobs, no job after itself, no cycle
// (reported with its path).
func (v *validator) dependencies() {
	jobs := map[string]int{}
	for i, j := range v.c.Jobs {
		if j != nil {
			jobs[j.Name] = i
		}
	}
	for i, j := range v.c.Jobs {
		if j == nil {
			continue
		}
		who := "job " + quote(j.Name)
		seen := map[string]bool{}
		for k, up := range j.After {
			p := fmt.Sprintf("jobs[%d].after[%d]", i, k)
			switch _, ok := jobs[up]; {
			case up == j.Name:
				v.add(p, who, "remove it: a job cannot wait for itself", "job is after itself")
			case !ok:
				v.add(p, who, fmt.Sprintf("name a job of this configuration (%s)", v.c.JobNames()), "after names unknown job %s", quote(up))
			case seen[up]:
				v.add(p, who, "name each upstream once", "after names %s twice", quote(up))
			}
			seen[up] = true
		}
	}
	// Cycles: depth-first, reporting each cycle once, at the line of the
	// after entry that closes it.
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		state[name] = open
		stack = append(stack, name)
		j := v.c.Jobs[jobs[name]]
		for k, up := range j.After {
			if _, ok := jobs[up]; !ok || up == name {
				continue
			}
			switch state[up] {
			case open:
				start := 0
				for i, s := range stack {
					if s == up {
						start = i
					}
				}
				path := append(append([]string{}, stack[start:]...), up)
				lines := make([]string, 0, len(path)-1)
				for _, s := range path[:len(path)-1] {
					lines = append(lines, fmt.Sprintf("%s at line %d", s, v.f.Pos(fmt.Sprintf("jobs[%d]", jobs[s])).Line))
				}
				v.add(fmt.Sprintf("jobs[%d].after[%d]", jobs[name], k), "job "+quote(name), "remove one of the after links in the cycle",
					"after makes a cycle: %s (%s)", strings.Join(path, " -> "), strings.Join(lines, ", "))
			case unseen:
				visit(up)
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
	}
	names := make([]string, 0, len(jobs))
	for n := range jobs {
		names = append(names, n)
	}
	sort.Slice(names, func(a, b int) bool { return jobs[names[a]] < jobs[names[b]] })
	for _, n := range names {
		if state[n] == unseen {
			visit(n)
		}
	}
}

func (v *validator) enhanced(p, who string, e *Enhanced) {
	if e.Type != "" && refreshTypes[e.Type] == "" {
		v.add(p+".type", who, "use "+keys(refreshTypes), "unknown refresh type %s", quote(e.Type))
	}
	if e.CommitMode != "" && commitModes[e.CommitMode] == "" {
		v.add(p+".commit_mode", who, "use transactional or partial_batch", "unknown commit_mode %s", quote(e.CommitMode))
	}
	if e.MaxParallelism != nil && (*e.MaxParallelism < 1 || *e.MaxParallelism > 1000) {
		v.add(p+".max_parallelism", who, "use 1 to 1000 (the service's default is 10)", "max_parallelism %d is out of range", *e.MaxParallelism)
	}
	if e.RetryCount != nil && (*e.RetryCount < 0 || *e.RetryCount > 100) {
		v.add(p+".retry_count", who, "use 0 to 100", "retry_count %d is out of range", *e.RetryCount)
	}
	if e.CommitMode == "partial_batch" && (e.ApplyRefreshPolicy == nil || *e.ApplyRefreshPolicy) {
		v.add(p+".commit_mode", who, "set apply_refresh_policy: false, or use commit_mode: transactional (the service fails partial_batch with a refresh policy, and apply_refresh_policy defaults to true)",
			"partial_batch cannot be used with apply_refresh_policy true")
	}
	if e.EffectiveDate != "" {
		if _, err := time.Parse("2006-01-02", e.EffectiveDate); err != nil {
			v.add(p+".effective_date", who, "write the date as YYYY-MM-DD", "effective_date %s is not a date", quote(e.EffectiveDate))
		}
	}
	if e.Timeout != "" && !timeoutRE.MatchString(e.Timeout) {
		v.add(p+".timeout", who, "write it as hh:mm:ss, at most 23:59:59 (the service caps a refresh with its retries at 24 h)", "service timeout %s is not hh:mm:ss under 24 h", quote(e.Timeout))
	}
	for i, o := range e.Objects {
		if o.Table == "" {
			v.add(fmt.Sprintf("%s.objects[%d]", p, i), who, "name the table (and optionally its partition)", "object without a table")
		}
	}
}
