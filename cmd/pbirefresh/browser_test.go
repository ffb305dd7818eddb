package main

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

// chromiumFlags run Debian's headless Chromium quietly: no sandbox (CI
// runs as root), no network of its own, a fresh profile in dir.
func chromiumFlags(dir string) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--no-first-run", "--disable-quic", "--user-data-dir=" + filepath.Join(dir, "profile")}
}

// keepScreenshot copies a screenshot to PBIREFRESH_SCREENSHOT, suffixed
// with name when given, for a person to look at.
func keepScreenshot(shot, name string) {
	keep := os.Getenv("PBIREFRESH_SCREENSHOT")
	if keep == "" {
		return
	}
	if name != "" {
		keep = strings.TrimSuffix(keep, ".png") + "-" + name + ".png"
	}
	b, _ := os.ReadFile(shot)
	os.WriteFile(keep, b, 0o644)
}

// TestStatusPageInChromium loads the overview and two jobs' pages in
// headless Chromium and checks that the jobs, their states, the charts
// and the outcomes render; the screenshot goes to the test's temporary
// directory (PBIREFRESH_SCREENSHOT keeps a copy).
func TestStatusPageInChromium(t *testing.T) {
	chromium := need(t, "chromium")
	dir := t.TempDir()
	addr := freePort(t)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(demoWith(t, dir, func(s string) string {
		s = strings.Replace(s, `schedule: "*/15 * * * * *"`, `schedule: "*/2 * * * * *"`, 1)
		s = strings.Replace(s, `schedule: "10 * * * * *"`, `schedule: "*/3 * * * * *"`, 1) // finance fails: show a failure
		return s + "\nhttp: {listen: " + addr + "}\n"
	})), 0o600)
	cmd, w := startDaemon(t, cfg)
	w.waitFor(t, 0, 40*time.Second, "refresh completed")
	w.waitFor(t, 0, 40*time.Second, "refresh ended unsuccessfully")
	shot := filepath.Join(dir, "status.png")
	args := append(chromiumFlags(dir), "--window-size=420,1400")
	dump := func(path string) string {
		t.Helper()
		dom, err := exec.Command(chromium, append(args, "--dump-dom", "http://"+addr+path)...).Output()
		if err != nil {
			t.Fatalf("chromium --dump-dom %s: %v", path, err)
		}
		return string(dom)
	}
	page := dump("/")
	for _, j := range []string{"sales", "finance", "inventory", "forecast", "team", "payroll"} {
		if !strings.Contains(page, `id="job-`+j+`"`) || !strings.Contains(page, `href="/jobs/`+j+`"`) {
			t.Errorf("rendered overview lacks job %s or its link", j)
		}
	}
	if !strings.Contains(page, `class="s s-ok"`) || !strings.Contains(page, `class="s s-failing"`) || strings.Contains(page, "<svg") {
		t.Fatalf("overview: states missing, or a chart on it:\n%.3000s", page)
	}
	if sales := dump("/jobs/sales"); strings.Count(sales, "<rect ") < 2 || !strings.Contains(sales, `class="s s-completed"`) {
		t.Fatalf("sales: chart or outcomes missing from the rendered page:\n%.2000s", sales)
	}
	if finance := dump("/jobs/finance"); !strings.Contains(finance, `class="s s-failed"`) || !strings.Contains(finance, "fix: ") {
		t.Fatalf("finance: failure or its fix missing from the rendered page:\n%.3000s", finance)
	}
	if out, err := exec.Command(chromium, append(args, "--screenshot="+shot, "http://"+addr+"/jobs/finance")...).CombinedOutput(); err != nil {
		t.Fatalf("screenshot: %v %s", err, out)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 5000 {
		t.Fatalf("screenshot: %v", err)
	}
	keepScreenshot(shot, "")
	cmd.Process.Signal(syscall.SIGTERM)
	w.waitFor(t, 0, 30*time.Second, "stopped")
}

