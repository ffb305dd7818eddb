package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

// The tests in this file are named after the problems a hostile client and
// a hurried operator found; each runs the built binary as an operator would.

// foreignDB writes another program's SQLite database.
func foreignDB(t *testing.T, path string) []byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// onlyJob is the demo config with its state in dir, every job but one
// paused ("none": all), and extra appended.
func onlyJob(t *testing.T, dir, job string, extra string) string {
	return demoWith(t, dir, func(s string) string {
		for _, j := range []string{"sales", "finance", "inventory", "forecast", "team"} {
			if j != job {
				s = strings.Replace(s, "  - name: "+j+" ", "  - enabled: false\n    name: "+j+" ", 1)
			}
		}
		return s + extra
	})
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "pbirefresh.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestForeignStateFileIsNeverWritten: state.path pointing at another
// program's SQLite file is refused by history and run, the file left byte
// for byte as it was, with the fix.
func TestForeignStateFileIsNeverWritten(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "app.db")
	want := foreignDB(t, state)
	cfg := writeConfig(t, dir, strings.Replace(demoWith(t, dir, func(s string) string { return s }), filepath.Join(dir, "state.db"), state, 1))
	for _, args := range [][]string{{"history", "--config", cfg}, {"run", "--config", cfg}} {
		r := runBinary(t, nil, args...)
		if r.code != 3 || !strings.Contains(r.stderr, "another program's SQLite database") || !strings.Contains(r.stderr, "hint: point state.path elsewhere") {
			t.Fatalf("%v: %+v", args, r)
		}
		got, _ := os.ReadFile(state)
		if !bytes.Equal(got, want) {
			t.Fatalf("%v changed the foreign file", args)
		}
		if _, err := os.Stat(state + "-wal"); err == nil {
			t.Fatalf("%v created a -wal file beside it", args)
		}
	}
}

// TestSecondDaemonOnOneStateFile: a second daemon on the same state file
// refuses to start, naming the holder; history and next work beside it.
func TestSecondDaemonOnOneStateFile(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, onlyJob(t, dir, "sales", ""))
	first, _ := startDaemon(t, cfg)
	host, _ := os.Hostname()
	r := runBinary(t, nil, "run", "--config", cfg)
	if r.code != 3 || !strings.Contains(r.stderr, fmt.Sprintf("pid %d on host %s", first.Process.Pid, host)) || !strings.Contains(r.stderr, "hint: stop that daemon first") {
		t.Fatalf("second daemon: %+v", r)
	}
	if r := runBinary(t, nil, "history", "--config", cfg); r.code != 0 || !strings.Contains(r.stdout, "SLOT (UTC)") {
		t.Fatalf("history beside the daemon: %+v", r)
	}
	if r := runBinary(t, nil, "next", "--config", cfg, "--count", "1"); r.code != 0 || !strings.Contains(r.stdout, "sales") {
		t.Fatalf("next beside the daemon: %+v", r)
	}
}

// TestOddConfigsRefused: empty, comment-only and "---" alone configs, a
// second document and broken YAML on line 2 exit 2 with the reason and
// the line; a FIFO, a device and a huge value are refused at once.
func TestOddConfigsRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	valid := demoWith(t, dir, func(s string) string { return s })
	for _, c := range []struct{ path, want string }{
		{write("empty.yaml", ""), "empty.yaml: the file has no YAML content"},
		{write("comments.yaml", "# only a comment\n"), "comments.yaml: the file has no YAML content"},
		{write("dashes.yaml", "---\n"), "dashes.yaml: the file has no YAML content"},
		{write("two.yaml", valid+"---\ncloud: public\n"), fmt.Sprintf("two.yaml:%d: a second YAML document", strings.Count(valid, "\n")+1)},
		{write("line2.yaml", "cloud: emulator\n- jobs\n"), "line2.yaml:2: did not find expected key"},
		{write("long.yaml", "cloud: \""+strings.Repeat("x", 8<<20)+"\"\n"), `long.yaml:1:8: unknown cloud "xxxx`},
		{fifo, "is not a regular file (a named pipe)"},
		{"/dev/zero", "is not a regular file (a device)"},
	} {
		r := runBinary(t, nil, "validate", "--config", c.path)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) || len(r.stderr) > 4000 {
			t.Errorf("%s: exit %d, want 2 and %q; stderr (%d bytes) %.300s", filepath.Base(c.path), r.code, c.want, len(r.stderr), r.stderr)
		}
	}
}

