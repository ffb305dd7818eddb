package main

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
)

func TestStatusSpan(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{45*time.Second + 400*time.Millisecond, "45s"},
		{12 * time.Minute, "12m"},
		{12*time.Minute + 5*time.Second, "12m 5s"},
		{3*time.Hour + 20*time.Minute + 10*time.Second, "3h 20m"},
		{26 * time.Hour, "26h"},
		{71*time.Hour + 59*time.Minute, "71h 59m"},
		{72 * time.Hour, "3d"},
		{99*time.Hour + 30*time.Minute, "4d 3h"},
	} {
		if got := span(tc.d); got != tc.want {
			t.Errorf("span(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestStatusBadgesAndFreshness(t *testing.T) {
	success := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name        string
		v           jobView
		badges, age string
	}{
		{"never run", jobView{Enabled: true}, "never run", "never"},
		{"never run, paused", jobView{}, "paused", "never"},
		{"ok", jobView{Enabled: true, LastSuccess: &success, Age: 3 * 3600, StaleAfter: 26 * 3600}, "ok", "3h ago (stale after 26h)"},
		{"running", jobView{Enabled: true, LastSuccess: &success, Age: 60, Recent: []store.Run{{Status: pbirefresh.Running}}}, "running ok", "1m ago"},
		{"stale and failing", jobView{Enabled: true, LastSuccess: &success, Age: 30 * 3600, StaleAfter: 26 * 3600, Stale: true, Failures: 2}, "stale failing ×2", "30h ago (stale after 26h)"},
		{"failing, never succeeded", jobView{Enabled: true, Failures: 1, LastStatus: pbirefresh.Failed}, "failing ×1", "never"},
		{"paused, fine", jobView{LastSuccess: &success, Age: 3600}, "paused ok", "1h ago"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, b := range badges(tc.v) {
				got = append(got, b.Text)
			}
			if g := strings.Join(got, " "); g != tc.badges {
				t.Errorf("badges %q, want %q", g, tc.badges)
			}
			if g := freshnessText(tc.v); g != tc.age {
				t.Errorf("freshness %q, want %q", g, tc.age)
			}
		})
	}
}

func TestStatusLastError(t *testing.T) {
	lost := store.Run{Status: pbirefresh.Lost, Note: "accepted by the service but never seen running"}
	for _, tc := range []struct {
		name string
		v    jobView
		want string
	}{
		{"message", jobView{LastError: "PowerBIEntityNotFound: not found", Failures: 1, LastStatus: pbirefresh.Error}, "PowerBIEntityNotFound: not found"},
		{"no message: status and note", jobView{Failures: 1, LastStatus: pbirefresh.Lost, Recent: []store.Run{lost}}, "lost: accepted by the service but never seen running"},
		{"no message, no run read", jobView{Failures: 2, LastStatus: pbirefresh.Lost}, "lost"},
		{"not failing", jobView{LastStatus: pbirefresh.Completed}, ""},
	} {
		if got := lastError(tc.v); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestStatusOrderProblemsFirst(t *testing.T) {
	views := []jobView{
		{Name: "a-fine"}, {Name: "b-failing", Failures: 1}, {Name: "c-stale", Stale: true},
		{Name: "d-failing", Failures: 4}, {Name: "e-stale-failing", Stale: true, Failures: 2}, {Name: "0-fine"},
	}
	slices.SortStableFunc(views, byUrgency)
	var got []string
	for _, v := range views {
		got = append(got, v.Name)
	}
	want := []string{"e-stale-failing", "c-stale", "d-failing", "b-failing", "0-fine", "a-fine"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// TestStatusChartDrawsTheNewestRuns: a job's page reads 50 runs; the chart
// holds 25 bars, the newest ones, oldest left.
func TestStatusChartDrawsTheNewestRuns(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var runs []store.Run // newest first, as the store returns them
	for i := 50; i > 0; i-- {
		slot := start.Add(time.Duration(i) * time.Hour)
		runs = append(runs, store.Run{Slot: slot, Status: pbirefresh.Completed, Posted: slot, Ended: slot.Add(time.Duration(i) * time.Minute)})
	}
	svg := string(chart(runs))
	if n := strings.Count(svg, "<rect "); n != 25 {
		t.Fatalf("%d bars, want 25", n)
	}
	newest, oldestShown := "2026-03-03 02:00:00 completed 50m0s", "2026-03-02 02:00:00 completed 26m0s"
	if !strings.Contains(svg, newest) || !strings.Contains(svg, oldestShown) || strings.Contains(svg, "2026-03-02 01:00:00") {
		t.Fatalf("the chart does not show the newest 25 runs:\n%s", svg)
	}
	if strings.Index(svg, oldestShown) > strings.Index(svg, newest) {
		t.Fatal("the newest run is not on the right")
	}
	if !strings.Contains(svg, `x="288" y="1" width="10" height="60"`) {
		t.Fatalf("the longest run is not the rightmost, full-height bar:\n%s", svg)
	}
}

// TestStatusPagesEscapeAndRender renders both pages from views holding
// markup in every text a run carries, the owner too (only PostgreSQL
// records one).
func TestStatusPagesEscapeAndRender(t *testing.T) {
	const mark = `<x-planted onload="alert(1)">'&`
	at := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	run := store.Run{Job: "sales", Slot: at, Kind: pbirefresh.Kind(mark), Status: pbirefresh.Status(mark), Posted: at, Ended: at.Add(time.Minute),
		Error: mark, Code: mark, Hint: mark, Note: mark, Owner: mark, RefreshID: mark}
	v := jobView{Name: "sales", Schedule: mark, Timezone: mark, Enabled: true, NextRun: &at, NextNote: mark, Refresh: "classic",
		LastStatus: pbirefresh.Status(mark), LastError: mark, Failures: 1, Recent: []store.Run{run}}

	rec := httptest.NewRecorder()
	page(rec, 200, "overview", map[string]any{"Now": mark, "Total": 1, "Jobs": []jobView{v}, "Replicas": []store.Replica{{ID: mark, Host: mark, Alive: true}}})
	overview := rec.Body.String()
	rec = httptest.NewRecorder()
	page(rec, 200, "job", map[string]any{"Job": v})
	job := rec.Body.String()
	rec = httptest.NewRecorder()
	page(rec, 404, "missing", mark)
	missing := rec.Body.String()

	for name, body := range map[string]string{"overview": overview, "job": job, "missing": missing} {
		if strings.Contains(body, "<x-planted") || !strings.Contains(body, "&lt;x-planted") {
			t.Errorf("%s: planted markup not escaped:\n%s", name, body)
		}
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") || rec.Code != 404 {
		t.Errorf("missing: %d, CSP %q", rec.Code, csp)
	}
	for _, want := range []string{`id="job-sales"`, `href="/jobs/sales"`, `class="s s-failing"`, "<span>1 job</span>"} {
		if !strings.Contains(overview, want) {
			t.Errorf("overview lacks %s", want)
		}
	}
	if strings.Contains(overview, "<svg") || strings.Contains(overview, `class="runs"`) {
		t.Error("the overview carries a chart or a history")
	}
	for _, want := range []string{`id="job-sales"`, `<svg class="chart"`, `class="runs"`, "fix: &lt;x-planted", "on &lt;x-planted", "[&lt;x-planted", `class="s s-other"`} {
		if !strings.Contains(job, want) {
			t.Errorf("job page lacks %s", want)
		}
	}
}
