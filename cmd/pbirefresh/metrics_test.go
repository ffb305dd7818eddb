package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/deploy"
	"github.com/pbirefresh/pbirefresh/notify"
	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/scheduler"
	"github.com/pbirefresh/pbirefresh/store"
)

// TestDashboardAndAlertsQueryRealMetrics: every metric the Grafana
// dashboard and the alert rules query exists on a running daemon's
// /metrics (a failing job, a notification target and a stale_after make
// every family appear).
func TestDashboardAndAlertsQueryRealMetrics(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer hook.Close()
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, demoWith(t, dir, func(s string) string {
		s = strings.Replace(s, `schedule: "10 * * * * *"`, `schedule: "*/2 * * * * *"`, 1) // finance fails every 2 s
		s = strings.Replace(s, "defaults:\n", "defaults:\n  stale_after: 26h\n", 1)
		return s + fmt.Sprintf("\nhttp: {listen: %s}\nnotify:\n  - {name: hook, type: webhook, url: {env: HOOK_URL}, on: [failure]}\n", addr)
	}))
	_, w := startDaemon(t, cfg, "HOOK_URL="+hook.URL)
	w.waitFor(t, 0, 40*time.Second, "refresh completed")
	w.waitFor(t, 0, 40*time.Second, "refresh ended unsuccessfully", "job=finance")
	want, err := deploy.MetricNames()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		_, body := get(t, "http://"+addr+"/metrics")
		var missing []string
		for _, name := range want {
			if !strings.Contains(body, "\n"+name+"{") && !strings.Contains(body, "\n"+name+" ") {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			t.Logf("all %d metrics the dashboard and the alerts query are on /metrics", len(want))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queried by the dashboard or the alerts but not on /metrics: %v", missing)
		}
	}
}

// TestFreshnessCrossesStaleAfter: on a fake clock, a job whose last
// success ages past stale_after is told once, shows in the metrics and
// the API as stale, and a success brings one recovery.
func TestFreshnessCrossesStaleAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	f := newFreshness(clock, map[string]store.Freshness{"sales": {LastSuccess: now.Add(-20 * time.Hour)}})
	f.configure(map[string]time.Duration{"sales": 26 * time.Hour, "other": 0})
	rc := &hookReceiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	n := notify.New(http.DefaultClient, []notify.Target{{Name: "hook", Type: "webhook", URL: srv.URL, On: map[notify.Kind]bool{notify.Stale: true, notify.Recovery: true}}}, nil)
	c := &runCmd{logger: slog.New(slog.DiscardHandler), fresh: f, notifier: n, cfg: &configs.Config{}, metrics: newMetrics(func() *scheduler.Scheduler { return nil }, func() []string { return nil },
		func() (int, bool, bool) { return 1, true, true }, newHealthGauges(f.all, func() bool { return true }))}
	gauge := func(name string) float64 {
		fams, err := c.metrics.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, fam := range fams {
			if fam.GetName() != name {
				continue
			}
			for _, m := range fam.Metric {
				for _, l := range m.Label {
					if l.GetName() == "job" && l.GetValue() == "sales" {
						return m.GetGauge().GetValue()
					}
				}
			}
		}
		return -1
	}
	for i := 0; i < 3; i++ { // before the crossing: nothing
		c.checkStale()
	}
	if gauge("pbirefresh_job_stale") != 0 || gauge("pbirefresh_last_success_age_seconds") != 20*3600 {
		t.Fatalf("before: stale %v age %v", gauge("pbirefresh_job_stale"), gauge("pbirefresh_last_success_age_seconds"))
	}
	now = now.Add(7 * time.Hour) // 27 h since the last success
	for i := 0; i < 3; i++ {
		c.checkStale()
	}
	if gauge("pbirefresh_job_stale") != 1 || gauge("pbirefresh_stale_after_seconds") != 26*3600 {
		t.Fatalf("after: stale %v threshold %v", gauge("pbirefresh_job_stale"), gauge("pbirefresh_stale_after_seconds"))
	}
	if got := f.get("sales"); !got.Stale || got.Age != 27*time.Hour {
		t.Fatalf("api view: %+v", got)
	}
	// The status page: the stale job first, with its badge and its age
	// against the threshold.
	stale := jobView{Name: "sales", Enabled: true}
	stale.setFreshness(f.get("sales"))
	fine := jobView{Name: "another", Enabled: true, LastStatus: pbirefresh.Completed}
	views := []jobView{fine, stale}
	slices.SortStableFunc(views, byUrgency)
	rec := httptest.NewRecorder()
	page(rec, 200, "overview", map[string]any{"Total": 2, "Stale": 1, "Jobs": views})
	body := rec.Body.String()
	if i, k := strings.Index(body, `id="job-sales"`), strings.Index(body, `id="job-another"`); i < 0 || k < i ||
		!strings.Contains(body, `<span class="s s-stale">stale</span>`) || !strings.Contains(body, "27h ago (stale after 26h)") || !strings.Contains(body, "<span>1 stale</span>") {
		t.Fatalf("overview does not show sales as stale, first:\n%s", body)
	}
	// A success: fresh again, one recovery.
	if !f.ended("sales", pbirefresh.Completed, now) {
		t.Fatal("a success after the crossing is not a recovery")
	}
	c.tell(context.Background(), "sales", now, 1, refresh.Result{Outcome: pbirefresh.Completed}, true)
	c.checkStale()
	n.Close(context.Background())
	events, _ := rc.snapshot()
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, fmt.Sprint(e["event"]))
	}
	if strings.Join(kinds, ",") != "stale,recovery" {
		t.Fatalf("notifications %v, want one stale then one recovery", kinds)
	}
	if gauge("pbirefresh_job_stale") != 0 {
		t.Fatal("still stale after the success")
	}
	// With replicas, another replica's success reaches this one through
	// the store: stale again, then a success recorded elsewhere.
	now = now.Add(30 * time.Hour)
	if got := f.newlyStale(); len(got) != 1 {
		t.Fatalf("not stale again: %v", got)
	}
	f.sync(map[string]store.Freshness{"sales": {LastSuccess: now.Add(-time.Hour), Failures: 0}, "gone": {LastSuccess: now}})
	if got := f.get("sales"); got.Stale || got.Age != time.Hour {
		t.Fatalf("after sync: %+v", got)
	}
	now = now.Add(27 * time.Hour)
	if got := f.newlyStale(); len(got) != 1 {
		t.Fatalf("a new crossing after a sync is told again: %v", got)
	}
}

