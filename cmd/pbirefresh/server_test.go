package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// metricValue reads one sample from Prometheus text output.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

func TestHTTPServerMetricsAPIAndStatusPage(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	tokenFile := filepath.Join(dir, "token")
	const token = "0123456789abcdef0123456789abcdef"
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	cfg := filepath.Join(dir, "pbirefresh.yaml")
	withHTTP := func(salesOn bool) string {
		return demoWith(t, dir, func(s string) string {
			s = strings.Replace(s, `schedule: "*/15 * * * * *"`, `schedule: "*/2 * * * * *"`, 1)
			paused := []string{"finance", "inventory", "forecast", "team"}
			if !salesOn {
				paused = append(paused, "sales")
			}
			for _, j := range paused {
				s = strings.Replace(s, "  - name: "+j+" ", "  - enabled: false\n    name: "+j+" ", 1)
			}
			// An on-demand job, for run-now.
			s = strings.Replace(s, "\njobs:\n", "\njobs:\n  - {name: adhoc, credential: demo, workspace_id: c0ffee00-0000-4000-8000-000000000102, dataset_id: c0ffee00-0000-4000-8000-000000000205}\n", 1)
			return s + fmt.Sprintf("\nhttp: {listen: %s, token_file: %s}\n", addr, tokenFile)
		})
	}
	os.WriteFile(cfg, []byte(withHTTP(true)), 0o600)
	cmd, w := startDaemon(t, cfg)
	at := 0
	base := "http://" + addr
	if code, body := get(t, base+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 || !strings.Contains(body, `"ready": true`) {
		t.Fatalf("readyz: %d %s", code, body)
	}
	at = w.waitFor(t, at, 30*time.Second, "refresh completed")
	// Pause sales and let what is in flight end, so metrics and store can be
	// compared exactly.
	os.WriteFile(cfg, []byte(withHTTP(false)), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	w.waitFor(t, at, 10*time.Second, "configuration reloaded")
	var metrics string
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, metrics = get(t, base+"/metrics")
		if metricValue(t, metrics, "pbirefresh_refreshes_in_flight") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refreshes still in flight:\n%s", metrics)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, runsBody := get(t, base+"/api/runs?job=sales&limit=1000")
	var runs []map[string]any
	if err := json.Unmarshal([]byte(runsBody), &runs); err != nil {
		t.Fatal(err)
	}
	completed, started, skipped := 0, 0, 0
	var lastEnd time.Time
	for _, r := range runs {
		switch r["status"] {
		case "completed":
			completed++
			if e, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(r["ended"])); e.After(lastEnd) {
				lastEnd = e
			}
		case "skipped":
			skipped++
		}
		if r["refresh_id"] != nil {
			started++
		}
	}
	for series, want := range map[string]float64{
		`pbirefresh_runs_total{job="sales",result="completed"}`:                 float64(completed),
		`pbirefresh_powerbi_requests_total{code="202",endpoint="refresh.post"}`: float64(started),
		`pbirefresh_run_duration_seconds_count{job="sales"}`:                    float64(completed),
		`pbirefresh_keyvault_reads_total{result="ok"}`:                          1, // cached for an hour
		`pbirefresh_token_requests_total{credential="demo"}`:                    1,
		`pbirefresh_refreshes_in_flight`:                                        0,
		`pbirefresh_powerbi_throttled_total`:                                    0,
	} {
		if got := metricValue(t, metrics, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if skipped > 0 {
		if got := metricValue(t, metrics, `pbirefresh_runs_total{job="sales",result="skipped"}`); got != float64(skipped) {
			t.Errorf("skipped runs: metric %v, store %d", got, skipped)
		}
	}
	if completed == 0 {
		t.Fatal("no completed run to measure")
	}
	last := metricValue(t, metrics, `pbirefresh_last_success_timestamp_seconds{job="sales"}`)
	if d := time.Duration((last - float64(lastEnd.UnixNano())/1e9) * 1e9); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("last success %v vs the store's last completed end %s", last, lastEnd)
	}
	if !regexp.MustCompile(`pbirefresh_build_info\{goversion="go[^"]+",version="[^"]*"\} 1`).MatchString(metrics) {
		t.Error("build info missing")
	}
	if metricValue(t, metrics, `pbirefresh_next_run_timestamp_seconds{job="sales"}`) != -1 {
		t.Error("a paused job has a next run")
	}

	// The API.
	_, jobs := get(t, base+"/api/jobs")
	if !strings.Contains(jobs, `"name": "sales"`) || !strings.Contains(jobs, `"last_status": "completed"`) {
		t.Fatalf("api/jobs: %s", jobs)
	}
	res, _ := http.Post(base+"/api/jobs/sales/run", "", nil)
	if res.StatusCode != 401 {
		t.Fatalf("POST without token: %d", res.StatusCode)
	}
	if r := runBinary(t, nil, "run-now", "--config", cfg, "--job", "adhoc"); r.code != 0 || !strings.Contains(r.stdout, "manual run of adhoc accepted") {
		t.Fatalf("run-now: %+v", r)
	}
	if r := runBinary(t, nil, "run-now", "--config", cfg, "--job", "nope"); r.code != 2 {
		t.Fatalf("run-now unknown job: %+v", r)
	}
	w.waitFor(t, 0, 20*time.Second, "run fired", "job=adhoc", "kind=manual")

	// The status page.
	// The status page: the overview links each job's page, which has the
	// chart.
	code, page := get(t, base+"/")
	if code != 200 || !strings.Contains(page, `id="job-sales"`) || !strings.Contains(page, `href="/jobs/sales"`) || !strings.Contains(page, "viewport") {
		t.Fatalf("status page: %d %.300s", code, page)
	}
	for _, j := range []string{"finance", "inventory", "team", "payroll", "forecast", "adhoc"} {
		if !strings.Contains(page, `id="job-`+j+`"`) {
			t.Errorf("status page lacks job %s", j)
		}
	}
	code, salesPage := get(t, base+"/jobs/sales")
	if code != 200 || !strings.Contains(salesPage, `id="job-sales"`) || !strings.Contains(salesPage, `<svg class="chart"`) {
		t.Fatalf("sales's page: %d %.300s", code, salesPage)
	}
	page += salesPage // covered by the no-secrets check

	cmd.Process.Signal(syscall.SIGTERM)
	w.waitFor(t, 0, 30*time.Second, "stopped")
	// No secret or token anywhere an operator looks.
	w.mu.Lock()
	logs := strings.Join(w.lines, "\n")
	w.mu.Unlock()
	for where, text := range map[string]string{"metrics": metrics, "api/jobs": jobs, "api/runs": runsBody, "status page": page, "logs": logs} {
		for _, secret := range []string{"demo-client-secret-value", "demo-vault-reader-secret", token, "eyJ"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains a secret or token (%.6s…)", where, secret)
			}
		}
	}
}

func TestHTTPBeyondLoopbackNeedsAToken(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(demoWith(t, dir, func(s string) string { return s + "\nhttp: {listen: 0.0.0.0:9464}\n" })), 0o600)
	r := runBinary(t, nil, "validate", "--config", cfg)
	if r.code != 2 || !strings.Contains(r.stderr, "needs a token_file") || !strings.Contains(r.stderr, "set http.token_file") {
		t.Fatalf("%+v", r)
	}
}
