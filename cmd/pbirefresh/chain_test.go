package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/emulator"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

const (
	chainWorkspace = "c0ffee00-0000-4000-8000-000000000111"
	stagingFlow    = "c0ffee00-0000-4000-8000-000000000311"
	ordersModel    = "c0ffee00-0000-4000-8000-000000000211"
	stockModel     = "c0ffee00-0000-4000-8000-000000000212"
	boardModel     = "c0ffee00-0000-4000-8000-000000000213"
	brokenModel    = "c0ffee00-0000-4000-8000-000000000214"
	brokenSummary  = "c0ffee00-0000-4000-8000-000000000215"
)

// chainConfig: staging (a dataflow) feeds orders (named, not by id) and
// stock, which board joins; broken-staging fails, so broken-model and
// broken-summary are skipped. Both roots run on schedule.
func chainConfig(url, ca, state, schedule string, enabled bool) string {
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
  catch_up: 1m
  history_grace: 2s
  poll: {min_interval: 1s, max_interval: 2s}
jobs:
  - {name: staging, enabled: %[5]v, schedule: %[4]q, credential: demo, workspace_id: %[6]s, dataflow_id: %[7]s}
  - {name: orders, after: [staging], credential: demo, workspace: Chains, dataset: Orders Model}
  - {name: stock, after: [staging], credential: demo, workspace_id: %[6]s, dataset_id: %[8]s}
  - {name: board, after: [orders, stock], credential: demo, workspace_id: %[6]s, dataset_id: %[9]s}
  - {name: broken-staging, enabled: %[5]v, schedule: %[4]q, credential: demo, workspace_id: %[6]s, dataflow_id: c0ffee00-0000-4000-8000-000000000312}
  - {name: broken-model, after: [broken-staging], credential: demo, workspace_id: %[6]s, dataset_id: %[10]s}
  - {name: broken-summary, after: [broken-model], credential: demo, workspace_id: %[6]s, dataset_id: %[11]s}
`, url, ca, state, schedule, enabled, chainWorkspace, stagingFlow, stockModel, boardModel, brokenModel, brokenSummary)
}

var chainEnv = []string{"IDENTITY_HEADER=demo-identity-header"}

// requestLog reads the emulator's request log.
func requestLog(tb testing.TB, hc *http.Client, base string) []emulator.Request {
	tb.Helper()
	res, err := hc.Get(base + "/_emulator/requests")
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	var reqs []emulator.Request
	if err := json.NewDecoder(res.Body).Decode(&reqs); err != nil {
		tb.Fatal(err)
	}
	return reqs
}

// transactions reads a dataflow's transactions from the emulator, as the
// app would, with a token of its own.
func transactions(t *testing.T, hc *http.Client, base, workspace, dataflow string) []struct {
	ID, Status         string
	StartTime, EndTime time.Time
} {
	t.Helper()
	form := url.Values{"client_id": {"c0ffee00-0000-4000-8000-0000000000a1"}, "client_secret": {"demo-client-secret-value"},
		"grant_type": {"client_credentials"}, "scope": {"https://analysis.windows.net/powerbi/api/.default"}}
	res, err := hc.PostForm(base+"/c0ffee00-0000-4000-8000-000000000001/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	req, _ := http.NewRequest("GET", base+"/v1.0/myorg/groups/"+workspace+"/dataflows/"+dataflow+"/transactions", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Value []struct {
			ID, Status         string
			StartTime, EndTime time.Time
		} `json:"value"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
		t.Fatalf("transactions: %d %v", res.StatusCode, err)
	}
	return out.Value
}

