package emulator

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pbirefresh/pbirefresh/internal/strictyaml"
)

//go:embed demo.yaml
var demoScenario []byte

// Scenario declares the emulated cloud: tenants, app registrations, users,
// the Key Vault, Power BI workspaces with their datasets and dataflows, and
// the faults and throttling in force. It is read from YAML (see demo.yaml for
// every key) or built in Go by tests.
type Scenario struct {
	Settings        Settings         `yaml:"settings"`
	Tenants         []Tenant         `yaml:"tenants"`
	Apps            []App            `yaml:"apps"`
	Users           []User           `yaml:"users"`
	ManagedIdentity *ManagedIdentity `yaml:"managed_identity"`
	Vault           *Vault           `yaml:"vault"`
	Workspaces      []Workspace      `yaml:"workspaces"`
	Faults          []Fault          `yaml:"faults"`
	Throttle        *Throttle        `yaml:"throttle"`
}

// Settings are emulator-wide switches. Zero values mean the documented
// defaults.
type Settings struct {
	// TokenLifetime is the lifetime of every access token (default 1h, as
	// Entra ID issues: expires_in 3599).
	TokenLifetime Duration `yaml:"token_lifetime"`
	// HistoryDelay is how long a new refresh stays invisible in the history
	// and on the details endpoint after its POST (apache/airflow#44618).
	HistoryDelay Duration `yaml:"history_delay"`
	// ConflictStatus answers a POST on a dataset whose refresh is running:
	// 400 (default, current docs) or 409 (2021 preview docs).
	ConflictStatus int `yaml:"conflict_status"`
	// ExpiredTokenStatus answers an expired token on Power BI routes: 401
	// (default) or 403 with code TokenExpired, which Microsoft's embedded
	// troubleshooting table lists. A client must handle both.
	ExpiredTokenStatus int `yaml:"expired_token_status"`
	// DetailsWithoutZone writes the details endpoint's timestamps without a
	// trailing Z, as Microsoft's examples for that endpoint do. Off by
	// default so that responses satisfy the spec's date-time format.
	DetailsWithoutZone bool `yaml:"details_without_zone"`
	// AcceptNotifyOptionWithEnhanced accepts notifyOption next to enhanced
	// fields, as one spec example does. Off by default: the docs say it must
	// be left out, and rejecting it is the safe side for a client under test.
	AcceptNotifyOptionWithEnhanced bool `yaml:"accept_notify_option_with_enhanced"`
	// FireSchedules makes enabled dataset refresh schedules start refreshes
	// by themselves (refreshType Scheduled) at their local times, as the
	// service does. Off by default: a test then sees only the refreshes it
	// starts. Slots are turned into refreshes when a request for the
	// dataset arrives, so a fake clock drives them.
	FireSchedules bool `yaml:"fire_schedules"`
	// TransactionDelay is how long a new dataflow transaction stays out of
	// GET .../transactions after its POST (default 0), like HistoryDelay.
	TransactionDelay Duration `yaml:"transaction_delay"`
	// Seed makes durations and fault draws repeatable (default 1).
	Seed uint64 `yaml:"seed"`
	// RequestLogSize bounds the request log (default 100000 entries).
	RequestLogSize int `yaml:"request_log_size"`
}

// Tenant is an Entra ID tenant with its Power BI tenant settings.
type Tenant struct {
	ID     string `yaml:"id"`
	Domain string `yaml:"domain"`
	// ServicePrincipalsAllowed is the tenant switch "Allow service
	// principals to use Power BI APIs" (default true).
	ServicePrincipalsAllowed *bool `yaml:"service_principals_allowed"`
	// AdminAPIsForServicePrincipals is the switch that lets service
	// principals call read-only admin APIs (default false).
	AdminAPIsForServicePrincipals bool `yaml:"admin_apis_for_service_principals"`
}

// App is an app registration (a service principal in its tenant).
type App struct {
	ClientID string   `yaml:"client_id"`
	Tenant   string   `yaml:"tenant"`
	Name     string   `yaml:"name"`
	Secrets  []Secret `yaml:"secrets"`
	// Certificates are PEM certificates whose keys may sign client
	// assertions.
	Certificates []string `yaml:"certificates"`
	// AllowPublicClient allows the password (ROPC) grant.
	AllowPublicClient bool `yaml:"allow_public_client"`
}

// Secret is one client secret of an app.
type Secret struct {
	Value   string    `yaml:"value"`
	Expires time.Time `yaml:"expires"` // zero: never
}

