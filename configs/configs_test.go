package configs

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var lineRE = regexp.MustCompile(`^testdata/[a-z0-9-]+\.yaml(:\d+(:\d+)?)?: `)

var update = flag.Bool("update", false, "rewrite testdata/*.err from the current messages")

// TestLoadBadConfigs pairs every testdata/*.yaml with its exact error text
// in testdata/*.err.
func TestLoadBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) < 5 {
		t.Fatalf("only %d bad configs", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatal("loaded without error")
			}
			errFile := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				os.WriteFile(errFile, []byte(err.Error()+"\n"), 0o644)
			}
			want, rerr := os.ReadFile(errFile)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if got := err.Error() + "\n"; got != string(want) {
				t.Fatalf("error text differs\n got: %s\nwant: %s", got, want)
			}
			// Every line names the file and a line:col, and carries a fix.
			for _, line := range strings.Split(err.Error(), "\n") {
				if !lineRE.MatchString(line) || !strings.Contains(line, "; ") {
					t.Errorf("line without file:line, or without a fix: %q", line)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatal("the error echoes a secret value")
			}
			var p *Problem
			if !errors.As(err, &p) || p.Hint() == "" {
				t.Errorf("no hint in %v", err)
			}
		})
	}
}

func TestExampleDocumentsEveryKey(t *testing.T) {
	// example.yaml names /etc/pbirefresh/app.pem and no CA file; it must
	// load cleanly.
	cfg, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Jobs) != 5 || len(cfg.Credentials) != 3 {
		t.Fatalf("jobs %d credentials %d", len(cfg.Jobs), len(cfg.Credentials))
	}
	j := cfg.Job("sales-nightly")
	if j.Effective.Timeout.D() != 3*time.Hour || j.Effective.OnTimeout != "leave" || j.Effective.WhenBusy != "skip" || j.Effective.Poll.MinInterval.D() != 10*time.Second {
		t.Errorf("overrides not applied: %+v", j.Effective)
	}
	if j2 := cfg.Job("team-classic"); j2.Effective.Timeout.D() != 2*time.Hour || j2.Effective.WhenBusy != "wait" || j2.Refresh != nil {
		t.Errorf("defaults not applied: %+v", j2.Effective)
	}
	if j3 := cfg.Job("team-classic"); j3.Workspace != "Team Reporting" || j3.Dataset != "Team Model" || j3.WorkspaceID != "" {
		t.Errorf("names: %+v", j3)
	}
	if df := cfg.Job("finance-dataflow"); !df.IsDataflow() || df.NotifyOption != "MailOnFailure" {
		t.Errorf("dataflow job: %+v", df)
	}
	if fs := cfg.Job("finance-summary"); len(fs.After) != 1 || fs.After[0] != "finance-model" || fs.OnUpstream != "wait" {
		t.Errorf("chain: %+v", fs)
	}
	if fm := cfg.Job("finance-model"); fm.OnUpstream != "wait" || fm.Schedule != "" {
		t.Errorf("default on_upstream: %+v", fm)
	}
	if cfg.Endpoints.PowerBIAPI != "https://api.powerbi.com" || !cfg.Endpoints.InstanceDiscovery || !*cfg.Endpoints.KeyVaultChallengeVerification {
		t.Errorf("endpoints: %+v", cfg.Endpoints)
	}
	if ref := cfg.Credentials["reporting"].ClientSecret.Ref(); ref != "https://contoso.vault.azure.net/secrets/pbi-secret" {
		t.Errorf("ref %q", ref)
	}
	// Every key the types know appears in example.yaml.
	b, _ := os.ReadFile("example.yaml")
	for _, key := range yamlKeys(Config{}) {
		if !strings.Contains(string(b), key+":") {
			t.Errorf("example.yaml does not document %q", key)
		}
	}
}