// TestOneShotCommandsStopOnFirstSignal: once, following a long refresh,
// exits promptly at the first SIGTERM, with 143 (the refresh keeps
// running).
func TestOneShotCommandsStopOnFirstSignal(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, demoWith(t, dir, func(s string) string { return s }))
	cmd := exec.Command(binary, "once", "--config", cfg, "--job", "forecast") // 30-60 s
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &logWatcher{}
	done := make(chan struct{})
	go func() { w.scan(bufio.NewScanner(stderr)); close(done) }()
	w.waitFor(t, 0, 30*time.Second, "refresh started")
	began := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("once still running 10 s after SIGTERM")
	}
	cmd.Wait()
	if el := time.Since(began); el > oneShotGrace+3*time.Second {
		t.Fatalf("exited %s after SIGTERM", el)
	}
	if code := cmd.ProcessState.ExitCode(); code != 143 {
		t.Fatalf("exit code %d after SIGTERM, want 143", code)
	}
}

// TestBrokenStateFailsReadiness: when a write to the state database fails
// at run time, /readyz fails at once and the log says so loudly; it
// recovers when writes succeed again.
func TestBrokenStateFailsReadiness(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, onlyJob(t, dir, "sales", "\nhttp: {listen: "+addr+"}\n"))
	cfg = writeConfig(t, dir, strings.Replace(mustRead(t, cfg), `schedule: "*/15 * * * * *"`, `schedule: "*/2 * * * * *"`, 1))
	_, w := startDaemon(t, cfg)
	if code, _ := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Fatalf("readyz %d before the fault", code)
	}
	// Another connection makes every insert fail, as a full disk would.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "state.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER broken BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, 0, 20*time.Second, "STATE DATABASE WRITE FAILED", "job=sales")
	code, body := get(t, "http://"+addr+"/readyz")
	if code != 503 || !strings.Contains(body, "disk is full") {
		t.Fatalf("readyz after a failed write: %d %s", code, body)
	}
	if _, err := db.Exec(`DROP TRIGGER broken`); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if code, _ := get(t, "http://"+addr+"/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("readyz did not recover after writes succeeded again")
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBrokenStateFailsStartup: a state file or directory the service user
// cannot write stops the start with the fix, instead of a daemon that
// reports ready and records nothing. Root writes anyway, so as root the
// daemon runs as nobody.
func TestBrokenStateFailsStartup(t *testing.T) {
	dir, err := os.MkdirTemp("", "pbirefresh-ro")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { os.Chmod(p, 0o755); return nil })
		os.RemoveAll(dir)
	}()
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "pbirefresh")
	b, _ := os.ReadFile(binary)
	os.WriteFile(bin, b, 0o755)
	stateDir := filepath.Join(dir, "state")
	os.Mkdir(stateDir, 0o755)
	state := filepath.Join(stateDir, "state.db")
	st, err := sqlite.Open(context.Background(), state, sqlite.Options{Daemon: &sqlite.Holder{}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	cfg := writeConfig(t, dir, strings.Replace(demoWith(t, dir, func(s string) string { return s }), filepath.Join(dir, "state.db"), state, 1))
	runAs := func() result {
		cmd := exec.Command(bin, "run", "--config", cfg)
		if os.Geteuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		} else {
			os.Chmod(state, 0o444)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Start()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("the daemon started on a read-only state file:\n%s", out.String())
		}
		return result{code: cmd.ProcessState.ExitCode(), stderr: out.String()}
	}
	os.Chmod(state, 0o444)
	os.Chmod(stateDir, 0o555)
	r := runAs()
	if r.code != 3 || !strings.Contains(r.stderr, "state "+state) || !strings.Contains(r.stderr, "hint: make the state file and its directory writable by the service user") {
		t.Fatalf("%+v", r)
	}
}