// User is a work account for the legacy password flow.
type User struct {
	UPN      string `yaml:"upn"`
	Password string `yaml:"password"`
	Tenant   string `yaml:"tenant"`
	// MFA makes every password sign-in fail with AADSTS50076, as Entra ID
	// does when multi-factor authentication is enforced.
	MFA bool `yaml:"mfa"`
	// Admin makes the user a Fabric administrator (admin APIs).
	Admin bool `yaml:"admin"`
}

// ManagedIdentity is served on the App Service style endpoint /msi/token.
type ManagedIdentity struct {
	ClientID string `yaml:"client_id"`
	Tenant   string `yaml:"tenant"`
	Header   string `yaml:"header"` // expected X-IDENTITY-HEADER value
}

// Vault is the one Key Vault the emulator hosts, at its root URL.
type Vault struct {
	Name   string `yaml:"name"`
	Tenant string `yaml:"tenant"`
	// Access lists the principals (client ids) holding the "Key Vault
	// Secrets User" role; others get 403 Forbidden.
	Access  []string      `yaml:"access"`
	Secrets []VaultSecret `yaml:"secrets"`
}

// VaultSecret is a named secret; the last of Versions is the current one.
type VaultSecret struct {
	Name     string   `yaml:"name"`
	Value    string   `yaml:"value"`    // shorthand for one version
	Versions []string `yaml:"versions"` // oldest first
	Disabled bool     `yaml:"disabled"`
}

// Workspace is a Power BI workspace (group).
type Workspace struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Capacity is "shared" (Pro: 8 refreshes a day, no enhanced refresh) or
	// "premium" (default).
	Capacity string `yaml:"capacity"`
	// PersonalOf makes this the "My workspace" of a user (by UPN); it is
	// then reached through the routes without /groups/{groupId}.
	PersonalOf string     `yaml:"personal_of"`
	Members    []Member   `yaml:"members"`
	Datasets   []Dataset  `yaml:"datasets"`
	Dataflows  []Dataflow `yaml:"dataflows"`
}

// Member gives a principal (client id or UPN) a workspace role.
type Member struct {
	Principal string `yaml:"principal"`
	Role      string `yaml:"role"` // Admin | Member | Contributor | Viewer
}

// Dataset is a semantic model and how its refreshes behave. Names need not
// be unique: Power BI allows two datasets of one name in a workspace.
type Dataset struct {
	ID          string        `yaml:"id"`
	Name        string        `yaml:"name"`
	Refreshable *bool         `yaml:"refreshable"` // default true
	Behaviour   Behaviour     `yaml:"behaviour"`
	Schedule    *ScheduleInfo `yaml:"schedule"`
	// Owner is the principal (UPN or client id) that owns the dataset: the
	// API reports it as configuredBy, and only it may change the refresh
	// schedule. Default: the workspace's first Admin member, else the user
	// whose "My workspace" it is, else the workspace's first member.
	Owner string `yaml:"owner"`
	// UpstreamDataflows are the ids of the dataflows the dataset reads
	// (in any workspace), reported by GET .../datasets/upstreamDataflows.
	UpstreamDataflows []string `yaml:"upstream_dataflows"`
}

// ScheduleInfo is what GET refreshSchedule returns. Days are Sunday to
// Saturday, times "hh:mm" with minutes 00 or 30, TimeZone a Windows time
// zone id (default UTC), NotifyOption NoNotification (default) or
// MailOnFailure.
type ScheduleInfo struct {
	Days         []string `yaml:"days" json:"days"`
	Times        []string `yaml:"times" json:"times"`
	Enabled      bool     `yaml:"enabled" json:"enabled"`
	TimeZone     string   `yaml:"time_zone" json:"localTimeZoneId"`
	NotifyOption string   `yaml:"notify_option" json:"notifyOption"`
}

// Dataflow is a dataflow and how its refreshes behave.
type Dataflow struct {
	ID        string    `yaml:"id"`
	Name      string    `yaml:"name"`
	Behaviour Behaviour `yaml:"behaviour"`
}