func TestDemoLoads(t *testing.T) {
	cfg, err := Load("demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cloud != "emulator" || *cfg.Endpoints.KeyVaultChallengeVerification || !cfg.Credentials["demo"].ClientSecret.EmulatorVault() {
		t.Fatalf("demo: %+v", cfg.Endpoints)
	}
}

// oneJob is the smallest valid body of a configuration.
const oneJob = `
credentials: {c: {tenant_id: 00000000-0000-0000-0000-000000000000, client_id: 11111111-1111-1111-1111-111111111111, client_secret: {env: S}}}
jobs: [{name: j, credential: c, workspace_id: 22222222-2222-2222-2222-222222222222, dataset_id: 33333333-3333-3333-3333-333333333333}]
`

func TestClouds(t *testing.T) {
	for name, want := range Clouds {
		cfg, err := Parse("c.yaml", []byte("cloud: "+name+"\n"+oneJob))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Endpoints.PowerBIAPI != want.PowerBIAPI || cfg.Endpoints.PowerBIScope != want.PowerBIScope || !cfg.Endpoints.InstanceDiscovery {
			t.Errorf("%s: %+v", name, cfg.Endpoints)
		}
	}
	cfg, err := Parse("c.yaml", []byte("cloud: custom\nendpoints: {authority_host: https://127.0.0.1:8443/, powerbi_api: https://127.0.0.1:8443, powerbi_scope: https://analysis.windows.net/powerbi/api/.default}\n"+oneJob))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Endpoints.InstanceDiscovery || cfg.Endpoints.AuthorityHost != "https://127.0.0.1:8443" {
		t.Errorf("custom: %+v", cfg.Endpoints)
	}
}

// TestBadDefaultReportedOnceAtItsLine: an invalid defaults value is one
// problem at its own line, with or without jobs that inherit it.
func TestBadDefaultReportedOnceAtItsLine(t *testing.T) {
	for _, jobs := range []string{oneJob + "extra: no\n", ""} {
		jobs = strings.Replace(jobs, "}]\n", "}, {name: k, credential: c, workspace_id: 22222222-2222-2222-2222-222222222222, dataset_id: 33333333-3333-3333-3333-333333333333}]\n", 1)
		jobs = strings.Replace(jobs, "extra: no\n", "", 1)
		text := "defaults:\n  overlap: sometimes\n  jitter_mode: chaotic\n  dst: {gap: leap, repeat: twice}\n  timezone: Mars/Olympus\n" + jobs
		_, err := Parse("d.yaml", []byte(text))
		if err == nil {
			t.Fatal("loaded")
		}
		want := []string{
			`d.yaml:2:12: unknown overlap "sometimes"; use skip or queue`,
			`d.yaml:3:16: unknown jitter_mode "chaotic"; use random or fixed`,
			`d.yaml:4:14: unknown dst.gap "leap"; use shift or skip`,
			`d.yaml:4:28: unknown dst.repeat "twice"; use first or both`,
			`d.yaml:5:13: unknown time zone "Mars/Olympus"; use an IANA zone name such as Europe/Berlin or America/New_York`,
		}
		lines := strings.Split(err.Error(), "\n")
		if jobs == "" {
			want = append([]string{"d.yaml:1:1: the configuration has no jobs: the daemon would do nothing; add a job under jobs (configs/example.yaml shows one), or write them with `pbirefresh import`"}, want...)
		}
		if strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("got:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
		}
	}
}