// TestIdleConnectionsDoNotStarveTheServer: thousands of idle keep-alive
// connections cannot exhaust the daemon's descriptors or keep /healthz
// from answering.
func TestIdleConnectionsDoNotStarveTheServer(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, onlyJob(t, dir, "none", "\nhttp: {listen: "+addr+"}\n"))
	cmd, _ := startDaemon(t, cfg)
	const idle = 2000
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < idle; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		// A complete request, then silence: the connection is idle.
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz with %d idle connections held: %v", idle, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("/healthz: %d", res.StatusCode)
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid))
	t.Logf("%d idle client connections; the daemon holds %d descriptors (cap %d connections)", idle, len(fds), maxConns)
	if len(fds) > maxConns+100 {
		t.Fatalf("the daemon holds %d descriptors with a cap of %d connections", len(fds), maxConns)
	}
}

// TestTokenFileRotatedOnReload: after the token file changes and SIGHUP,
// the new token is accepted, the old one refused, and the log says so; a
// group-readable file gets a warning.
func TestTokenFileRotatedOnReload(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("old-token-0123456789abcdef"), 0o640)
	os.Chmod(tok, 0o640)
	// The warning is for a group other than the daemon's own.
	foreign := foreignGroup(tok)
	cfg := writeConfig(t, dir, onlyJob(t, dir, "none", fmt.Sprintf("\nhttp: {listen: %s, token_file: %s}\n", addr, tok)))
	cmd, w := startDaemon(t, cfg)
	if foreign {
		w.waitFor(t, 0, 10*time.Second, "http.token_file is readable by its group")
	} else {
		t.Log("no group other than this user's own to give the token file: its warning is not checked")
	}
	post := func(token string) int {
		req, _ := http.NewRequest("POST", "http://"+addr+"/api/jobs/sales/run", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := post("old-token-0123456789abcdef"); code != 409 { // sales is paused: the token was accepted
		t.Fatalf("old token before rotation: %d", code)
	}
	os.WriteFile(tok, []byte("new-token-0123456789abcdef"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	w.waitFor(t, 0, 10*time.Second, "http token reloaded")
	if code := post("old-token-0123456789abcdef"); code != 401 {
		t.Fatalf("old token after rotation: %d, want 401", code)
	}
	if code := post("new-token-0123456789abcdef"); code != 409 {
		t.Fatalf("new token after rotation: %d, want it accepted (409: the job is paused)", code)
	}
}

// TestPausedJobRefusedByTheAPI: a manual run of a job with enabled: false
// is refused with 409 and the fix; run-now says so and exits 3.
func TestPausedJobRefusedByTheAPI(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("token-0123456789abcdef"), 0o600)
	cfg := writeConfig(t, dir, onlyJob(t, dir, "none", fmt.Sprintf("\nhttp: {listen: %s, token_file: %s}\n", addr, tok)))
	_, w := startDaemon(t, cfg)
	r := runBinary(t, nil, "run-now", "--config", cfg, "--job", "payroll")
	if r.code != 3 || !strings.Contains(r.stderr, `job "payroll" is paused (enabled: false); set enabled: true and reload`) {
		t.Fatalf("%+v", r)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		if strings.Contains(l, "job=payroll") && !strings.Contains(l, "job paused") {
			t.Fatalf("a paused job fired: %s", l)
		}
	}
}

// TestEveryRunEndIsLogged: runs that end before a refresh exists (404, the
// shared-capacity quota, a wrong secret) are logged with the job, the
// service's code, the message and the hint; the status page shows the
// hint too.
func TestEveryRunEndIsLogged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, demoWith(t, dir, func(s string) string {
		for _, j := range []string{"sales", "finance", "inventory", "forecast"} {
			s = strings.Replace(s, "  - name: "+j+" ", "  - enabled: false\n    name: "+j+" ", 1)
		}
		s = strings.Replace(s, "    enabled: false              # paused; `once --job payroll` shows the error and its fix\n", "", 1)
		s = strings.Replace(s, `schedule: "@every 1m"`, `schedule: "*/2 * * * * *"`, 1)      // payroll: 404
		s = strings.Replace(s, `schedule: "*/30 * * * * *"`, `schedule: "*/2 * * * * *"`, 1) // team: shared capacity, 8 a day
		s = strings.Replace(s, "credentials:\n", "credentials:\n  wrong:\n    tenant_id: c0ffee00-0000-4000-8000-000000000001\n    client_id: c0ffee00-0000-4000-8000-0000000000a1\n    client_secret: {env: PBI_WRONG_SECRET}\n", 1)
		s = strings.Replace(s, "\njobs:\n", "\njobs:\n  - {name: badsecret, schedule: \"*/2 * * * * *\", credential: wrong, workspace_id: c0ffee00-0000-4000-8000-000000000101, dataset_id: c0ffee00-0000-4000-8000-000000000201}\n", 1)
		return s + "\nhttp: {listen: " + addr + "}\n"
	}))
	_, w := startDaemon(t, cfg, "PBI_WRONG_SECRET=not-the-secret")
	w.waitFor(t, 0, 30*time.Second, "refresh not started", "job=payroll", "code=PowerBIEntityNotFound", "hint=")
	w.waitFor(t, 0, 30*time.Second, "refresh not started", "job=badsecret", "code=AADSTS7000215", "hint=")
	// The quota's hint names the job's schedule and what it starts in a day.
	w.waitFor(t, 0, 120*time.Second, "refresh not started", "job=team", "status=quota_exceeded", "hint=", `schedule \"*/2 * * * * *\" starts more than 100 refreshes in 24 hours, more than shared capacity's 8; shared (Pro) capacity allows 8`)
	_, payroll := get(t, "http://"+addr+"/jobs/payroll")
	_, badsecret := get(t, "http://"+addr+"/jobs/badsecret")
	page := payroll + badsecret
	for _, want := range []string{"fix: the workspace or dataset was not found", "[PowerBIEntityNotFound]", "[AADSTS7000215]", "fix: the client secret is wrong"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
}

// TestStatusPageEscapesEveryStoredValue: markup planted in every text
// field of the state database reaches the status page escaped; and on
// loopback, a request for another host name (DNS rebinding) is refused.
func TestStatusPageEscapesEveryStoredValue(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, onlyJob(t, dir, "none", "\nhttp: {listen: "+addr+"}\n"))
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "state.db"), sqlite.Options{Daemon: &sqlite.Holder{}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, _ := sql.Open("sqlite", "file:"+filepath.Join(dir, "state.db"))
	const mark = `<x-planted onload="alert(1)">'&`
	// Recent slots: retention would prune old ones at start-up.
	now := time.Now().UnixNano()
	if _, err := db.Exec(`INSERT INTO runs (job, slot, kind, status, refresh_id, posted, ended, polls, error, hint, note, code)
		VALUES ('sales', ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?), ('sales', ?, ?, ?, ?, ?, ?, 1, '', '', ?, '')`,
		now-2e9, mark, mark, mark, now-2e9, now-1e9, mark, mark, mark, mark, now-1e9, mark, mark, mark, now-1e9, now, mark); err != nil {
		t.Fatal(err)
	}
	db.Close()
	startDaemon(t, cfg)
	code, page := get(t, "http://"+addr+"/")
	if code != 200 || strings.Contains(page, "<x-planted") || !strings.Contains(page, "&lt;x-planted") {
		t.Fatalf("status page %d: planted markup not escaped:\n%s", code, page)
	}
	_, api := get(t, "http://"+addr+"/api/runs")
	if strings.Contains(api, "<x-planted") {
		t.Fatal("the API's JSON carries raw markup (Go escapes < in JSON strings)")
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Host = "attacker.example:9464"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("Host attacker.example on a loopback listener: %d, want 421", res.StatusCode)
	}
	for _, host := range []string{"localhost", "127.0.0.1", addr, "[::1]:1"} {
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("Host %s: %d", host, res.StatusCode)
		}
	}
}