// Behaviour says how refreshes of a dataset play out.
type Behaviour struct {
	// Duration of each attempt: fixed, or drawn from a distribution.
	Duration DurationDist `yaml:"duration" json:"duration"`
	// NotStartedFor is how long a refresh stays NotStarted before
	// InProgress.
	NotStartedFor Duration `yaml:"not_started_for" json:"not_started_for"`
	// Outcome of the refresh: completed (default), failed or disabled.
	Outcome string `yaml:"outcome" json:"outcome"`
	// FailAttempts attempts fail before one succeeds; with an enhanced
	// retryCount below it the refresh fails.
	FailAttempts int `yaml:"fail_attempts" json:"fail_attempts"`
	// ErrorCode goes into serviceExceptionJson on failure (default
	// ModelRefreshFailed_CredentialsNotSpecified, the spec's example).
	ErrorCode string `yaml:"error_code" json:"error_code"`
	// ErrorMessage goes into the details' messages on failure.
	ErrorMessage string `yaml:"error_message" json:"error_message"`
	// DropBurst silently drops POSTs beyond Limit within Window: they get a
	// 202 and an id, but never run and never appear (asynchronous-refresh
	// docs: "runs one, queues the next and drops the rest").
	DropBurst *Burst `yaml:"drop_burst" json:"drop_burst,omitempty"`
	// Tables are the model's tables, reported in the details' objects when
	// the request names none.
	Tables []string `yaml:"tables" json:"tables,omitempty"`
}

// Burst is a count within a window.
type Burst struct {
	Limit  int      `yaml:"limit" json:"limit"`
	Window Duration `yaml:"window" json:"window"`
}

// Fault injects errors and delays into one endpoint (see Operation names in
// doc.go) or every endpoint ("*").
type Fault struct {
	Endpoint string  `yaml:"endpoint" json:"endpoint"`
	Rate     float64 `yaml:"rate" json:"rate"`     // probability per request, default 1
	Count    int     `yaml:"count" json:"count"`   // fire at most this many times; 0 = unlimited
	Status   int     `yaml:"status" json:"status"` // e.g. 500, 503; 0 = no status fault
	// RetryAfter adds a Retry-After header to status faults.
	RetryAfter int      `yaml:"retry_after" json:"retry_after"`
	Latency    Duration `yaml:"latency" json:"latency"` // added before answering (wall time)
	Reset      bool     `yaml:"reset" json:"reset"`     // drop the connection instead of answering
	// AfterHandler processes the request first, then drops the connection
	// (with reset) or answers after Latency: the client cannot tell in time
	// whether it took effect.
	AfterHandler bool     `yaml:"after_handler" json:"after_handler"`
	SlowBody     Duration `yaml:"slow_body" json:"slow_body"` // spread the body over this long (wall time)
}

// Throttle limits Power BI requests per caller (tenant + principal) with a
// fixed window, answering 429 with Retry-After.
type Throttle struct {
	Limit  int      `yaml:"limit" json:"limit"`
	Window Duration `yaml:"window" json:"window"`
}

// Duration is a time.Duration written as a string ("90s", "2h"), in YAML
// and in the control API's JSON.
type Duration = strictyaml.Duration

// DurationDist is a fixed duration ("30s") or a distribution
// ({min: 10s, max: 2h, dist: loguniform | uniform}).
type DurationDist struct {
	Min  Duration `yaml:"min" json:"min"`
	Max  Duration `yaml:"max" json:"max"`
	Dist string   `yaml:"dist" json:"dist"`
}

// UnmarshalYAML accepts a scalar or a mapping.
func (d *DurationDist) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var v Duration
		if err := v.UnmarshalYAML(n); err != nil {
			return err
		}
		*d = DurationDist{Min: v, Max: v, Dist: "fixed"}
		return nil
	}
	type plain DurationDist
	var p plain
	dec := n
	if err := dec.Decode(&p); err != nil {
		return err
	}
	*d = DurationDist(p)
	return nil
}

// UnmarshalJSON accepts a string or an object.
func (d *DurationDist) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var v Duration
		if err := v.UnmarshalJSON(b); err != nil {
			return err
		}
		*d = DurationDist{Min: v, Max: v, Dist: "fixed"}
		return nil
	}
	type plain DurationDist
	var p plain
	if err := jsonUnmarshalStrict(b, &p); err != nil {
		return err
	}
	*d = DurationDist(p)
	return nil
}

func (d DurationDist) draw(r *rand.Rand) time.Duration {
	lo, hi := d.Min.D(), d.Max.D()
	if hi <= lo {
		return lo
	}
	switch d.Dist {
	case "uniform":
		return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
	default: // loguniform
		l := math.Log(float64(max(lo, time.Millisecond)))
		h := math.Log(float64(hi))
		return time.Duration(math.Exp(l + r.Float64()*(h-l)))
	}
}

