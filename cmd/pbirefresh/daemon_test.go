package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/scheduler"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

// logWatcher collects a process's log lines and waits for one.
type logWatcher struct {
	mu    sync.Mutex
	lines []string
}

func (w *logWatcher) scan(sc *bufio.Scanner) {
	for sc.Scan() {
		w.mu.Lock()
		w.lines = append(w.lines, sc.Text())
		w.mu.Unlock()
	}
}

// waitFor waits until a line after index from contains all parts; it
// returns the index after that line.
func (w *logWatcher) waitFor(t *testing.T, from int, timeout time.Duration, parts ...string) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for i := from; i < len(w.lines); i++ {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(w.lines[i], p)
			}
			if ok {
				w.mu.Unlock()
				return i + 1
			}
		}
		w.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Fatalf("no log line with %q within %s; log:\n%s", parts, timeout, strings.Join(w.lines, "\n"))
	return 0
}

// startDaemon runs `pbirefresh run --config cfg` with extra environment,
// collects its log, and waits until it is scheduling.
func startDaemon(t *testing.T, cfg string, env ...string) (*exec.Cmd, *logWatcher) {
	t.Helper()
	cmd := exec.Command(binary, "run", "--config", cfg)
	cmd.Env = append(os.Environ(), env...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	w := &logWatcher{}
	go w.scan(bufio.NewScanner(stderr))
	w.waitFor(t, 0, 30*time.Second, "pbirefresh started")
	return cmd, w
}

// demoWith is configs/demo.yaml with its state in dir, edited. Unless the
// edit adds an http section, the HTTP server is off, so tests never hold
// the default port.
func demoWith(t *testing.T, dir string, edit func(string) string) string {
	b, err := os.ReadFile(demo)
	if err != nil {
		t.Fatal(err)
	}
	s := edit(strings.Replace(string(b), "path: pbirefresh-demo.db", "path: "+filepath.Join(dir, "state.db"), 1))
	if !strings.Contains(s, "\nhttp:") {
		s += "\nhttp: {listen: \"off\"}\n"
	}
	return s
}

func TestDaemonReloadAndStop(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pbirefresh.yaml")
	onlySales := func(s string) string {
		// sales every 2 s; the other jobs paused.
		s = strings.Replace(s, `schedule: "*/15 * * * * *"`, `schedule: "*/2 * * * * *"`, 1)
		for _, j := range []string{"finance", "inventory", "team"} {
			s = strings.Replace(s, "  - name: "+j+" ", "  - enabled: false\n    name: "+j+" ", 1)
		}
		return s
	}
	os.WriteFile(cfg, []byte(demoWith(t, dir, onlySales)), 0o600)
	cmd, w := startDaemon(t, cfg)
	// At start-up, the daemon warns once that Sales Model still has its
	// own Power BI schedule on.
	w.waitFor(t, 0, 20*time.Second, "the dataset also refreshes on its own Power BI schedule", "job=sales", `builtin="Monday-Friday at 05:00, 17:30 (W. Europe Standard Time)"`)
	at := w.waitFor(t, 0, 20*time.Second, "refresh started", "job=sales")

	// A bad config is refused; the old one keeps running.
	os.WriteFile(cfg, []byte(demoWith(t, dir, onlySales)+"\nshedule: oops\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	at = w.waitFor(t, at, 10*time.Second, "reload refused; keeping the running configuration", "shedule")
	at = w.waitFor(t, at, 20*time.Second, "refresh started", "job=sales")

	// A good one takes effect: sales paused, team every 2 s.
	teamOnly := func(s string) string {
		s = strings.Replace(s, `schedule: "*/30 * * * * *"`, `schedule: "*/2 * * * * *"`, 1)
		for _, j := range []string{"sales", "finance", "inventory"} {
			s = strings.Replace(s, "  - name: "+j+" ", "  - enabled: false\n    name: "+j+" ", 1)
		}
		return s
	}
	os.WriteFile(cfg, []byte(demoWith(t, dir, teamOnly)), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	at = w.waitFor(t, at, 10*time.Second, "configuration reloaded")
	// Team's refresh has started (and so is recorded) once this is logged.
	at = w.waitFor(t, at, 20*time.Second, "refresh started", "dataset_id=c0ffee00-0000-4000-8000-000000000205")

	// A move of the state to PostgreSQL waits for the next start, and the
	// log says so (it used to be taken half, silently); the daemon goes on
	// with its SQLite file.
	os.WriteFile(cfg, []byte(demoWith(t, dir, func(s string) string {
		moved := strings.Replace(s, "path: "+filepath.Join(dir, "state.db"), `postgres: {url: "postgres://pbirefresh@127.0.0.1:1/pbirefresh"}`, 1)
		if moved == s {
			t.Fatal("the demo config has no state.path to replace")
		}
		return teamOnly(moved)
	})), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	at = w.waitFor(t, at, 10*time.Second, "state.path and state.postgres changes take effect at the next start")
	at = w.waitFor(t, at, 10*time.Second, "configuration reloaded")
	w.waitFor(t, at, 20*time.Second, "refresh started", "dataset_id=c0ffee00-0000-4000-8000-000000000205")
	os.WriteFile(cfg, []byte(demoWith(t, dir, teamOnly)), 0o600) // for history, below: the SQLite file

	// SIGTERM: persist and exit 0 within shutdown_timeout.
	began := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	w.waitFor(t, 0, 30*time.Second, "stopped")
	if el := time.Since(began); el > 30*time.Second {
		t.Fatalf("stopped after %s", el)
	}

	// history reads the store.
	r := runBinary(t, nil, "history", "--config", cfg, "--output", "json", "--limit", "50")
	var runs []map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &runs) != nil || len(runs) < 2 {
		t.Fatalf("history: %+v", r)
	}
	jobs := map[string]bool{}
	for _, run := range runs {
		jobs[fmt.Sprint(run["job"])] = true
		if run["slot"] == nil || run["kind"] == nil || run["status"] == nil {
			t.Fatalf("history entry: %v", run)
		}
	}
	if !jobs["sales"] || !jobs["team"] {
		t.Fatalf("history jobs: %v", jobs)
	}
	if r := runBinary(t, nil, "history", "--config", cfg, "--job", "team"); r.code != 0 || !strings.Contains(r.stdout, "SLOT (UTC)") || !strings.Contains(r.stdout, " team ") {
		t.Fatalf("history text: %+v", r)
	}
}

// TestReloadRefusesAKeyVaultSecretWithoutAnIdentity: a daemon that started
// with no Key Vault reference has no Azure identity to read Key Vault
// with. A reload bringing the first one was taken, and every run of that
// credential failed until a restart; it is refused now, with the fix, and
// the running configuration goes on.
func TestReloadRefusesAKeyVaultSecretWithoutAnIdentity(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pbirefresh.yaml")
	salesOnly := func(secret string) func(string) string {
		return func(s string) string {
			s = strings.Replace(s, "keyvault: {secret_name: pbi-secret}   # no vault_url: the emulator's vault", secret, 1)
			s = strings.Replace(s, `schedule: "*/15 * * * * *"`, `schedule: "*/2 * * * * *"`, 1)
			for _, j := range []string{"finance", "inventory", "forecast", "team"} {
				s = strings.Replace(s, "  - name: "+j+" ", "  - enabled: false\n    name: "+j+" ", 1)
			}
			return s
		}
	}
	fromEnv := demoWith(t, dir, salesOnly("{env: PBI_DEMO_SECRET}"))
	if !strings.Contains(fromEnv, "{env: PBI_DEMO_SECRET}") {
		t.Fatal("the demo config's secret reference was not replaced")
	}
	os.WriteFile(cfg, []byte(fromEnv), 0o600)
	cmd, w := startDaemon(t, cfg, "PBI_DEMO_SECRET=demo-client-secret-value")
	at := w.waitFor(t, 0, 20*time.Second, "refresh started", "job=sales")

	os.WriteFile(cfg, []byte(demoWith(t, dir, salesOnly("{keyvault: {secret_name: pbi-secret}}"))), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	at = w.waitFor(t, at, 10*time.Second, "reload refused; keeping the running configuration", "credential demo's secret in Key Vault", "restart the daemon")
	// A run after the refusal still reads its secret from the environment.
	at = w.waitFor(t, at, 20*time.Second, "refresh started", "job=sales")
	w.waitFor(t, at, 20*time.Second, "refresh completed", "job=sales")
}

// TestPauseRememberedAcrossARestart: a job paused, then resumed by a
// restart, is taken up from its resume: the slots of its pause are
// neither caught up nor recorded as missed (they were, as after
// downtime). A job that was not paused, down as long, still catches up.
func TestPauseRememberedAcrossARestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"), sqlite.Options{Daemon: &sqlite.Holder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	lastRun := now.Add(-3 * time.Hour).Truncate(time.Hour)
	for _, job := range []string{"paused", "down"} {
		if err := st.Record(ctx, job, lastRun, pbirefresh.Scheduled, pbirefresh.Completed, ""); err != nil {
			t.Fatal(err)
		}
	}
	load := func(pausedEnabled bool) *configs.Config {
		path := filepath.Join(dir, fmt.Sprintf("c-%v.yaml", pausedEnabled))
		os.WriteFile(path, []byte(fmt.Sprintf(`credentials:
  c: {tenant_id: 00000000-0000-0000-0000-000000000000, client_id: 11111111-1111-1111-1111-111111111111, client_secret: {env: X}}
defaults: {catch_up: 3h}
jobs:
  - {name: paused, enabled: %v, schedule: "0 * * * *", credential: c, workspace_id: 22222222-2222-2222-2222-222222222222, dataset_id: 33333333-3333-3333-3333-333333333333}
  - {name: down, schedule: "0 * * * *", credential: c, workspace_id: 22222222-2222-2222-2222-222222222222, dataset_id: 33333333-3333-3333-3333-333333333334}
`, pausedEnabled)), 0o600)
		cfg, err := configs.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	logger := slog.New(slog.DiscardHandler)
	c := &runCmd{store: st, logger: logger}
	c.recordPauses(ctx, load(false)) // the daemon ran with the job paused...
	cfg := load(true)                // ...and starts again with it resumed

	// The scheduler as the daemon starts it (apply), on the same state.
	var mu sync.Mutex
	fired := map[string][]pbirefresh.Kind{}
	m := newMetrics(func() *scheduler.Scheduler { return nil }, func() []string { return nil }, func() (int, bool, bool) { return 0, false, false },
		newHealthGauges(func() map[string]fresh { return nil }, func() bool { return true }))
	sched := scheduler.New(refresh.SystemClock{}, &journal{stateStore: st, m: m, logger: logger}, nil)
	var jobs []scheduler.Job
	for _, j := range cfg.Jobs {
		jobs = append(jobs, scheduler.Job{Name: j.Name, Schedule: j.Parsed, Enabled: *j.Enabled, CatchUp: j.Effective.CatchUp.D(),
			Run: func(ctx context.Context, slot time.Time, kind pbirefresh.Kind) error {
				mu.Lock()
				defer mu.Unlock()
				fired[j.Name] = append(fired[j.Name], kind)
				return nil
			}})
	}
	if err := sched.Set(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	c.recordPauses(ctx, cfg)
	if p, err := st.Pauses(ctx); err != nil || !p["paused"].Paused.IsZero() || p["paused"].Resumed.IsZero() {
		t.Fatalf("after the start: pauses %+v %v, want paused resumed", p, err)
	}
	sched.Tick(ctx, time.Now())
	sched.Wait(ctx)
	mu.Lock()
	defer mu.Unlock()
	// (A slot on the hour between the resume and the tick, a few
	// milliseconds, would fire as scheduled: kinds are compared, not counts.)
	catchUps := func(job string) int {
		n := 0
		for _, k := range fired[job] {
			if k == pbirefresh.CatchUp {
				n++
			}
		}
		return n
	}
	if catchUps("paused") != 0 {
		t.Errorf("the resumed job ran %v: a slot of its pause was caught up", fired["paused"])
	}
	if catchUps("down") != 1 {
		t.Errorf("the job that was down ran %v, want one catch-up", fired["down"])
	}
	runs, err := st.Runs(ctx, store.Query{Job: "paused"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Status == pbirefresh.Missed {
			t.Errorf("a slot of the pause was recorded as missed: %s", r.Slot)
		}
	}
}

// TestReloadKeepsTheStartOnlySettings: a reload never half-applies a
// setting the daemon reads only at its start. A new state.postgres was
// kept in the running configuration, silently, while the daemon stayed on
// the database it had opened.
func TestReloadKeepsTheStartOnlySettings(t *testing.T) {
	pg := func(url string) *configs.Postgres { return &configs.Postgres{URL: url} }
	for _, tc := range []struct {
		name     string
		old, new configs.State
	}{
		{"postgres to another postgres", configs.State{Postgres: pg("postgres://a@127.0.0.1/x")}, configs.State{Postgres: pg("postgres://a@127.0.0.1/y")}},
		{"sqlite to postgres", configs.State{Path: "/var/lib/pbirefresh/state.db"}, configs.State{Postgres: pg("postgres://a@127.0.0.1/x")}},
		{"postgres to sqlite", configs.State{Postgres: pg("postgres://a@127.0.0.1/x")}, configs.State{Path: "/var/lib/pbirefresh/state.db"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, cfg := &configs.Config{State: tc.old}, &configs.Config{State: tc.new}
			cfg.State.Retention.Count = 7 // reloadable: kept from the new one
			msgs := keepStartOnly(old, cfg)
			if len(msgs) != 1 || !strings.Contains(msgs[0], "state.postgres changes take effect at the next start") {
				t.Errorf("warnings %q, want one about state.postgres", msgs)
			}
			if cfg.State.Path != old.State.Path || cfg.State.Postgres != old.State.Postgres {
				t.Errorf("the running configuration's state became %+v, want the one opened at start %+v", cfg.State, old.State)
			}
			if cfg.State.Retention.Count != 7 {
				t.Errorf("retention %+v: a reloadable setting was put back", cfg.State.Retention)
			}
		})
	}
	// The notifier, the secret cache and the embedded emulator are also
	// made once, at the start.
	retries := 3
	old := &configs.Config{Notify: []*configs.NotifyTarget{{Name: "ops", Type: "teams", Retries: &retries}}}
	old.Secrets.CacheTTL = configs.Duration(time.Hour)
	cfg := &configs.Config{Notify: []*configs.NotifyTarget{{Name: "ops", Type: "slack", Retries: &retries}}}
	cfg.Secrets.CacheTTL = configs.Duration(time.Minute)
	cfg.Emulator.Scenario = "other.yaml"
	msgs := keepStartOnly(old, cfg)
	if len(msgs) != 2 || !strings.Contains(msgs[0], "notify changes") || !strings.Contains(msgs[1], "secrets.cache_ttl and emulator.scenario") {
		t.Errorf("warnings %q, want notify's and the cache's", msgs)
	}
	if cfg.Notify[0].Type != "teams" || cfg.Secrets.CacheTTL.D() != time.Hour || cfg.Emulator.Scenario != "" {
		t.Errorf("the running configuration took notify %+v, secrets %+v, emulator %+v", cfg.Notify[0], cfg.Secrets, cfg.Emulator)
	}

	// The same file loaded twice, on Microsoft's cloud: nothing changed,
	// though each load makes its own keyvault_challenge_verification
	// pointer (every reload warned about the endpoints).
	path := filepath.Join(t.TempDir(), "public.yaml")
	os.WriteFile(path, []byte(`cloud: public
credentials:
  c: {tenant_id: 00000000-0000-0000-0000-000000000000, client_id: 11111111-1111-1111-1111-111111111111, client_secret: {env: X}}
jobs:
  - {name: j, schedule: "0 6 * * *", credential: c, workspace_id: 22222222-2222-2222-2222-222222222222, dataset_id: 33333333-3333-3333-3333-333333333333}
`), 0o600)
	first, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	second, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if msgs := keepStartOnly(first, second); len(msgs) != 0 {
		t.Errorf("an unchanged file on cloud public gave warnings %q", msgs)
	}

	// Nothing start-only changed: nothing said.
	same := &configs.Config{State: configs.State{Postgres: pg("postgres://a@127.0.0.1/x")}}
	if msgs := keepStartOnly(same, &configs.Config{State: configs.State{Postgres: pg("postgres://a@127.0.0.1/x")}}); len(msgs) != 0 {
		t.Errorf("an equal state.postgres gave warnings %q", msgs)
	}
}

func TestNextCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(`credentials:
  c: {tenant_id: 00000000-0000-0000-0000-000000000000, client_id: 11111111-1111-1111-1111-111111111111, client_secret: {env: X}}
jobs:
  - {name: ny, schedule: "30 2 * * *", timezone: America/New_York, credential: c, workspace_id: 22222222-2222-2222-2222-222222222222, dataset_id: 33333333-3333-3333-3333-333333333333}
  - {name: utc, schedule: "0 6 * * *", credential: c, workspace_id: 22222222-2222-2222-2222-222222222222, dataset_id: 33333333-3333-3333-3333-333333333333}
  - {name: off, enabled: false, schedule: "@hourly", credential: c, workspace_id: 22222222-2222-2222-2222-222222222222, dataset_id: 33333333-3333-3333-3333-333333333333}
`), 0o600)
	r := runBinary(t, nil, "next", "--config", cfg, "--count", "2", "--from", "2026-03-07T12:00:00Z")
	// Sorted by instant: 03:00 EDT is 07:00Z, after the 06:00Z run.
	want := "2026-03-08T06:00:00Z  utc\n2026-03-08T03:00:00-04:00  ny  shifted from 02:30 (DST gap)\n2026-03-09T06:00:00Z  utc\n2026-03-09T02:30:00-04:00  ny\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("next:\n%s\nwant:\n%s (exit %d, %s)", r.stdout, want, r.code, r.stderr)
	}
	if r := runBinary(t, nil, "next", "--config", cfg, "--from", "yesterday"); r.code != 2 {
		t.Fatalf("bad --from: %+v", r)
	}
}