// TestMetricsForgetRemovedJobs: the run series of a job a reload removed
// leave /metrics; those of the jobs kept stay, with their counts.
func TestMetricsForgetRemovedJobs(t *testing.T) {
	m := newMetrics(func() *scheduler.Scheduler { return nil }, func() []string { return nil },
		func() (int, bool, bool) { return 1, true, true }, newHealthGauges(func() map[string]fresh { return nil }, func() bool { return true }))
	end := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	for _, job := range []string{"kept", "gone"} {
		m.ended(job, refresh.Result{Outcome: pbirefresh.Completed, RefreshID: "r-" + job, Start: end.Add(-time.Minute), Posted: end.Add(-time.Minute), End: end})
		m.ended(job, refresh.Result{Outcome: pbirefresh.Failed, RefreshID: "s-" + job, Start: end.Add(-time.Minute), Posted: end.Add(-time.Minute), End: end})
	}
	series := func() map[string]int {
		fams, err := m.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, f := range fams {
			if f.GetName() != "pbirefresh_runs_total" && f.GetName() != "pbirefresh_run_duration_seconds" {
				continue
			}
			for _, mt := range f.GetMetric() {
				for _, l := range mt.GetLabel() {
					if l.GetName() == "job" {
						out[f.GetName()+" "+l.GetValue()]++
					}
				}
			}
		}
		return out
	}
	want := map[string]int{"pbirefresh_runs_total kept": 2, "pbirefresh_runs_total gone": 2,
		"pbirefresh_run_duration_seconds kept": 1, "pbirefresh_run_duration_seconds gone": 1}
	if got := series(); !maps.Equal(got, want) {
		t.Fatalf("before the reload: %v, want %v", got, want)
	}
	m.forget([]string{"gone"})
	delete(want, "pbirefresh_runs_total gone")
	delete(want, "pbirefresh_run_duration_seconds gone")
	if got := series(); !maps.Equal(got, want) {
		t.Fatalf("after removing job gone: %v, want %v", got, want)
	}
}

// pbirefresh_run_duration_seconds counts from the POST (README: "POST to
// end"), not from the run's start: a wait for another refresh of the
// dataset (when_busy: wait) comes before the POST.
func TestRunDurationCountsFromThePOST(t *testing.T) {
	m := newMetrics(func() *scheduler.Scheduler { return nil }, func() []string { return nil },
		func() (int, bool, bool) { return 1, true, true }, newHealthGauges(func() map[string]fresh { return nil }, func() bool { return true }))
	posted := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	m.ended("j", refresh.Result{Outcome: pbirefresh.Completed, RefreshID: "r", Start: posted.Add(-20 * time.Minute), Posted: posted, End: posted.Add(time.Minute)})
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "pbirefresh_run_duration_seconds" {
			if h := f.GetMetric()[0].GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 60 {
				t.Fatalf("observed %d runs, %v s in all; want one of 60 s", h.GetSampleCount(), h.GetSampleSum())
			}
			return
		}
	}
	t.Fatal("no pbirefresh_run_duration_seconds")
}