// LoadScenario reads a scenario file strictly: unknown keys are errors, and
// every problem is reported with the file's line and column.
func LoadScenario(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return ParseScenario(path, b)
}

// DemoScenario returns the built-in scenario: a Premium and a shared
// workspace whose datasets complete, fail, run long and so on.
func DemoScenario() *Scenario {
	sc, err := ParseScenario("demo.yaml", demoScenario)
	if err != nil {
		panic("built-in demo scenario is invalid: " + err.Error())
	}
	return sc
}

// DemoScenarioYAML returns the text of the built-in scenario.
func DemoScenarioYAML() []byte { return bytes.Clone(demoScenario) }

// ParseScenario decodes and validates a scenario; name labels messages.
// Decoding is strict (unknown keys, a second document and an empty file
// are errors) and every problem is reported at its line and column.
func ParseScenario(name string, b []byte) (*Scenario, error) {
	f := &strictyaml.File{Name: name, Data: b, Example: "emulator/demo.yaml"}
	sc := &Scenario{}
	if err := f.Decode(sc); err != nil {
		return nil, err
	}
	if err := sc.Validate(); err != nil {
		return nil, located(f, err)
	}
	return sc, nil
}

// fieldError is a validation problem at an object path
// ("workspaces[0].datasets[1].id").
type fieldError struct {
	path string
	msg  string
}

func (e fieldError) Error() string { return e.path + ": " + e.msg }

// located places Validate's problems at their lines in the file.
func located(f *strictyaml.File, err error) error {
	var errs []error
	var list interface{ Unwrap() []error }
	if errors.As(err, &list) {
		errs = list.Unwrap()
	} else {
		errs = []error{err}
	}
	var ps strictyaml.Problems
	for _, e := range errs {
		var fe fieldError
		if errors.As(e, &fe) {
			ps = append(ps, &strictyaml.Problem{File: f.Name, Pos: f.Pos(fe.path), Msg: fe.Error()})
			continue
		}
		ps = append(ps, &strictyaml.Problem{File: f.Name, Msg: e.Error()})
	}
	return ps.Err()
}

