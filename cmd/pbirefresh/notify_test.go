package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/notify"
	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

type hookReceiver struct {
	mu     sync.Mutex
	events []map[string]any
	raw    []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	h.mu.Lock()
	h.events, h.raw = append(h.events, m), append(h.raw, string(b))
	h.mu.Unlock()
}

func (h *hookReceiver) snapshot() ([]map[string]any, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.events...), strings.Join(h.raw, "\n")
}

func TestDaemonNotifiesFailures(t *testing.T) {
	rc := &hookReceiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	dir := t.TempDir()
	addr := freePort(t)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(demoWith(t, dir, func(s string) string {
		s = strings.Replace(s, `schedule: "10 * * * * *"`, `schedule: "*/2 * * * * *"`, 1) // finance, failing, every 2 s
		for _, j := range []string{"sales", "inventory", "forecast", "team"} {
			s = strings.Replace(s, "  - name: "+j+" ", "  - enabled: false\n    name: "+j+" ", 1)
		}
		return s + "\nhttp: {listen: " + addr + "}\nnotify:\n  - {name: hook, type: webhook, url: {env: HOOK_URL}, on: [failure]}\n"
	})), 0o600)
	cmd, w := startDaemon(t, cfg, "HOOK_URL="+srv.URL+"/hooks/s3cr3t-path")
	w.waitFor(t, 0, 40*time.Second, "notification sent", "target=hook")
	events, raw := rc.snapshot()
	ev := events[0]
	if ev["event"] != "failure" || ev["job"] != "finance" || ev["status"] != "failed" || !strings.Contains(ev["hint"].(string), "credentials") || ev["refresh_id"] == nil {
		t.Fatalf("event: %v", ev)
	}
	_, metrics := get(t, "http://"+addr+"/metrics")
	if v := metricValue(t, metrics, `pbirefresh_notifications_total{result="sent",target="hook"}`); v < 1 {
		t.Fatalf("notifications metric %v", v)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	w.waitFor(t, 0, 30*time.Second, "stopped")
	w.mu.Lock()
	logs := strings.Join(w.lines, "\n")
	w.mu.Unlock()
	for _, secret := range []string{"s3cr3t-path", "demo-client-secret-value", "eyJ"} {
		if strings.Contains(logs, secret) || strings.Contains(raw, secret) || strings.Contains(metrics, secret) {
			t.Fatalf("a secret (%.6s…) reached the logs, a notification or the metrics", secret)
		}
	}
}

// TestRecoveryIsTheFirstSuccessAfterFailures drives tell with recorded
// runs: a success after a failure is a recovery, a success after a
// success is nothing, and skipped slots in between do not count.
func TestRecoveryIsTheFirstSuccessAfterFailures(t *testing.T) {
	rc := &hookReceiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Daemon: &sqlite.Holder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all := map[notify.Kind]bool{notify.Failure: true, notify.Timeout: true, notify.Lost: true, notify.Recovery: true}
	c := &runCmd{store: st, logger: slog.New(slog.DiscardHandler),
		notifier: notify.New(http.DefaultClient, []notify.Target{{Name: "hook", Type: "webhook", URL: srv.URL, On: all}}, nil)}
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	step := func(i int, outcome pbirefresh.Status) {
		slot := t0.Add(time.Duration(i) * time.Hour)
		id, _ := st.Begin(ctx, "j", slot, pbirefresh.Scheduled)
		st.Finish(ctx, id, store.Outcome{Status: outcome, RefreshID: "r", Polls: 1})
		c.tell(ctx, "j", slot, id, refresh.Result{Outcome: outcome}, false)
	}
	step(0, pbirefresh.Completed) // nothing
	step(1, pbirefresh.Failed)    // failure
	st.Record(ctx, "j", t0.Add(90*time.Minute), pbirefresh.Scheduled, pbirefresh.Skipped, "overlap")
	step(2, pbirefresh.Completed) // recovery
	step(3, pbirefresh.Completed) // nothing
	step(4, pbirefresh.TimedOut)  // timeout
	step(5, pbirefresh.Lost)      // lost
	step(6, pbirefresh.Completed) // recovery
	c.notifier.Close(ctx)
	events, _ := rc.snapshot()
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e["event"].(string))
	}
	if got := strings.Join(kinds, ","); got != "failure,recovery,timeout,lost,recovery" {
		// Two workers deliver; compare as a multiset if the order differs.
		if !sameMultiset(kinds, []string{"failure", "recovery", "timeout", "lost", "recovery"}) {
			t.Fatalf("events %s", got)
		}
	}
}

func sameMultiset(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[string]int{}
	for _, x := range a {
		count[x]++
	}
	for _, x := range b {
		count[x]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}