// TestAPIPagesAreBounded: /api/runs caps a page and links the next one;
// following the links walks the whole history once.
func TestAPIPagesAreBounded(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, onlyJob(t, dir, "none", "\nhttp: {listen: "+addr+"}\n"))
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "state.db"), sqlite.Options{Daemon: &sqlite.Holder{}})
	if err != nil {
		t.Fatal(err)
	}
	// Recent slots, fewer than 1000 per job: retention prunes beyond that
	// at start-up.
	for i := 0; i < 2550; i++ {
		st.Record(context.Background(), []string{"sales", "finance", "inventory"}[i%3], time.Now().Add(-time.Duration(i)*time.Minute), pbirefresh.Scheduled, pbirefresh.Missed, "")
	}
	st.Close()
	startDaemon(t, cfg)
	seen := map[string]bool{}
	next, pages := "/api/runs?limit=10000", 0
	for next != "" && pages < 10 {
		res, err := http.Get("http://" + addr + next)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		pages++
		n := strings.Count(string(b), `"id":`)
		if n > 1000 {
			t.Fatalf("a page of %d runs", n)
		}
		for _, f := range strings.Split(string(b), `"id": `)[1:] {
			id := f[:strings.IndexAny(f, ",\n")]
			if seen[id] {
				t.Fatalf("run %s on two pages", id)
			}
			seen[id] = true
		}
		next = ""
		if l := res.Header.Get("Link"); l != "" {
			next = l[1:strings.Index(l, ">")]
		}
	}
	if len(seen) != 2550 || pages != 3 {
		t.Fatalf("%d runs in %d pages, want 2550 in 3", len(seen), pages)
	}
}