// TestStatusPagesForATenantInBrowser serves 500 jobs (on demand, paused,
// or due once a year: nothing fires during the test) over a seeded
// history, and asks headless Chromium, over its DevTools pipe, about the
// pages as it laid them out: the overview's weight and timings (logged,
// never gated: a timing does not fail a test), its order (problems
// first), and, at a phone's 400 px, a job's history with every field of
// every run inside the viewport, labelled, and none cut off.
func TestStatusPagesForATenantInBrowser(t *testing.T) {
	chromium := need(t, "chromium")
	if testing.Short() {
		t.Skip("500 jobs in a browser")
	}
	dir := t.TempDir()
	addr := freePort(t)
	const jobs, rich = 500, "job-0042"
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `cloud: emulator
state: {path: %s}
http: {listen: %s}
credentials:
  demo:
    tenant_id: c0ffee00-0000-4000-8000-000000000001
    client_id: c0ffee00-0000-4000-8000-0000000000a1
    client_secret: {keyvault: {secret_name: pbi-secret}}
defaults: {stale_after: 26h}
jobs:
`, filepath.Join(dir, "state.db"), addr)
	zones := []string{"UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"}
	for i := range jobs {
		extra := ""
		switch {
		case i%25 == 3:
			extra = ", enabled: false"
		case i%2 == 0: // Once a year, on 1 January: never during the test.
			extra = fmt.Sprintf(`, schedule: "0 4 1 1 *", timezone: %s`, zones[i/2%len(zones)])
		}
		fmt.Fprintf(&cfg, "  - {name: job-%04d, credential: demo, workspace_id: c0ffee00-0000-4000-8000-000000000101, dataset_id: c0ffee00-0000-4000-8000-000000000201%s}\n", i, extra)
	}
	path := writeConfig(t, dir, cfg.String())
	want := seedTenant(t, filepath.Join(dir, "state.db"), jobs, rich)
	cmd, w := startDaemon(t, path)
	base := "http://" + addr

	code, overview := get(t, base+"/")
	if code != 200 {
		t.Fatalf("overview: %d", code)
	}
	stale, failing, paused := 0, 0, 0
	for i := range jobs {
		s := want[fmt.Sprintf("job-%04d", i)]
		stale += btoi(s.stale)
		failing += btoi(s.failures > 0)
		paused += btoi(i%25 == 3)
	}
	summary := fmt.Sprintf("<span>%d jobs</span><span>%d stale</span><span>%d failing</span><span>%d paused</span>", jobs, stale, failing, paused)
	if !strings.Contains(overview, summary) {
		t.Errorf("overview lacks the summary %s", summary)
	}

	b := startBrowser(t, chromium, dir)
	t.Run("overview", func(t *testing.T) {
		b.t = t
		// Five loads, as timings on a shared 2-core machine vary.
		b.viewport(1280, 900)
		var loads []navTiming
		for range 5 {
			b.navigate(base + "/")
			loads = append(loads, b.timing())
		}
		slices.SortFunc(loads, func(a, b navTiming) int { return cmp.Compare(a.Load, b.Load) })
		t.Logf("overview of %d jobs at 1280 px, the median of 5 loads: %s (load events at %.0f to %.0f ms)", jobs, loads[2], loads[0].Load, loads[4].Load)
		var m struct {
			Rows, Charts, Tables, Wide, ScrollW float64
			Order                               [][]string
		}
		b.eval(`(() => {
			const rows = [...document.querySelectorAll("table.jobs tbody tr")];
			return {Rows: rows.length, Charts: document.querySelectorAll("svg").length, Tables: document.querySelectorAll("table").length,
				Wide: document.documentElement.clientWidth, ScrollW: document.documentElement.scrollWidth,
				Order: rows.map(r => [r.id, ...[...r.querySelectorAll(".s")].map(s => s.textContent)])};
		})()`, &m)
		if m.Rows != jobs || m.Charts != 0 || m.Tables != 1 {
			t.Fatalf("overview: %v rows, %v charts, %v tables; want %d rows, one table, no chart", m.Rows, m.Charts, m.Tables, jobs)
		}
		if m.ScrollW > m.Wide {
			t.Errorf("overview scrolls sideways at 1280 px: %v > %v", m.ScrollW, m.Wide)
		}
		checkUrgencyOrder(t, m.Order, want)
		shot := filepath.Join(dir, "overview-1280.png")
		b.screenshot(shot)
		keepScreenshot(shot, "overview-1280")

		b.viewport(400, 1200)
		b.navigate(base + "/")
		t.Logf("overview of %d jobs at 400 px: %s", jobs, b.timing())
		var narrow layout
		b.eval(layoutCheck("jobs"), &narrow)
		// Name and state share the first line, unlabelled; the rest are labelled.
		if narrow.Wide != 400 || narrow.Rows != jobs || narrow.Stacked != jobs || narrow.Labelled < narrow.Fields-2*jobs || len(narrow.Bad) > 0 {
			t.Errorf("overview at 400 px: viewport %v px, %v rows, %v stacked, %v of %v fields labelled, problems:\n%s",
				narrow.Wide, narrow.Rows, narrow.Stacked, narrow.Labelled, narrow.Fields, strings.Join(narrow.Bad, "\n"))
		}
		shot = filepath.Join(dir, "overview-400.png")
		b.screenshot(shot)
		keepScreenshot(shot, "overview-400")
	})

	t.Run("job page at 400px", func(t *testing.T) {
		b.t = t
		b.viewport(400, 1200)
		b.navigate(base + "/jobs/" + rich)
		t.Logf("%s's page at 400 px: %s", rich, b.timing())
		var m layout
		b.eval(layoutCheck("runs"), &m)
		shot := filepath.Join(dir, "job-400.png")
		b.screenshot(shot)
		keepScreenshot(shot, "job-400")
		if m.Wide != 400 || m.Rows != historyRuns || m.Fields < 4*historyRuns || m.Stacked != m.Rows || m.Labelled != m.Fields || len(m.Bad) > 0 {
			t.Fatalf("%s at 400 px: viewport %v px, %v runs (want %d), %v fields, %v stacked rows, %v labelled fields, problems:\n%s",
				rich, m.Wide, m.Rows, historyRuns, m.Fields, m.Stacked, m.Labelled, strings.Join(m.Bad, "\n"))
		}
		if m.Chart == 0 || m.Chart > 400 {
			t.Errorf("chart %v px wide at 400 px", m.Chart)
		}
		for _, text := range []string{"[ModelRefresh_ShortMessage_ProcessingError]", "fix: the data source rejected the credentials", "retried once by the daemon"} {
			if !strings.Contains(m.Text, text) {
				t.Errorf("history lacks %q", text)
			}
		}

		b.viewport(1280, 900)
		b.navigate(base + "/jobs/" + rich)
		b.eval(layoutCheck("runs"), &m)
		shot = filepath.Join(dir, "job-1280.png")
		b.screenshot(shot)
		keepScreenshot(shot, "job-1280")
		if m.Stacked != 0 || len(m.Bad) > 0 {
			t.Errorf("%s at 1280 px: %v rows stacked (want a table), problems:\n%s", rich, m.Stacked, strings.Join(m.Bad, "\n"))
		}
	})

	t.Run("unknown job", func(t *testing.T) {
		code, page := get(t, base+"/jobs/%3Cx-planted%3E")
		if code != 404 || strings.Contains(page, "<x-planted>") || !strings.Contains(page, "&lt;x-planted&gt;") {
			t.Fatalf("unknown job: %d\n%s", code, page)
		}
	})
	cmd.Process.Signal(syscall.SIGTERM)
	w.waitFor(t, 0, 30*time.Second, "stopped")
}