// TestOddFilesRefused: empty, comment-only, "---" alone, two documents,
// broken YAML on line 2, a huge value, a FIFO, a directory and an
// oversized file each get a clear error naming the file and, where there
// is one, the line.
func TestOddFilesRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	huge := strings.Repeat("A", 5<<20)
	cases := []struct{ path, want string }{
		{write("empty.yaml", ""), "empty.yaml: the file has no YAML content"},
		{write("comments.yaml", "# nothing here\n# at all\n"), "comments.yaml: the file has no YAML content"},
		{write("marker.yaml", "---\n"), "marker.yaml: the file has no YAML content"},
		{write("two.yaml", "cloud: public\n"+oneJob+"---\ncloud: china\n"), "two.yaml:5: a second YAML document starts here"},
		{write("line2.yaml", "cloud: public\n- jobs\n"), "line2.yaml:2: "},
		{write("huge.yaml", "cloud: \""+huge+"\"\n"+oneJob), `huge.yaml:1:8: unknown cloud "AAAA`},
		{dir, "is not a regular file (a directory)"},
		{write("big.yaml", "cloud: public\n#"+strings.Repeat("x", MaxSize)+"\n"), "above the 10 MiB limit"},
	}
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err == nil {
		cases = append(cases, struct{ path, want string }{fifo, "is not a regular file (a named pipe)"})
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			_, err := Load(c.path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if len(err.Error()) > 1000 {
				t.Fatalf("a %d-byte message", len(err.Error()))
			}
			var p *Problem
			if !errors.As(err, &p) || p.Hint() == "" {
				t.Fatalf("no fix: %v", err)
			}
		})
	}
}

// TestShippedPollDefaults: refresh's BenchmarkFollowing measures these
// values as "the shipped defaults"; keep the two equal.
func TestShippedPollDefaults(t *testing.T) {
	if p := DefaultJobSettings.Poll; p.MinInterval.D() != time.Second || p.MaxInterval.D() != 2*time.Minute {
		t.Fatalf("defaults %v..%v; update refresh/bench_test.go's shipped values with them", p.MinInterval.D(), p.MaxInterval.D())
	}
}

// TestWorldReadableTokenFileRefused: a bearer token anyone on the machine
// can read is refused, naming the fix.
func TestWorldReadableTokenFileRefused(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("0123456789abcdef0123456789abcdef"), 0o600)
	os.Chmod(tok, 0o644)
	_, err := Parse("c.yaml", []byte("http: {token_file: "+tok+"}\n"+oneJob))
	if err == nil || !strings.Contains(err.Error(), "readable by every user (mode 0644)") || !strings.Contains(err.Error(), "chmod 600 "+tok) {
		t.Fatalf("%v", err)
	}
	os.Chmod(tok, 0o640) // group-readable: a warning at start-up, not an error
	if _, err := Parse("c.yaml", []byte("http: {token_file: "+tok+"}\n"+oneJob)); err != nil {
		t.Fatal(err)
	}
}

func TestPostgresState(t *testing.T) {
	for _, c := range []struct{ state, want string }{
		{"state: {postgres: {url: \"postgres://u@db.example.com/x?sslmode=verify-full\"}}", ""},
		{"state: {path: a.db, postgres: {url: \"postgres://u@127.0.0.1/x?sslmode=disable\"}}", "state.path and state.postgres are both set"},
		{"state: {postgres: {url: \"postgres://u:hunter2@db.example.com/x\"}}", "a password is written in the URL"},
		{"state: {postgres: {url: \"postgres://u@db.example.com/x?sslmode=disable\"}}", "sslmode=disable sends"},
		{"state: {postgres: {url: \"mysql://u@h/x\"}}", "is not a postgres:// URL"},
		{"state: {postgres: {url: \"postgres://u@h/x\", password: {env: PGPW}, entra_token: true}}", "password and entra_token are both set"},
		{"state: {postgres: {url: \"postgres://u@h/x\", lease_ttl: 1s}}", "lease_ttl 1s is below 3s"},
	} {
		cfg, err := Parse("c.yaml", []byte(c.state+"\n"+oneJob))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.state, err)
		case c.want == "" && (cfg.State.Path != "" || cfg.State.Postgres.LeaseTTL.D() != 15*time.Second):
			t.Errorf("%s: path %q, lease %s", c.state, cfg.State.Path, cfg.State.Postgres.LeaseTTL.D())
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.state, err, c.want)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("the password was echoed: %v", err)
		}
	}
}