// Validate applies defaults and reports every problem at once.
func (sc *Scenario) Validate() error {
	var errs []error
	bad := func(path, format string, a ...any) {
		errs = append(errs, fieldError{path, fmt.Sprintf(format, a...)})
	}
	s := &sc.Settings
	if s.TokenLifetime == 0 {
		s.TokenLifetime = Duration(time.Hour)
	}
	if s.ConflictStatus == 0 {
		s.ConflictStatus = 400
	} else if s.ConflictStatus != 400 && s.ConflictStatus != 409 {
		bad("settings.conflict_status", "must be 400 or 409, not %d", s.ConflictStatus)
	}
	if s.ExpiredTokenStatus == 0 {
		s.ExpiredTokenStatus = 401
	} else if s.ExpiredTokenStatus != 401 && s.ExpiredTokenStatus != 403 {
		bad("settings.expired_token_status", "must be 401 or 403, not %d", s.ExpiredTokenStatus)
	}
	if s.Seed == 0 {
		s.Seed = 1
	}
	if s.RequestLogSize == 0 {
		s.RequestLogSize = 100000
	} else if s.RequestLogSize < 0 || s.RequestLogSize > maxRequestLog {
		bad("settings.request_log_size", "must be between 1 and %d", maxRequestLog)
	}
	tenants := map[string]bool{}
	for i := range sc.Tenants {
		t := &sc.Tenants[i]
		p := fmt.Sprintf("tenants[%d]", i)
		if !strictyaml.IsGUID(t.ID) {
			bad(p+".id", "tenant id %q is not a GUID", t.ID)
		}
		if tenants[strings.ToLower(t.ID)] {
			bad(p+".id", "tenant %s is declared twice", t.ID)
		}
		tenants[strings.ToLower(t.ID)] = true
		if t.ServicePrincipalsAllowed == nil {
			yes := true
			t.ServicePrincipalsAllowed = &yes
		}
	}
	knownTenant := func(path, id string) {
		if !tenants[strings.ToLower(id)] {
			bad(path, "tenant %q is not declared under tenants", id)
		}
	}
	principals := map[string]bool{}
	for i := range sc.Apps {
		a := &sc.Apps[i]
		p := fmt.Sprintf("apps[%d]", i)
		if !strictyaml.IsGUID(a.ClientID) {
			bad(p+".client_id", "client id %q is not a GUID", a.ClientID)
		}
		if principals[strings.ToLower(a.ClientID)] {
			bad(p+".client_id", "app %s is declared twice", a.ClientID)
		}
		principals[strings.ToLower(a.ClientID)] = true
		knownTenant(p+".tenant", a.Tenant)
		for j, sec := range a.Secrets {
			if sec.Value == "" {
				bad(fmt.Sprintf("%s.secrets[%d].value", p, j), "a secret needs a value")
			}
		}
		for j, c := range a.Certificates {
			if _, err := parseCertPEM(c); err != nil {
				bad(fmt.Sprintf("%s.certificates[%d]", p, j), "%v", err)
			}
		}
	}
	for i, u := range sc.Users {
		p := fmt.Sprintf("users[%d]", i)
		if !strings.Contains(u.UPN, "@") {
			bad(p+".upn", "%q is not a user principal name (name@domain)", u.UPN)
		}
		principals[strings.ToLower(u.UPN)] = true
		knownTenant(p+".tenant", u.Tenant)
	}
	if mi := sc.ManagedIdentity; mi != nil {
		if !strictyaml.IsGUID(mi.ClientID) {
			bad("managed_identity.client_id", "client id %q is not a GUID", mi.ClientID)
		}
		principals[strings.ToLower(mi.ClientID)] = true
		knownTenant("managed_identity.tenant", mi.Tenant)
		if mi.Header == "" {
			bad("managed_identity.header", "set the X-IDENTITY-HEADER value clients must send")
		}
	}
	if v := sc.Vault; v != nil {
		knownTenant("vault.tenant", v.Tenant)
		names := map[string]bool{}
		for i := range v.Secrets {
			vs := &v.Secrets[i]
			p := fmt.Sprintf("vault.secrets[%d]", i)
			if !vaultNameRE.MatchString(vs.Name) {
				bad(p+".name", "%q is not a Key Vault secret name (1-127 letters, digits and dashes)", vs.Name)
			}
			if names[strings.ToLower(vs.Name)] {
				bad(p+".name", "secret %q is declared twice", vs.Name)
			}
			names[strings.ToLower(vs.Name)] = true
			if vs.Value != "" && len(vs.Versions) > 0 {
				bad(p, "give value or versions, not both")
			}
			if vs.Value != "" {
				vs.Versions = []string{vs.Value}
				vs.Value = ""
			}
			if len(vs.Versions) == 0 {
				bad(p, "a secret needs a value")
			}
		}
		for i, a := range v.Access {
			if !principals[strings.ToLower(a)] {
				bad(fmt.Sprintf("vault.access[%d]", i), "principal %q is not declared under apps, users or managed_identity", a)
			}
		}
	}
	ids := map[string]string{}
	unique := func(path, id, what string) {
		if !strictyaml.IsGUID(id) {
			bad(path, "%s id %q is not a GUID", what, id)
			return
		}
		if prev, ok := ids[strings.ToLower(id)]; ok {
			bad(path, "id %s is already used at %s", id, prev)
		}
		ids[strings.ToLower(id)] = path
	}
	for i := range sc.Workspaces {
		w := &sc.Workspaces[i]
		p := fmt.Sprintf("workspaces[%d]", i)
		unique(p+".id", w.ID, "workspace")
		switch w.Capacity {
		case "":
			w.Capacity = "premium"
		case "premium", "shared":
		default:
			bad(p+".capacity", "must be premium or shared, not %q", w.Capacity)
		}
		if w.PersonalOf != "" && !principals[strings.ToLower(w.PersonalOf)] {
			bad(p+".personal_of", "user %q is not declared under users", w.PersonalOf)
		}
		for j := range w.Members {
			m := &w.Members[j]
			mp := fmt.Sprintf("%s.members[%d]", p, j)
			if !principals[strings.ToLower(m.Principal)] {
				bad(mp+".principal", "principal %q is not declared under apps, users or managed_identity", m.Principal)
			}
			switch strings.ToLower(m.Role) {
			case "":
				m.Role = "Member"
			case "admin", "member", "contributor", "viewer":
			default:
				bad(mp+".role", "must be Admin, Member, Contributor or Viewer, not %q", m.Role)
			}
		}
		for j := range w.Datasets {
			d := &w.Datasets[j]
			dp := fmt.Sprintf("%s.datasets[%d]", p, j)
			unique(dp+".id", d.ID, "dataset")
			if d.Refreshable == nil {
				yes := true
				d.Refreshable = &yes
			}
			errs = append(errs, d.Behaviour.validate(dp+".behaviour")...)
			if d.Owner == "" {
				d.Owner = defaultOwner(w)
			} else if !principals[strings.ToLower(d.Owner)] {
				bad(dp+".owner", "principal %q is not declared under apps, users or managed_identity", d.Owner)
			}
			if d.Schedule != nil {
				errs = append(errs, d.Schedule.validate(dp+".schedule", w.Capacity)...)
			}
		}
		for j := range w.Dataflows {
			f := &w.Dataflows[j]
			fp := fmt.Sprintf("%s.dataflows[%d]", p, j)
			unique(fp+".id", f.ID, "dataflow")
			errs = append(errs, f.Behaviour.validate(fp+".behaviour")...)
		}
	}
	errs = append(errs, sc.validateWorkspaceNames()...)
	errs = append(errs, sc.validateUpstreamDataflows()...)
	for i := range sc.Faults {
		errs = append(errs, sc.Faults[i].validate(fmt.Sprintf("faults[%d]", i))...)
	}
	if t := sc.Throttle; t != nil {
		if t.Limit <= 0 || t.Window <= 0 {
			bad("throttle", "set a positive limit and window (for example limit: 120, window: 1m)")
		}
	}
	return errors.Join(errs...)
}