// layout is what layoutCheck reports of a page.
type layout struct {
	Wide, Rows, Fields, Stacked, Labelled, Chart float64
	Bad                                          []string
	Text                                         string
}

// layoutCheck measures, in the browser, each field of each row of the
// table of that class: shown, labelled when the rows are stacked, inside
// the viewport, and not wider than its cell (a long word would overflow
// it); and it lists any element past the viewport's edges.
func layoutCheck(table string) string {
	return strings.Replace(layoutJS, "TABLE", table, 1)
}

const layoutJS = `(() => {
	const vw = document.documentElement.clientWidth, out = {Wide: vw, Rows: 0, Fields: 0, Stacked: 0, Labelled: 0, Bad: [], Text: ""};
	const what = (el) => el.tagName + " " + JSON.stringify(el.textContent.trim().slice(0, 50));
	if (document.documentElement.scrollWidth > vw) out.Bad.push("the page scrolls sideways: " + document.documentElement.scrollWidth + " px");
	for (const tr of document.querySelectorAll("table.TABLE tbody tr")) {
		out.Rows++;
		if (getComputedStyle(tr).display === "block") out.Stacked++;
		for (const td of tr.children) {
			if (!td.textContent.trim()) continue;
			out.Fields++;
			const r = td.getBoundingClientRect(), label = getComputedStyle(td, "::before").content;
			if (getComputedStyle(td).display === "none" || r.width === 0) out.Bad.push("hidden: " + what(td));
			else if (r.left < 0 || r.right > vw) out.Bad.push("outside the viewport (" + r.left + ".." + r.right + "): " + what(td));
			else if (td.scrollWidth > td.clientWidth) out.Bad.push("wider than its cell (" + td.scrollWidth + " > " + td.clientWidth + "): " + what(td));
			if (label && label !== "none" && label !== "normal") out.Labelled++;
		}
	}
	for (const el of document.body.querySelectorAll("*")) {
		const r = el.getBoundingClientRect();
		if (r.width > 0 && (r.left < 0 || r.right > vw + 0.5)) out.Bad.push("past the edge (" + r.left + ".." + r.right + "): " + what(el));
	}
	const svg = document.querySelector("svg.chart");
	out.Chart = svg ? svg.getBoundingClientRect().width : 0;
	out.Bad = out.Bad.slice(0, 20);
	out.Text = document.body.innerText;
	return out;
})()`