// waitRuns polls the store (read-only, beside the daemon) until done says
// the runs are complete.
func waitRuns(t *testing.T, state string, timeout time.Duration, done func([]store.Run) bool) []store.Run {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var runs []store.Run
	for {
		st, err := sqlite.Open(context.Background(), state, sqlite.Options{ReadOnly: true})
		if err == nil {
			runs, err = st.Runs(context.Background(), store.Query{})
			st.Close()
		}
		if err == nil && done(runs) {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs not complete within %s: %v; runs: %+v", timeout, err, runs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func byJob(runs []store.Run) map[string][]store.Run {
	out := map[string][]store.Run{}
	for _, r := range runs {
		out[r.Job] = append(out[r.Job], r)
	}
	return out
}

func final(runs []store.Run) bool {
	for _, r := range runs {
		if r.Status.InFlight() {
			return false
		}
	}
	return true
}

// TestChainRunsInOrder: the dataflow is refreshed and followed to its
// end; only then are the two datasets that read it posted; the dataset
// that joins them runs once, after both; a failed dataflow skips its
// dependents and theirs, naming the upstream.
func TestChainRunsInOrder(t *testing.T) {
	dir := t.TempDir()
	base, ca, hc := emulatorProcessB(t, dir, "../../emulator/scenarios/chains.yaml")
	state := filepath.Join(dir, "state.db")
	at := time.Now().UTC().Add(4 * time.Second)
	schedule := fmt.Sprintf("%d %d %d * * *", at.Second(), at.Minute(), at.Hour())
	cfg := filepath.Join(dir, "chain.yaml")
	addr := freePort(t)
	body := strings.Replace(chainConfig(base, ca, state, schedule, true), `http: {listen: "off"}`, "http: {listen: "+addr+"}", 1)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, logs := startDaemon(t, cfg, append(chainEnv, "IDENTITY_ENDPOINT="+base+"/msi/token")...)
	logs.waitFor(t, 0, 30*time.Second, "names resolved", "job=orders", "dataset_id="+ordersModel)
	runs := waitRuns(t, state, 90*time.Second, func(runs []store.Run) bool {
		j := byJob(runs)
		return len(j["board"]) > 0 && len(j["broken-summary"]) > 0 && final(runs)
	})
	logs.waitFor(t, 0, 10*time.Second, "runs after it skipped", "job=broken-staging", "status=failed", "skipped=broken-model,broken-summary")
	j := byJob(runs)
	for _, name := range []string{"staging", "orders", "stock", "board", "broken-staging", "broken-model", "broken-summary"} {
		if len(j[name]) != 1 {
			t.Fatalf("job %s: %d runs, want 1: %+v", name, len(j[name]), runs)
		}
	}
	staging := j["staging"][0]
	if staging.Status != pbirefresh.Completed || staging.RefreshID == "" {
		t.Fatalf("staging: %+v", staging)
	}
	for _, name := range []string{"orders", "stock"} {
		r := j[name][0]
		if r.Status != pbirefresh.Completed || r.Kind != pbirefresh.After || r.Upstream != "staging" || r.UpstreamRun != staging.ID || !r.Slot.Equal(staging.Slot) {
			t.Errorf("%s: %+v", name, r)
		}
	}
	board := j["board"][0]
	if board.Status != pbirefresh.Completed || board.Kind != pbirefresh.After || (board.Upstream != "orders" && board.Upstream != "stock") {
		t.Errorf("board: %+v", board)
	}
	if r := j["broken-model"][0]; r.Status != pbirefresh.Skipped || r.Upstream != "broken-staging" || r.Note != "upstream broken-staging did not complete (failed)" {
		t.Errorf("broken-model: %+v", r)
	}
	if r := j["broken-summary"][0]; r.Status != pbirefresh.Skipped || r.Upstream != "broken-model" || !strings.Contains(r.Note, "broken-model was skipped") {
		t.Errorf("broken-summary: %+v", r)
	}

	// The emulator's side: the order of the POSTs against the dataflow's
	// own transaction times.
	txns := transactions(t, hc, base, chainWorkspace, stagingFlow)
	if len(txns) != 1 || txns[0].Status != "Success" || txns[0].ID != staging.RefreshID {
		t.Fatalf("staging's transactions: %+v (run claims %s)", txns, staging.RefreshID)
	}
	posts := map[string][]time.Time{}
	for _, r := range requestLog(t, hc, base) {
		if r.Operation == "refresh.post" || r.Operation == "dataflow.refresh" {
			for _, id := range []string{stagingFlow, ordersModel, stockModel, boardModel, brokenModel, brokenSummary} {
				if strings.Contains(r.Path, id) {
					posts[id] = append(posts[id], r.Time)
				}
			}
		}
	}
	for id, n := range map[string]int{stagingFlow: 1, ordersModel: 1, stockModel: 1, boardModel: 1, brokenModel: 0, brokenSummary: 0} {
		if len(posts[id]) != n {
			t.Errorf("%s: %d POSTs, want %d", id, len(posts[id]), n)
		}
	}
	end := txns[0].EndTime
	for _, id := range []string{ordersModel, stockModel} {
		if len(posts[id]) == 1 && !posts[id][0].After(end) {
			t.Errorf("dataset %s posted at %s, before the dataflow's transaction ended at %s", id, posts[id][0], end)
		}
	}
	for _, name := range []string{"orders", "stock"} {
		if r := j[name][0]; len(posts[boardModel]) == 1 && !posts[boardModel][0].After(r.ServiceEnd) {
			t.Errorf("board posted at %s, before %s ended at %s", posts[boardModel][0], name, r.ServiceEnd)
		}
	}
	// The status page and the API show the chain, and the names with the
	// ids they resolved to.
	_, page := get(t, "http://"+addr+"/jobs/board")
	for _, want := range []string{`runs after</dt><dd><a href="/jobs/orders">orders</a>, <a href="/jobs/stock">stock</a> (when they have all completed`, `(<a href="/jobs/`} {
		if !strings.Contains(page, want) {
			t.Errorf("board's page lacks %q", want)
		}
	}
	_, page = get(t, "http://"+addr+"/jobs/staging")
	if !strings.Contains(page, `then runs</dt><dd><a href="/jobs/orders">orders</a>, <a href="/jobs/stock">stock</a>`) {
		t.Errorf("staging's page does not name its dependents")
	}
	_, api := get(t, "http://"+addr+"/api/jobs")
	var views []jobView
	if err := json.Unmarshal([]byte(api), &views); err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		switch v.Name {
		case "orders":
			if v.Workspace != "Chains" || v.WorkspaceID != chainWorkspace || v.Dataset != "Orders Model" || v.DatasetID != ordersModel ||
				len(v.Recent) != 1 || v.Recent[0].Upstream != "staging" || v.Recent[0].UpstreamRun != staging.ID {
				t.Errorf("/api/jobs, orders: %+v", v)
			}
		case "board":
			if fmt.Sprint(v.After) != "[orders stock]" {
				t.Errorf("/api/jobs, board: %+v", v)
			}
		case "staging":
			if fmt.Sprint(v.Dependents) != "[orders stock]" || v.Refresh != "dataflow" || v.DataflowID != stagingFlow {
				t.Errorf("/api/jobs, staging: %+v", v)
			}
		}
	}
	t.Logf("dataflow transaction %s ended %s; orders posted +%s, stock +%s; board posted +%s",
		txns[0].ID, end.Format(time.RFC3339Nano), posts[ordersModel][0].Sub(end), posts[stockModel][0].Sub(end), posts[boardModel][0].Sub(end))
}

// TestKilledDaemonKeepsChains kills the daemon at random moments while
// chains run (a dataflow every 8 seconds, its two datasets, the join),
// restarts it each time, then lets a last start settle what was left.
// Every dataflow run that ended has exactly one run of each dependent at
// its slot (completed, or skipped when it failed), no refresh or
// transaction was started twice or left unclaimed, and nothing is left in
// flight or triggered.
func TestKilledDaemonKeepsChains(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end crash test")
	}
	dir := t.TempDir()
	base, ca, hc := emulatorProcessB(t, dir, "../../emulator/scenarios/chains.yaml")
	state := filepath.Join(dir, "state.db")
	cfg := filepath.Join(dir, "chain.yaml")
	write := func(enabled bool) {
		if err := os.WriteFile(cfg, []byte(chainConfig(base, ca, state, "*/8 * * * * *", enabled)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(true)
	env := append(os.Environ(), append(chainEnv, "IDENTITY_ENDPOINT="+base+"/msi/token")...)
	rng := rand.New(rand.NewPCG(2026, 12))
	var logs strings.Builder
	const kills = 14
	for i := 0; i < kills; i++ {
		cmd := exec.Command(binary, "run", "--config", cfg)
		var out strings.Builder
		cmd.Env, cmd.Stderr = env, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// A random moment of the chain: the kill is the point, not a wait
		// for something to happen. A daemon that exits first fails.
		select {
		case err := <-exited:
			t.Fatalf("the daemon exited on its own: %v\n%s", err, out.String())
		case <-time.After(time.Duration(500+rng.IntN(6000)) * time.Millisecond):
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		logs.WriteString(out.String())
	}
	// The last start schedules no dataflow; it settles runs in flight and
	// runs what was triggered, then stops cleanly.
	write(false)
	cmd, w := startDaemon(t, cfg, append(chainEnv, "IDENTITY_ENDPOINT="+base+"/msi/token")...)
	runs := waitRuns(t, state, 2*time.Minute, final)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	w.mu.Lock()
	logs.WriteString(strings.Join(w.lines, "\n"))
	w.mu.Unlock()

	// Refreshes and transactions: each started once, each claimed by one run.
	created := map[string]bool{}
	for _, r := range requestLog(t, hc, base) {
		if r.Operation == "refresh.post" && r.RefreshID != "" {
			created[r.RefreshID] = true
		}
	}
	for _, flow := range []string{stagingFlow, "c0ffee00-0000-4000-8000-000000000312"} {
		for _, tx := range transactions(t, hc, base, chainWorkspace, flow) {
			created[tx.ID] = true
		}
	}
	claims := map[string]int{}
	for _, r := range runs {
		if r.RefreshID != "" {
			claims[r.RefreshID]++
		}
	}
	for id := range created {
		if claims[id] != 1 {
			t.Errorf("refresh or transaction %s is claimed by %d runs, want 1", id, claims[id])
		}
	}
	for id := range claims {
		if !created[id] {
			t.Errorf("a run claims %s, which nothing created", id)
		}
	}
	// Chains: by slot.
	type key struct {
		job  string
		slot time.Time
	}
	at := map[key][]store.Run{}
	for _, r := range runs {
		k := key{r.Job, r.Slot.UTC()}
		at[k] = append(at[k], r)
	}
	chains, completedChains, boards := 0, 0, 0
	for _, r := range runs {
		if r.Job != "staging" || !r.Status.Result() {
			continue
		}
		chains++
		for _, dep := range []string{"orders", "stock"} {
			got := at[key{dep, r.Slot.UTC()}]
			if len(got) != 1 {
				t.Errorf("staging run %d (%s, %s): %s has %d runs at its slot, want 1: %+v", r.ID, r.Slot, r.Status, dep, len(got), got)
				continue
			}
			d := got[0]
			if d.Kind != pbirefresh.After || d.Upstream != "staging" || d.UpstreamRun != r.ID {
				t.Errorf("%s at %s not triggered by staging run %d: %+v", dep, r.Slot, r.ID, d)
			}
			if (r.Status == pbirefresh.Completed) == (d.Status == pbirefresh.Skipped) {
				t.Errorf("staging %s, yet %s %s: %+v", r.Status, dep, d.Status, d)
			}
		}
		if r.Status == pbirefresh.Completed {
			completedChains++
		}
	}
	for _, r := range runs {
		if r.Job == "board" && r.Status == pbirefresh.Completed {
			boards++
			if r.Upstream != "orders" && r.Upstream != "stock" {
				t.Errorf("board run not triggered by orders or stock: %+v", r)
			}
		}
	}
	out := logs.String()
	interrupted := strings.Count(out, `msg="reattached to refresh"`) + strings.Count(out, "interrupted run") + strings.Count(out, "runs triggered before")
	t.Logf("%d kills: %d dataflow runs ended (%d completed), %d completed joins, %d refreshes and transactions, %d runs; %d reattachments or settled interruptions",
		kills, chains, completedChains, boards, len(created), len(runs), interrupted)
	if completedChains < 3 || boards < 2 || interrupted == 0 {
		t.Fatalf("the test exercised too little: %d completed chains, %d joins, %d interruptions", completedChains, boards, interrupted)
	}
}

// TestNamesResolvedAgainAfterA404: a job that names its dataset keeps the
// ids it resolved at start; when the dataset is deleted and published
// again under its name (its id changes, the old one answers 404), the run
// resolves the names again and refreshes the new dataset at once. A name
// that matches nothing fails each run with the fix.
func TestNamesResolvedAgainAfterA404(t *testing.T) {
	dir := t.TempDir()
	base, ca, hc := emulatorProcessB(t, dir, "../../emulator/scenarios/chains.yaml")
	state := filepath.Join(dir, "state.db")
	body := chainConfig(base, ca, state, "0 0 1 1 *", false)
	body = body[:strings.Index(body, "jobs:\n")] + `jobs:
  - {name: orders, schedule: "*/2 * * * * *", credential: demo, workspace: chains, dataset: "Orders Model"}
  - {name: typo, schedule: "*/2 * * * * *", credential: demo, workspace: Chains, dataset: "Ordres Model"}
`
	cfg := filepath.Join(dir, "names.yaml")
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, logs := startDaemon(t, cfg, append(chainEnv, "IDENTITY_ENDPOINT="+base+"/msi/token")...)
	// "chains" matches the workspace "Chains" without regard to case: the
	// only such match.
	logs.waitFor(t, 0, 30*time.Second, "names resolved", "job=orders", "workspace_id="+chainWorkspace, "dataset_id="+ordersModel)
	logs.waitFor(t, 0, 30*time.Second, "names not resolved", "job=typo", `no dataset named \"Ordres Model\"`, "Orders Model")
	i := logs.waitFor(t, 0, 30*time.Second, "refresh completed", "job=orders")
	const newID = "c0ffee00-0000-4000-8000-0000000002ff"
	req, _ := http.NewRequest("POST", base+"/_emulator/datasets/"+ordersModel+"/republish", strings.NewReader(`{"new_id":"`+newID+`"}`))
	if res, err := hc.Do(req); err != nil || res.StatusCode != 204 {
		t.Fatalf("republish: %v %v", res, err)
	}
	logs.waitFor(t, i, 30*time.Second, "the ids the names resolved to are gone", "job=orders", "now="+chainWorkspace+"/datasets/"+newID)
	logs.waitFor(t, i, 30*time.Second, "names now resolve to other ids", "job=orders", "dataset_id="+newID, "was_dataset_id="+ordersModel)
	logs.waitFor(t, i, 30*time.Second, "refresh completed", "job=orders", "dataset_id="+newID)
	runs := waitRuns(t, state, 30*time.Second, func(runs []store.Run) bool { return len(byJob(runs)["typo"]) > 0 })
	for _, r := range byJob(runs)["typo"] {
		if r.Status.InFlight() {
			continue
		}
		if r.Status != pbirefresh.Error || !strings.Contains(r.Error, `no dataset named "Ordres Model"`) || !strings.Contains(r.Hint, "check the dataset's name") {
			t.Errorf("typo's run: %+v", r)
		}
	}
	// No run of orders failed: the 404 was absorbed by the second lookup.
	for _, r := range byJob(runs)["orders"] {
		if r.Status.Failure() {
			t.Errorf("orders failed: %+v", r)
		}
	}
}

// TestDoctorChecksOrderingSchedulesAndQuota: doctor lists each dataset's
// upstream dataflows and flags a dataset job whose dataflow pbirefresh
// refreshes without an after link; on the demo, it flags the dataset that
// still has its own Power BI schedule and the job that asks more of shared
// capacity than its quota.
func TestDoctorChecksOrderingSchedulesAndQuota(t *testing.T) {
	dir := t.TempDir()
	base, ca, _ := emulatorProcessB(t, dir, "../../emulator/scenarios/chains.yaml")
	body := strings.Replace(chainConfig(base, ca, filepath.Join(dir, "state.db"), "0 1 * * *", true), "{name: stock, after: [staging],", "{name: stock,", 1)
	cfg := filepath.Join(dir, "doctor.yaml")
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runBinary(t, append(chainEnv, "IDENTITY_ENDPOINT="+base+"/msi/token"), "doctor", "--config", cfg)
	for _, want := range []string{
		`[ok]   job orders: workspace "Chains" is ` + chainWorkspace + `, dataset "Orders Model" is ` + ordersModel,
		"[ok]   job staging: dataflow " + stagingFlow + " visible, its transactions readable",
		"[info] job orders: the dataset reads dataflow " + stagingFlow + " (workspace " + chainWorkspace + "), refreshed by job staging",
		"[warn] job stock: its dataset reads dataflow " + stagingFlow + ", which job staging refreshes, but job stock does not run after it",
		"fix: add after: [staging] to job stock",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor's output lacks %q", want)
		}
	}
	if strings.Contains(r.stdout, "[warn] job orders") || r.code != 0 {
		t.Errorf("exit %d; orders runs after staging and must not be flagged:\n%s", r.code, r.stdout)
	}
	if t.Failed() {
		t.Logf("doctor:\n%s%s", r.stdout, r.stderr)
	}

	r = runBinary(t, nil, "doctor", "--config", demo)
	for _, want := range []string{
		"[warn] job sales: the dataset also refreshes on its own Power BI schedule (Monday-Friday at 05:00, 17:30, W. Europe Standard Time)",
		"fix: turn the built-in schedule off: pbirefresh import",
		"[warn] job team: workspace c0ffee00-0000-4000-8000-000000000102 is on shared capacity, which allows 8 refreshes of a dataset a day; this job alone starts more than 100 within 24 hours",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor on the demo lacks %q:\n%s", want, r.stdout)
		}
	}
}
