package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

// emulatorProcess runs `pbirefresh emulator` and returns its URL, CA file
// and an HTTP client for its control API.
func emulatorProcess(t *testing.T, dir string) (string, string, *http.Client) {
	return emulatorProcessB(t, dir, "")
}

func emulatorProcessB(t testing.TB, dir, scenario string) (string, string, *http.Client) {
	t.Helper()
	ca := filepath.Join(dir, "ca.pem")
	args := []string{"emulator", "--listen", "127.0.0.1:0", "--ca-out", ca}
	if scenario != "" {
		args = append(args, "--scenario", scenario)
	}
	cmd := exec.Command(binary, args...)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	re := regexp.MustCompile(`emulator ready at (https://\S+)`)
	var url string
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if url == "" {
		t.Fatal("the emulator did not start")
	}
	pem, _ := os.ReadFile(ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	return url, ca, hc
}

func crashConfig(url, ca, state string, enabled bool) string {
	return fmt.Sprintf(`cloud: custom
endpoints: {authority_host: %[1]s, powerbi_api: %[1]s, powerbi_scope: "https://analysis.windows.net/powerbi/api/.default", keyvault_challenge_verification: false}
tls: {ca_file: %[2]s}
state: {path: %[3]s}
http: {listen: "off"}
shutdown_timeout: 5s
credentials:
  demo:
    tenant_id: c0ffee00-0000-4000-8000-000000000001
    client_id: c0ffee00-0000-4000-8000-0000000000a1
    client_secret: {keyvault: {vault_url: %[1]s, secret_name: pbi-secret}}
defaults:
  when_busy: skip
  catch_up: 10s
  history_grace: 6s
  poll: {min_interval: 1s, max_interval: 2s}
jobs:
  - {name: sales, enabled: %[4]v, schedule: "*/3 * * * * *", credential: demo, workspace_id: c0ffee00-0000-4000-8000-000000000101, dataset_id: c0ffee00-0000-4000-8000-000000000201, refresh: {type: full}}
  - {name: inventory, enabled: %[4]v, schedule: "*/4 * * * * *", credential: demo, workspace_id: c0ffee00-0000-4000-8000-000000000101, dataset_id: c0ffee00-0000-4000-8000-000000000203, refresh: {retry_count: 1}}
  - {name: team, enabled: %[4]v, schedule: "*/5 * * * * *", credential: demo, workspace_id: c0ffee00-0000-4000-8000-000000000102, dataset_id: c0ffee00-0000-4000-8000-000000000205}
`, url, ca, state, enabled)
}

// TestKilledDaemonNeverDoublesOrLosesARefresh kills the daemon with
// SIGKILL at random moments (before a POST, between a POST and its record,
// while following), restarts it each time, and then proves from the
// emulator's request log and the store that no slot was triggered twice,
// no started refresh was left unfollowed, and every run has a final record.
func TestKilledDaemonNeverDoublesOrLosesARefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end crash test")
	}
	dir := t.TempDir()
	url, ca, hc := emulatorProcess(t, dir)
	// Answer 40% of refresh POSTs a second late after processing them, and
	// hold 30% of the rest a second before processing: a kill then often
	// lands between the POST and its record, or after the record but
	// before the POST took effect.
	faults := `[{"endpoint":"refresh.post","after_handler":true,"latency":"1s","rate":0.4},{"endpoint":"refresh.post","latency":"1s","rate":0.5}]`
	req, _ := http.NewRequest("PUT", url+"/_emulator/faults", strings.NewReader(faults))
	if res, err := hc.Do(req); err != nil || res.StatusCode != 204 {
		t.Fatalf("set faults: %v", err)
	}
	state := filepath.Join(dir, "state.db")
	cfg := filepath.Join(dir, "pbirefresh.yaml")
	if err := os.WriteFile(cfg, []byte(crashConfig(url, ca, state, true)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "IDENTITY_ENDPOINT="+url+"/msi/token", "IDENTITY_HEADER=demo-identity-header")

	rng := rand.New(rand.NewPCG(2026, 11))
	var logs bytes.Buffer
	var logsMu sync.Mutex
	const kills = 12
	for i := 0; i < kills; i++ {
		cmd := exec.Command(binary, "run", "--config", cfg)
		cmd.Env, cmd.Stderr = env, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(300+rng.IntN(4500)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	// Last start: no new slots, only settle what was left in flight; then a
	// clean stop.
	if err := os.WriteFile(cfg, []byte(crashConfig(url, ca, state, false)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "--config", cfg)
	cmd.Env = env
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Signals are handled once the daemon says it started. The reader
	// ends at EOF, when the daemon exits; Wait comes after it.
	started, readerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readerDone)
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			line := sc.Text()
			logsMu.Lock()
			logs.WriteString(line + "\n")
			logsMu.Unlock()
			if !once && strings.Contains(line, "pbirefresh started") {
				once = true
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not start")
	}
	st, err := sqlite.Open(context.Background(), state, sqlite.Options{ReadOnly: true}) // beside the daemon
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	deadline := time.Now().Add(90 * time.Second)
	for {
		inflight, err := st.InFlight(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(inflight) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs still in flight after the settling pass: %+v", inflight)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	<-readerDone
	if err := cmd.Wait(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}

	// The emulator's side: every refresh a POST created.
	reqs := requestLog(t, hc, url)
	created := map[string]bool{}
	for _, r := range reqs {
		if r.Operation == "refresh.post" && r.RefreshID != "" {
			created[r.RefreshID] = true
		}
	}
	// The daemon's side.
	runs, err := st.Runs(ctx, store.Query{})
	if err != nil {
		t.Fatal(err)
	}
	byRefresh := map[string][]store.Run{}
	statuses := map[pbirefresh.Status]int{}
	for _, r := range runs {
		statuses[r.Status]++
		if r.Status.InFlight() {
			t.Errorf("run without a final record: %+v", r)
		}
		if r.RefreshID != "" {
			byRefresh[r.RefreshID] = append(byRefresh[r.RefreshID], r)
		}
	}
	for id := range created {
		switch n := len(byRefresh[id]); {
		case n == 0:
			t.Errorf("refresh %s was started but no run followed it (a slot triggered twice, or a refresh left unfollowed)", id)
		case n > 1:
			t.Errorf("refresh %s is claimed by %d runs", id, n)
		}
	}
	for id := range byRefresh {
		if !created[id] {
			t.Errorf("run claims refresh %s that no POST created", id)
		}
	}
	logsMu.Lock()
	out := logs.String()
	logsMu.Unlock()
	reattached := strings.Count(out, `msg="reattached to refresh"`)
	settled := strings.Count(out, "interrupted run had not started a refresh")
	adopted := strings.Count(out, "interrupted run's refresh found in the history")
	t.Logf("%d kills: %d refreshes created, %d runs recorded %v; %d reattachments, %d killed between POST and record (found in the history), %d killed before any refresh started",
		kills, len(created), len(runs), statuses, reattached, adopted, settled)
	if len(created) < 5 || reattached == 0 || adopted+settled == 0 {
		t.Fatalf("the test exercised too little: %d refreshes, %d reattachments, %d interrupted POSTs", len(created), reattached, adopted+settled)
	}
}