// TestReloadKeepsTheToken: the metrics test once saw a second token. The
// daemon did ask for one: a reload rebuilt every credential, and a run
// fired just before it took the reloaded job's new client. A reload now
// keeps unchanged credentials and a fired run keeps its definition.
func TestReloadKeepsTheToken(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	text := strings.Replace(onlyJob(t, dir, "sales", "\nhttp: {listen: "+addr+"}\n"), `schedule: "*/15 * * * * *"`, `schedule: "*/2 * * * * *"`, 1)
	cfg := writeConfig(t, dir, text)
	cmd, w := startDaemon(t, cfg)
	at := w.waitFor(t, 0, 30*time.Second, "refresh completed", "job=sales")
	for i := 0; i < 3; i++ { // reload while runs fire and follow
		cmd.Process.Signal(syscall.SIGHUP)
		at = w.waitFor(t, at, 10*time.Second, "configuration reloaded")
	}
	w.waitFor(t, at, 30*time.Second, "refresh completed", "job=sales")
	_, metrics := get(t, "http://"+addr+"/metrics")
	if got := metricValue(t, metrics, `pbirefresh_token_requests_total{credential="demo"}`); got != 1 {
		t.Fatalf("token requests %v after reloads, want 1", got)
	}
}

// foreignGroup gives path a group other than this process's primary one:
// any, as root; else a supplementary group of this user. It says whether
// it could.
func foreignGroup(path string) bool {
	gid := os.Getgid() + 4242
	if os.Geteuid() != 0 {
		groups, _ := os.Getgroups()
		gid = -1
		for _, g := range groups {
			if g != os.Getgid() {
				gid = g
				break
			}
		}
		if gid < 0 {
			return false
		}
	}
	return os.Chown(path, -1, gid) == nil
}