// maxRequestLog bounds the request log's ring (its slots are allocated at
// start).
const maxRequestLog = 10_000_000

var vaultNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

func (b *Behaviour) validate(path string) []error {
	var errs []error
	bad := func(p, format string, a ...any) {
		errs = append(errs, fieldError{p, fmt.Sprintf(format, a...)})
	}
	switch b.Outcome {
	case "":
		b.Outcome = "completed"
	case "completed", "failed", "disabled":
	default:
		bad(path+".outcome", "must be completed, failed or disabled, not %q", b.Outcome)
	}
	switch b.Duration.Dist {
	case "", "fixed", "uniform", "loguniform":
	default:
		bad(path+".duration.dist", "must be uniform or loguniform, not %q", b.Duration.Dist)
	}
	if b.Duration.Max < b.Duration.Min {
		bad(path+".duration", "max %s is below min %s", b.Duration.Max.D(), b.Duration.Min.D())
	}
	if b.FailAttempts < 0 || b.FailAttempts > maxAttempts {
		bad(path+".fail_attempts", "must be between 0 and %d", maxAttempts)
	}
	if b.ErrorCode == "" {
		b.ErrorCode = "ModelRefreshFailed_CredentialsNotSpecified"
	}
	if b.ErrorMessage == "" {
		b.ErrorMessage = "The credentials provided for the data source are invalid."
	}
	if b.DropBurst != nil && (b.DropBurst.Limit <= 0 || b.DropBurst.Window <= 0) {
		bad(path+".drop_burst", "set a positive limit and window")
	}
	return errs
}

// Operations are the names that faults, throttling and the request log use
// for endpoints.
var Operations = []string{
	"openid", "token", "userrealm", "instance_discovery", "msi",
	"keyvault.get",
	"refresh.post", "refresh.history", "refresh.details", "refresh.cancel",
	"groups.list", "groups.get", "datasets.list", "datasets.get", "schedule.get", "schedule.update",
	"datasets.upstream", "dataflow.refresh", "dataflow.transactions", "dataflow.cancel", "admin.groups",
}

func (f *Fault) validate(path string) []error {
	var errs []error
	bad := func(p, format string, a ...any) {
		errs = append(errs, fieldError{p, fmt.Sprintf(format, a...)})
	}
	known := f.Endpoint == "*"
	for _, op := range Operations {
		known = known || op == f.Endpoint
	}
	if !known {
		bad(path+".endpoint", "unknown endpoint %q; use * or one of %s", f.Endpoint, strings.Join(Operations, ", "))
	}
	if f.Rate == 0 {
		f.Rate = 1
	}
	if f.Rate < 0 || f.Rate > 1 {
		bad(path+".rate", "must be between 0 and 1")
	}
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		bad(path+".status", "must be an HTTP error status (400-599)")
	}
	if f.Status == 0 && !f.Reset && f.Latency == 0 && f.SlowBody == 0 {
		bad(path, "a fault needs status, reset, latency or slow_body")
	}
	if f.Count < 0 {
		bad(path+".count", "must not be negative")
	}
	if f.AfterHandler && !f.Reset && f.Latency == 0 {
		bad(path+".after_handler", "goes with reset: true or a latency")
	}
	return errs
}
