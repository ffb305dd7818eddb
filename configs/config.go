package configs

import (
	"net"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/internal/strictyaml"
	"github.com/pbirefresh/pbirefresh/notify"
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
	// Path of the SQLite file (default ./pbirefresh.db when postgres is
	// not set): one daemon on one machine.
	Path string `yaml:"path"`
	// Postgres keeps the state in PostgreSQL instead, shared by any number
	// of replicas of the daemon (exactly one of path and postgres).
	Postgres  *Postgres `yaml:"postgres"`
	Retention Retention `yaml:"retention"`
}

// Postgres is a PostgreSQL state database.
type Postgres struct {
	// URL is a libpq URL, postgres://user@host:5432/db?sslmode=verify-full&sslrootcert=/path/ca.pem;
	// a password written in it is refused (use password), and so is any
	// sslmode but verify-full for a database beyond this host.
	URL string `yaml:"url"`
	// Password is a secret reference; optional (trust, certificates or
	// entra_token need none).
	Password *SecretRef `yaml:"password"`
	// EntraToken uses an Entra ID access token as the password (Azure
	// Database for PostgreSQL), from the Azure default credential chain,
	// renewed before it expires.
	EntraToken bool `yaml:"entra_token"`
	// LeaseTTL: a replica that has not renewed its lease for this long is
	// dead and its runs are taken over (default 15s).
	LeaseTTL Duration `yaml:"lease_ttl"`
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
	On      []notify.Kind `yaml:"on"`
	Timeout Duration      `yaml:"timeout"` // per attempt, default 10s
	Retries *int          `yaml:"retries"` // default 3
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
	// PostgresScope is the token scope of Azure Database for PostgreSQL,
	// for state.postgres.entra_token.
	PostgresScope string `yaml:"postgres_scope"`
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
	OnTimeout pbirefresh.OnTimeout `yaml:"on_timeout"`
	// WhenBusy: wait (default; follow the other refresh to its end, then
	// start ours) | skip | fail.
	WhenBusy pbirefresh.WhenBusy `yaml:"when_busy"`
	Poll     Poll                `yaml:"poll"`
	// HistoryGrace is how long a new refresh may stay out of the history
	// (the service's lag) before it counts as lost (default 2m).
	HistoryGrace Duration `yaml:"history_grace"`
	// StaleAfter: a job whose last successful refresh is older than this is
	// stale (metrics, the status page, one "stale" notification); default
	// none.
	StaleAfter *Duration `yaml:"stale_after"`

	// Timezone is the IANA zone of the schedule (default UTC).
	Timezone string `yaml:"timezone"`
	// Overlap: skip (default) | queue.
	Overlap pbirefresh.Overlap `yaml:"overlap"`
	// CatchUp: after downtime, the newest missed slot within this window
	// runs once (default 0: none).
	CatchUp *Duration `yaml:"catch_up"`
	// Jitter delays each run by up to this much (default 0).
	Jitter *Duration `yaml:"jitter"`
	// JitterMode: random (default, per run) | fixed (a stable per-job offset).
	JitterMode pbirefresh.JitterMode `yaml:"jitter_mode"`
	// DST: what wall-clock schedules do at daylight-saving changes.
	DST DSTPolicy `yaml:"dst"`
}

// DSTPolicy: gap shift (default) | skip; repeat first (default) | both.
type DSTPolicy struct {
	Gap    pbirefresh.DSTGap    `yaml:"gap"`
	Repeat pbirefresh.DSTRepeat `yaml:"repeat"`
}

// Poll bounds the adaptive polling interval.
type Poll struct {
	MinInterval Duration `yaml:"min_interval"` // default 1s
	MaxInterval Duration `yaml:"max_interval"` // default 2m
}

// Job is one dataset refresh definition.
type Job struct {
	Name       string `yaml:"name"`
	Credential string `yaml:"credential"`
	// The workspace: its id, or its name (resolved when the daemon starts,
	// on reload, and once again when the service answers 404).
	WorkspaceID string `yaml:"workspace_id"`
	Workspace   string `yaml:"workspace"`
	// What the job refreshes: a dataset by id or by name, or a dataflow
	// (Gen1) by id; exactly one.
	DatasetID  string `yaml:"dataset_id"`
	Dataset    string `yaml:"dataset"`
	DataflowID string `yaml:"dataflow_id"`
	// After names the jobs this one waits for: it runs when every one of
	// them has completed since its own last run (with a schedule, only on
	// its schedule, then; see OnUpstream).
	After []string `yaml:"after"`
	// OnUpstream: what a scheduled job with after does when a slot comes
	// and its upstreams have not all completed since its last run: wait
	// (the default: for them, up to the job's timeout) | skip | run.
	OnUpstream OnUpstream `yaml:"on_upstream"`
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

// OnUpstream is what a scheduled job with after does when its upstreams
// are not fresh.
type OnUpstream string

// Upstream policies.
const (
	UpstreamWait OnUpstream = "wait"
	UpstreamSkip OnUpstream = "skip"
	UpstreamRun  OnUpstream = "run"
)

// UpstreamPolicies lists them, the default first.
func UpstreamPolicies() []OnUpstream { return []OnUpstream{UpstreamWait, UpstreamSkip, UpstreamRun} }

// IsDataflow reports whether the job refreshes a dataflow.
func (j *Job) IsDataflow() bool { return j.DataflowID != "" }

// Target names what the job refreshes, for messages: the dataset's or
// dataflow's name or id.
func (j *Job) Target() string {
	switch {
	case j.DataflowID != "":
		return "dataflow " + j.DataflowID
	case j.Dataset != "":
		return "dataset " + strconvQuote(j.Dataset)
	}
	return "dataset " + j.DatasetID
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
type Duration = strictyaml.Duration

// Problem is one thing wrong in a configuration: its position, the job or
// credential it belongs to, what is wrong and the fix. Parse returns every
// problem at once as Problems, sorted by position.
type Problem = strictyaml.Problem

// Problems is the list Parse returns.
type Problems = strictyaml.Problems

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

func strconvQuote(s string) string { return strictyaml.Quote(s) }