// tenantJob is what the seeded history says of a job.
type tenantJob struct {
	stale    bool
	failures int
}

// seedTenant writes the history of jobs jobs into the state database:
// most succeeded in the last hours; every tenth's last success is 30 hours
// old (stale after 26h), some of those failing since; every seventh fails
// since a success 5 hours ago; every fiftieth from the second never ran.
// rich gets 50 runs of every kind, with long errors and fixes.
func seedTenant(t *testing.T, path string, jobs int, rich string) map[string]tenantJob {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{Daemon: &sqlite.Holder{}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// One transaction: through the store, each run's end would wait for
	// its group commit, 20 s in all.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insert, err := tx.Prepare(`INSERT INTO runs (job, slot, kind, status, refresh_id, posted, ended, polls, error, hint, note, code, service_start, service_end)
		VALUES (?, ?, 'scheduled', ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Minute)
	run := func(job string, slot time.Time, took time.Duration, o store.Outcome) {
		t.Helper()
		posted, ended := slot.UnixNano(), slot.Add(took).UnixNano()
		if o.Status.Decided() {
			posted = 0
		}
		if _, err := insert.Exec(job, slot.UnixNano(), o.Status, o.RefreshID, posted, ended, o.Error, o.Hint, o.Note, o.Code, posted, ended); err != nil {
			t.Fatal(err)
		}
	}
	credentials := store.Outcome{Status: pbirefresh.Failed, Code: "ModelRefresh_ShortMessage_ProcessingError",
		Error: "The credentials provided for the SQL source are invalid. (Source at sql-prod-weu-01.database.windows.net;sales_dw.) Container exited unexpectedly with code 0x0000DEAD. PID: 4242. Used resources: CPU time 1 s; memory 12 MB. https://app.powerbi.com/groups/c0ffee00-0000-4000-8000-000000000101/datasets/c0ffee00-0000-4000-8000-000000000201/details",
		Hint:  "the data source rejected the credentials: open the dataset's settings in Power BI, Data source credentials, and sign in again (an OAuth token expires after 90 days of no use)",
		Note:  "retried once by the daemon"}
	want := map[string]tenantJob{}
	for i := range jobs {
		name := fmt.Sprintf("job-%04d", i)
		var s tenantJob
		switch {
		case name == rich:
			for k := 50; k > 3; k-- {
				slot := now.Add(-time.Duration(k) * 30 * time.Minute)
				switch k % 5 {
				case 0:
					run(name, slot, 9*time.Minute, credentials)
				case 1:
					run(name, slot, 0, store.Outcome{Status: pbirefresh.Skipped, Note: "the previous run was still in progress (overlap: skip)"})
				case 2:
					run(name, slot, 40*time.Minute, store.Outcome{Status: pbirefresh.TimedOut, Error: "no end within timeout 40m0s; cancelled our enhanced refresh", Hint: "raise timeout, or look at the refresh in the workspace's refresh history"})
				default:
					run(name, slot, time.Duration(3+k)*time.Minute, store.Outcome{Status: pbirefresh.Completed, RefreshID: fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", k)})
				}
			}
			for k := 3; k > 0; k-- {
				run(name, now.Add(-time.Duration(k)*30*time.Minute), 2*time.Minute, credentials)
			}
			s.failures = 3
		case i%50 == 1:
		case i%10 == 0:
			run(name, now.Add(-30*time.Hour), 5*time.Minute, store.Outcome{Status: pbirefresh.Completed})
			s.stale = true
			if i%20 == 0 {
				s.failures = 1 + i%3
			}
		case i%7 == 0:
			run(name, now.Add(-5*time.Hour), 5*time.Minute, store.Outcome{Status: pbirefresh.Completed})
			s.failures = 1 + (i/7)%4
		default:
			run(name, now.Add(-time.Duration(1+i%5)*time.Hour), 3*time.Minute, store.Outcome{Status: pbirefresh.Completed})
		}
		for k := range s.failures {
			if name != rich {
				run(name, now.Add(-time.Duration(s.failures-k)*20*time.Minute), time.Minute, store.Outcome{Status: pbirefresh.Failed, Code: "DMTS_DatasourceHasNoCredentialError", Error: "Data source credentials are missing or invalid."})
			}
		}
		want[name] = s
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return want
}

// checkUrgencyOrder checks the overview's rows (id, then the state
// badges): stale jobs first, then failing ones by failures in a row, then
// the rest by name; and each row's states match the seeded history.
func checkUrgencyOrder(t *testing.T, rows [][]string, want map[string]tenantJob) {
	t.Helper()
	rank := func(s tenantJob) int {
		switch {
		case s.stale:
			return 0
		case s.failures > 0:
			return 1
		}
		return 2
	}
	var prev tenantJob
	prevName := ""
	for i, row := range rows {
		name := strings.TrimPrefix(row[0], "job-")
		s, ok := want[name]
		if !ok {
			t.Fatalf("row %d: unknown job %q", i, row[0])
		}
		badges := strings.Join(row[1:], ",")
		if s.stale != strings.Contains(badges, "stale") || (s.failures > 0) != strings.Contains(badges, fmt.Sprintf("failing ×%d", s.failures)) {
			t.Errorf("row %d, %s: states %q, want stale %v, %d failures", i, name, badges, s.stale, s.failures)
		}
		if i > 0 {
			r, pr := rank(s), rank(prev)
			if r < pr || r == pr && r < 2 && s.failures > prev.failures || r == pr && (r == 2 || s.failures == prev.failures) && name < prevName {
				t.Fatalf("row %d: %s (%+v) after %s (%+v): problems must come first, stale then failing by failures in a row, then by name", i, name, s, prevName, prev)
			}
		}
		prev, prevName = s, name
	}
}

// browser is headless Chromium driven over its DevTools pipe
// (--remote-debugging-pipe: JSON messages ending in a NUL byte, read on
// file descriptor 3 and written on 4), so a test can ask the browser what
// it laid out; the standard library suffices. One page, one session.
type browser struct {
	t       *testing.T
	w       *os.File
	msgs    chan browserMsg
	id      int
	session string
	events  []string
}

type browserMsg struct {
	ID        int             `json:"id"`
	Method    string          `json:"method"`
	SessionID string          `json:"sessionId"`
	Result    json.RawMessage `json:"result"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func startBrowser(t *testing.T, chromium, dir string) *browser {
	t.Helper()
	toChromium, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r, fromChromium, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromium, append(chromiumFlags(dir), "--remote-debugging-pipe", "about:blank")...)
	cmd.ExtraFiles = []*os.File{toChromium, fromChromium} // its descriptors 3 and 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers too, to end them all
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	toChromium.Close()
	fromChromium.Close()
	b := &browser{t: t, w: w, msgs: make(chan browserMsg, 64)}
	done := make(chan struct{})
	go func() {
		defer close(b.msgs)
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadBytes(0)
			if err != nil {
				return
			}
			var m browserMsg
			if json.Unmarshal(line[:len(line)-1], &m) != nil {
				continue
			}
			select {
			case b.msgs <- m:
			case <-done:
				return
			}
		}
	}()
	// Close the browser, so that no helper still writes to the profile
	// when the test removes its directory; kill what is left after 10s.
	t.Cleanup(func() {
		w.Write([]byte(`{"id":0,"method":"Browser.close"}` + "\x00"))
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		close(done)
		w.Close()
		r.Close()
	})
	var target struct {
		TargetID string `json:"targetId"`
	}
	b.call("Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.call("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	b.call("Page.enable", nil, nil)
	return b
}

func (b *browser) next() browserMsg {
	b.t.Helper()
	select {
	case m, ok := <-b.msgs:
		if !ok {
			b.t.Fatal("chromium closed its DevTools pipe")
		}
		return m
	case <-time.After(60 * time.Second):
		b.t.Fatal("chromium did not answer within 60s")
	}
	return browserMsg{}
}

// call sends a command to the page's session (the browser's before
// there is one) and decodes its result; events that arrive meanwhile are
// remembered for waitEvent.
func (b *browser) call(method string, params, result any) {
	b.t.Helper()
	b.id++
	msg := map[string]any{"id": b.id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if b.session != "" {
		msg["sessionId"] = b.session
	}
	out, _ := json.Marshal(msg)
	if _, err := b.w.Write(append(out, 0)); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	for {
		m := b.next()
		if m.ID != b.id {
			if m.Method != "" {
				b.events = append(b.events, m.Method)
			}
			continue
		}
		if m.Error != nil {
			b.t.Fatalf("%s: %s", method, m.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(m.Result, result); err != nil {
				b.t.Fatalf("%s: %v: %s", method, err, m.Result)
			}
		}
		return
	}
}

func (b *browser) waitEvent(method string) {
	b.t.Helper()
	for i, e := range b.events {
		if e == method {
			b.events = b.events[i+1:]
			return
		}
	}
	for b.next().Method != method {
	}
	b.events = nil
}

// viewport makes the page width by height CSS pixels; below 600 a phone
// (mobile: the page's viewport meta tag applies).
func (b *browser) viewport(width, height int) {
	b.t.Helper()
	b.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}, nil)
}

// navigate loads url and waits for its load event.
func (b *browser) navigate(url string) {
	b.t.Helper()
	b.events = nil
	var res struct {
		ErrorText string `json:"errorText"`
	}
	b.call("Page.navigate", map[string]any{"url": url}, &res)
	if res.ErrorText != "" {
		b.t.Fatalf("navigate to %s: %s", url, res.ErrorText)
	}
	b.waitEvent("Page.loadEventFired")
}

// eval evaluates a JavaScript expression in the page (DevTools is not
// subject to the page's Content-Security-Policy), awaits it if it is a
// promise, and decodes its value.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if e := res.ExceptionDetails; e != nil {
		b.t.Fatalf("evaluate: %s %s", e.Text, e.Exception.Description)
	}
	if err := json.Unmarshal(res.Result.Value, out); err != nil {
		b.t.Fatalf("evaluate: %v: %s", err, res.Result.Value)
	}
}

// navTiming is a navigation's weight and timings as Chromium measured
// them (Navigation and Paint Timing), in bytes and in milliseconds from
// the start of the navigation.
type navTiming struct{ Body, Transfer, Server, Download, Paint, DOM, Load float64 }

func (m navTiming) String() string {
	return fmt.Sprintf("%.0f bytes of HTML (%.0f transferred), server %.0f ms, download %.0f ms, first contentful paint at %.0f ms, DOMContentLoaded at %.0f ms, load at %.0f ms",
		m.Body, m.Transfer, m.Server, m.Download, m.Paint, m.DOM, m.Load)
}

// timing returns the last navigation's.
func (b *browser) timing() navTiming {
	b.t.Helper()
	var m navTiming
	b.eval(`(async () => {
		const n = performance.getEntriesByType("navigation")[0];
		const p = await new Promise(done => {
			new PerformanceObserver(l => l.getEntriesByName("first-contentful-paint").forEach(done)).observe({type: "paint", buffered: true});
			setTimeout(done, 3000);
		});
		return {Body: n.decodedBodySize, Transfer: n.transferSize, Server: n.responseStart - n.requestStart, Download: n.responseEnd - n.responseStart,
			Paint: p ? p.startTime : -1, DOM: n.domContentLoadedEventEnd, Load: n.loadEventStart};
	})()`, &m)
	return m
}

// screenshot writes what the viewport shows as a PNG.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	var res struct {
		Data string `json:"data"`
	}
	b.call("Page.captureScreenshot", map[string]any{"format": "png"}, &res)
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil || len(png) < 5000 {
		b.t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
