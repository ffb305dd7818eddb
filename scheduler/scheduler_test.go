package scheduler_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/scheduler"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC) // a Monday, on the hour

type clock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
	// stop, if set, is called after every sleep with their count.
	stop func(n int)
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }
func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	n := len(c.sleeps)
	c.mu.Unlock()
	if c.stop != nil {
		c.stop(n)
	}
	return nil
}

// recorder is a RunFunc that records its calls; block makes runs wait.
type recorder struct {
	mu    sync.Mutex
	calls []string
	block chan struct{}
	// started, if set, receives a value as each run starts.
	started chan struct{}
}

func (r *recorder) run(ctx context.Context, slot time.Time, kind pbirefresh.Kind) error {
	r.mu.Lock()
	r.calls = append(r.calls, slot.UTC().Format("15:04")+" "+string(kind))
	r.mu.Unlock()
	if r.started != nil {
		r.started <- struct{}{}
	}
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
		}
	}
	return nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func setup(t *testing.T) (*scheduler.Scheduler, *sqlite.Store, *clock) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"), sqlite.Options{Daemon: &sqlite.Holder{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{now: t0}
	return scheduler.New(c, st, nil), st, c
}

func hourly(t *testing.T) *scheduler.Schedule {
	s, err := scheduler.Parse("0 * * * *", time.UTC, scheduler.DST{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func statuses(t *testing.T, st *sqlite.Store, job string) map[string]string {
	runs, err := st.Runs(context.Background(), store.Query{Job: job})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range runs {
		out[r.Slot.Format("15:04")] = string(r.Status) + "/" + string(r.Kind)
	}
	return out
}

func wait(s *scheduler.Scheduler) { s.Wait(context.Background()) }

func TestFiresOnTimeAndWithinTolerance(t *testing.T) {
	s, _, c := setup(t)
	r := &recorder{}
	ctx := context.Background()
	s.Set(ctx, []scheduler.Job{{Name: "a", Schedule: hourly(t), Enabled: true, Run: r.run}})
	s.Tick(ctx, t0.Add(59*time.Minute)) // not yet
	s.Tick(ctx, t0.Add(time.Hour))      // on time
	wait(s)
	c.Set(t0.Add(2*time.Hour + 40*time.Second))
	s.Tick(ctx, c.Now()) // 40 s late: not a misfire
	wait(s)
	if got := r.got(); len(got) != 2 || got[0] != "10:00 scheduled" || got[1] != "11:00 scheduled" {
		t.Fatalf("%v", got)
	}
}

func TestCatchUpAfterDowntime(t *testing.T) {
	for _, tc := range []struct {
		name    string
		catchUp time.Duration
		runs    []string
		missed  int
	}{
		{"newest within the window runs once", 2 * time.Hour, []string{"14:00 catch-up"}, 4},
		{"window 0 runs none", 0, nil, 5},
		{"newest outside the window", 10 * time.Minute, nil, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, st, c := setup(t)
			ctx := context.Background()
			// The daemon last decided the 09:00 slot, then was down until 14:30.
			st.Record(ctx, "a", t0, pbirefresh.Scheduled, pbirefresh.Completed, "")
			c.Set(t0.Add(5*time.Hour + 30*time.Minute))
			r := &recorder{}
			s.Set(ctx, []scheduler.Job{{Name: "a", Schedule: hourly(t), Enabled: true, CatchUp: tc.catchUp, Run: r.run}})
			s.Tick(ctx, c.Now())
			wait(s)
			if got := r.got(); len(got) != len(tc.runs) || (len(got) > 0 && got[0] != tc.runs[0]) {
				t.Fatalf("runs %v, want %v", got, tc.runs)
			}
			missed := 0
			for _, v := range statuses(t, st, "a") {
				if v == "missed/scheduled" {
					missed++
				}
			}
			if missed != tc.missed {
				t.Fatalf("%d missed recorded, want %d: %v", missed, tc.missed, statuses(t, st, "a"))
			}
		})
	}
}

func TestClockSteps(t *testing.T) {
	s, st, _ := setup(t)
	r := &recorder{}
	ctx := context.Background()
	s.Set(ctx, []scheduler.Job{{Name: "a", Schedule: hourly(t), Enabled: true, CatchUp: 30 * time.Minute, Run: r.run}})
	s.Tick(ctx, t0.Add(time.Hour)) // 10:00 runs
	wait(s)
	// Backward step: 10:00 comes round again; it must not re-run.
	s.Tick(ctx, t0.Add(30*time.Minute))
	s.Tick(ctx, t0.Add(time.Hour+time.Second))
	wait(s)
	// Forward step of 3 h: 11:00 and 12:00 missed, 13:00 caught up (within 30 min).
	s.Tick(ctx, t0.Add(4*time.Hour+10*time.Minute))
	wait(s)
	if got := r.got(); len(got) != 2 || got[0] != "10:00 scheduled" || got[1] != "13:00 catch-up" {
		t.Fatalf("runs %v", got)
	}
	want := map[string]string{"11:00": "missed/scheduled", "12:00": "missed/scheduled"}
	got := statuses(t, st, "a")
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("records %v", got)
		}
	}
}

func TestOverlap(t *testing.T) {
	for _, mode := range pbirefresh.Overlaps() {
		t.Run(string(mode), func(t *testing.T) {
			s, st, _ := setup(t)
			r := &recorder{block: make(chan struct{})}
			ctx := context.Background()
			s.Set(ctx, []scheduler.Job{{Name: "a", Schedule: hourly(t), Enabled: true, Overlap: mode, Run: r.run}})
			s.Tick(ctx, t0.Add(time.Hour))   // 10:00 starts and blocks
			s.Tick(ctx, t0.Add(2*time.Hour)) // 11:00 while 10:00 runs
			s.Tick(ctx, t0.Add(3*time.Hour)) // 12:00 too
			close(r.block)
			wait(s)
			got := statuses(t, st, "a")
			runs := r.got()
			switch mode {
			case pbirefresh.OverlapSkip:
				if len(runs) != 1 || got["11:00"] != "skipped/scheduled" || got["12:00"] != "skipped/scheduled" {
					t.Fatalf("runs %v records %v", runs, got)
				}
			case pbirefresh.OverlapQueue: // at most one pending: 11:00 queued and run, 12:00 skipped
				if len(runs) != 2 || runs[1] != "11:00 scheduled" || got["12:00"] != "skipped/scheduled" {
					t.Fatalf("runs %v records %v", runs, got)
				}
			}
		})
	}
}

// memJournal is a Journal in memory; Record blocks while block is set.
type memJournal struct {
	mu      sync.Mutex
	records []string
	block   chan struct{}
}

func (j *memJournal) LastSlot(context.Context, string) (time.Time, bool, error) {
	return time.Time{}, false, nil
}

func (j *memJournal) Record(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind, status pbirefresh.Status, note string) error {
	if j.block != nil {
		<-j.block
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.records = append(j.records, job+" "+slot.Format("15:04")+" "+string(status))
	return nil
}

func (j *memJournal) Fail(context.Context, string, time.Time, pbirefresh.Kind, string) error {
	return nil
}

// gate is a RunFunc per job that counts runs in flight and blocks until
// released: all at once (release), or a job at a time (free, when the job
// has a channel there).
type gate struct {
	mu       sync.Mutex
	inflight map[string]bool
	peak     int
	release  chan struct{}
	free     map[string]chan struct{}
}

func (g *gate) run(name string) scheduler.RunFunc {
	return func(ctx context.Context, slot time.Time, kind pbirefresh.Kind) error {
		g.mu.Lock()
		g.inflight[name] = true
		g.peak = max(g.peak, len(g.inflight))
		wait := g.release
		if c, ok := g.free[name]; ok {
			wait = c
		}
		g.mu.Unlock()
		<-wait
		g.mu.Lock()
		delete(g.inflight, name)
		g.mu.Unlock()
		return nil
	}
}

func (g *gate) running() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for n := range g.inflight {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func TestLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := scheduler.New(&clock{now: t0}, &memJournal{}, nil)
		s.MaxInFlight = 1
		g := &gate{inflight: map[string]bool{}, release: make(chan struct{})}
		ctx := context.Background()
		s.Set(ctx, hourlyOnOneKey(t, g, "a", "b", "c"))
		s.Tick(ctx, t0.Add(time.Hour))
		synctest.Wait() // every run is running or waiting for its place
		if got := g.running(); len(got) != 1 {
			t.Fatalf("running %v with max_in_flight 1", got)
		}
		close(g.release)
		wait(s)
		if g.peak != 1 {
			t.Fatalf("peak in flight %d with max_in_flight 1", g.peak)
		}
	})
}

// hourlyOnOneKey is hourly jobs of one credential, run through g.
func hourlyOnOneKey(t *testing.T, g *gate, names ...string) []scheduler.Job {
	var jobs []scheduler.Job
	for _, n := range names {
		jobs = append(jobs, scheduler.Job{Name: n, Schedule: hourly(t), Enabled: true, LimitKey: "cred", Run: g.run(n)})
	}
	return jobs
}

// newHeld is a gate whose jobs are let go one at a time.
func newHeld(names ...string) *gate {
	g := &gate{inflight: map[string]bool{}, free: map[string]chan struct{}{}}
	for _, n := range names {
		g.free[n] = make(chan struct{})
	}
	return g
}

// letGo frees the jobs not freed yet.
func (g *gate) letGo() {
	for _, c := range g.free {
		select {
		case <-c:
		default:
			close(c)
		}
	}
}

// TestSetLimitsOnReload: a reload's new caps apply to the runs waiting and
// to those to come; runs in flight keep their places and count against
// the new caps, also when there was no cap before.
func TestSetLimitsOnReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := scheduler.New(&clock{now: t0}, &memJournal{}, nil)
		s.MaxInFlight = 1
		h := newHeld("a", "b", "c")
		defer func() { h.letGo(); wait(s) }() // also when a check fails
		ctx := context.Background()
		s.Set(ctx, hourlyOnOneKey(t, h, "a", "b", "c"))
		s.Tick(ctx, t0.Add(time.Hour))
		synctest.Wait()
		first := h.running()
		if len(first) != 1 {
			t.Fatalf("running %v with max_in_flight 1", first)
		}
		s.SetLimits(2, 0) // raised: a waiting run starts at once
		synctest.Wait()
		two := h.running()
		if len(two) != 2 {
			t.Fatalf("running %v after max_in_flight went from 1 to 2", two)
		}
		s.SetLimits(1, 0) // lowered: both keep running, the third waits
		synctest.Wait()
		if got := h.running(); len(got) != 2 {
			t.Fatalf("running %v after max_in_flight went from 2 to 1, want the same two", got)
		}
		close(h.free[two[0]])
		synctest.Wait()
		if got := h.running(); len(got) != 1 || got[0] != two[1] {
			t.Fatalf("running %v with one run left under max_in_flight 1, want only %s", got, two[1])
		}
		close(h.free[two[1]])
		synctest.Wait()
		if got := h.running(); len(got) != 1 || slices.Contains(two, got[0]) {
			t.Fatalf("running %v: the waiting run did not start when a place was free", got)
		}
	})
}

// TestSetLimitsCountsRunsStartedWithoutACap: per_credential set by a
// reload counts the runs that started while there was none.
func TestSetLimitsCountsRunsStartedWithoutACap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := scheduler.New(&clock{now: t0}, &memJournal{}, nil)
		h := newHeld("a", "b", "c")
		defer func() { h.letGo(); wait(s) }()
		ctx := context.Background()
		half, _ := scheduler.Parse("30 * * * *", time.UTC, scheduler.DST{})
		s.Set(ctx, []scheduler.Job{
			{Name: "a", Schedule: hourly(t), Enabled: true, LimitKey: "A", Run: h.run("a")},
			{Name: "b", Schedule: hourly(t), Enabled: true, LimitKey: "A", Run: h.run("b")},
			{Name: "c", Schedule: half, Enabled: true, LimitKey: "A", Run: h.run("c")},
		})
		s.Tick(ctx, t0.Add(time.Hour))
		synctest.Wait()
		if got := h.running(); len(got) != 2 {
			t.Fatalf("running %v without caps", got)
		}
		s.SetLimits(0, 1)
		s.Tick(ctx, t0.Add(90*time.Minute)) // c fires: A has two runs in flight
		synctest.Wait()
		if got := h.running(); len(got) != 2 || slices.Contains(got, "c") {
			t.Fatalf("running %v: c started though its credential has two runs under per_credential 1", got)
		}
		close(h.free["a"])
		synctest.Wait()
		if got := h.running(); len(got) != 1 || got[0] != "b" {
			t.Fatalf("running %v, want b alone (one place for A)", got)
		}
		close(h.free["b"])
		synctest.Wait()
		if got := h.running(); len(got) != 1 || got[0] != "c" {
			t.Fatalf("running %v, want c once A's place is free", got)
		}
	})
}

// TestPerCredentialWaitNeverHoldsAGlobalPlace: with max_in_flight 2 and
// per_credential 1, a second run of a busy credential waits for its
// credential without taking a global place, so another credential's run
// starts at once.
func TestPerCredentialWaitNeverHoldsAGlobalPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := scheduler.New(&clock{now: t0}, &memJournal{}, nil)
		s.MaxInFlight, s.PerKey = 2, 1
		g := &gate{inflight: map[string]bool{}, release: make(chan struct{})}
		defer func() { close(g.release); wait(s) }() // also when a check fails
		ctx := context.Background()
		half, _ := scheduler.Parse("30 * * * *", time.UTC, scheduler.DST{})
		s.Set(ctx, []scheduler.Job{
			{Name: "a1", Schedule: hourly(t), Enabled: true, LimitKey: "A", Run: g.run("a1")},
			{Name: "a2", Schedule: hourly(t), Enabled: true, LimitKey: "A", Run: g.run("a2")},
			{Name: "b1", Schedule: half, Enabled: true, LimitKey: "B", Run: g.run("b1")},
		})
		s.Tick(ctx, t0.Add(time.Hour)) // a1 and a2 fire; one runs, one waits for credential A
		synctest.Wait()
		if got := g.running(); len(got) != 1 {
			t.Fatalf("credential A runs %v with per_credential 1", got)
		}
		s.Tick(ctx, t0.Add(90*time.Minute)) // b1 fires
		synctest.Wait()
		if got := g.running(); len(got) != 2 || got[1] != "b1" {
			t.Fatalf("running %v: b1 must not wait behind credential A", got)
		}
	})
}

// TestJournalWritesOutsideTheLock: a journal that is slow to write (a
// busy disk) delays only that write; the scheduler keeps answering and
// firing other jobs meanwhile.
func TestJournalWritesOutsideTheLock(t *testing.T) {
	j := &memJournal{block: make(chan struct{})}
	c := &clock{now: t0}
	s := scheduler.New(c, j, nil)
	ctx := context.Background()
	r := &recorder{}
	s.Set(ctx, []scheduler.Job{
		{Name: "a", Schedule: hourly(t), Enabled: true, Run: r.run},
		{Name: "b", Schedule: hourly(t), Enabled: true, Run: r.run},
	})
	// Three hours later: a's and b's missed slots are recorded, and the
	// first Record blocks.
	ticked := make(chan struct{})
	go func() { s.Tick(ctx, t0.Add(3*time.Hour+10*time.Minute)); close(ticked) }()
	answered := make(chan struct{})
	go func() {
		for i := 0; i < 100; i++ { // the lock must be free while Record blocks
			s.Next("b")
			s.Trigger(ctx, "nope")
		}
		close(answered)
	}()
	select {
	case <-answered:
	case <-time.After(20 * time.Second):
		t.Fatal("the scheduler's lock is held while the journal writes")
	}
	close(j.block)
	<-ticked
	wait(s)
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.records) != 6 {
		t.Fatalf("records %v, want three missed slots for each job", j.records)
	}
}

func TestJitterPauseAndPanic(t *testing.T) {
	s, st, c := setup(t)
	ctx := context.Background()
	r := &recorder{}
	boom := func(ctx context.Context, slot time.Time, kind pbirefresh.Kind) error { panic("boom") }
	s.Set(ctx, []scheduler.Job{
		{Name: "fixed", Schedule: hourly(t), Enabled: true, Jitter: 10 * time.Minute, JitterMode: pbirefresh.JitterFixed, Run: r.run},
		{Name: "paused", Schedule: hourly(t), Enabled: false, Run: r.run},
		{Name: "panics", Schedule: hourly(t), Enabled: true, Run: boom},
	})
	off := scheduler.FixedJitter("fixed", 10*time.Minute)
	slot, fire, ok := s.Next("fixed")
	if !ok || !fire.Equal(slot.Time.Add(off)) || off >= 10*time.Minute {
		t.Fatalf("fixed jitter: slot %s fires %s (offset %s)", slot.Time, fire, off)
	}
	if _, _, ok := s.Next("paused"); ok {
		t.Fatal("a paused job has a next slot")
	}
	s.Tick(ctx, t0.Add(time.Hour+off))
	wait(s)
	s.Tick(ctx, t0.Add(2*time.Hour+off)) // the panicking job's next slot still fires
	wait(s)
	if got := statuses(t, st, "panics"); got["10:00"] != "error/scheduled" || got["11:00"] != "error/scheduled" {
		t.Fatalf("panics contained? %v", got)
	}
	if got := r.got(); len(got) != 2 {
		t.Fatalf("fixed-jitter runs %v", got)
	}
	// Resuming a paused job does not run what it missed while paused.
	c.Set(t0.Add(2*time.Hour + 30*time.Minute))
	s.Set(ctx, []scheduler.Job{{Name: "paused", Schedule: hourly(t), Enabled: true, CatchUp: 24 * time.Hour, Run: r.run}})
	s.Tick(ctx, t0.Add(2*time.Hour+30*time.Minute))
	wait(s)
	if got := statuses(t, st, "paused"); len(got) != 0 {
		t.Fatalf("resumed job ran or recorded its paused slots: %v", got)
	}
}

func TestLoopWakesAtLeastEvery30s(t *testing.T) {
	s, _, c := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.stop = func(n int) {
		if n >= 200 {
			cancel()
		}
	}
	daily, _ := scheduler.Parse("0 3 * * *", time.UTC, scheduler.DST{})
	s.Set(ctx, []scheduler.Job{{Name: "a", Schedule: daily, Enabled: true, Run: (&recorder{}).run}})
	s.Run(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sleeps) < 200 {
		t.Fatalf("%d sleeps", len(c.sleeps))
	}
	for _, d := range c.sleeps {
		if d > 30*time.Second || d <= 0 {
			t.Fatalf("slept %s", d)
		}
	}
}

func TestManualTriggerAndReload(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	r := &recorder{}
	job := scheduler.Job{Name: "a", Schedule: hourly(t), Enabled: true, Run: r.run, Version: "v1"}
	s.Set(ctx, []scheduler.Job{job})
	if _, err := s.Trigger(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Trigger(ctx, "nope"); err == nil {
		t.Fatal("unknown job triggered")
	}
	wait(s)
	if got := r.got(); len(got) != 1 || got[0] != "09:00 manual" {
		t.Fatalf("%v", got)
	}
	// Reload with the same version keeps the next slot; a changed schedule
	// is recomputed from now.
	before, _, _ := s.Next("a")
	s.Set(ctx, []scheduler.Job{job})
	if after, _, _ := s.Next("a"); !after.Time.Equal(before.Time) {
		t.Fatalf("unchanged job moved: %s -> %s", before.Time, after.Time)
	}
	daily, _ := scheduler.Parse("30 9 * * *", time.UTC, scheduler.DST{})
	job.Schedule, job.Version = daily, "v2"
	s.Set(ctx, []scheduler.Job{job})
	if after, _, _ := s.Next("a"); !after.Time.Equal(t0.Add(30 * time.Minute)) {
		t.Fatalf("changed job: next %s", after.Time)
	}
}

// TestReloadWhileRunning: a job changed by a reload while its run is in
// flight runs again once that run ends.
func TestReloadWhileRunning(t *testing.T) {
	s, _, c := setup(t)
	ctx := context.Background()
	r := &recorder{block: make(chan struct{}), started: make(chan struct{}, 1)}
	job := scheduler.Job{Name: "a", Schedule: hourly(t), Enabled: true, Run: r.run, Version: "v1"}
	s.Set(ctx, []scheduler.Job{job})
	s.Tick(ctx, t0.Add(time.Hour)) // 10:00 starts and blocks
	<-r.started
	c.Set(t0.Add(time.Hour + time.Minute))
	every30, _ := scheduler.Parse("*/30 * * * *", time.UTC, scheduler.DST{})
	job.Schedule, job.Version, job.Run = every30, "v2", (&recorder{}).run
	s.Set(ctx, []scheduler.Job{job}) // changed while 10:00 runs
	close(r.block)
	wait(s)
	r2 := &recorder{}
	job.Run = r2.run
	s.Set(ctx, []scheduler.Job{job}) // same version: only the closure changes
	s.Tick(ctx, t0.Add(90*time.Minute))
	wait(s)
	if got := r2.got(); len(got) != 1 || got[0] != "10:30 scheduled" {
		t.Fatalf("after the reload the job ran %v; it must not stay busy", got)
	}
}

// TestOnDemandJob: a job without a schedule never fires by itself but can
// be triggered.
func TestOnDemandJob(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	r := &recorder{}
	s.Set(ctx, []scheduler.Job{{Name: "adhoc", Enabled: true, Run: r.run}})
	s.Tick(ctx, t0.Add(24*time.Hour))
	if _, _, ok := s.Next("adhoc"); ok {
		t.Fatal("an on-demand job has a next slot")
	}
	if _, err := s.Trigger(ctx, "adhoc"); err != nil {
		t.Fatal(err)
	}
	wait(s)
	if got := r.got(); len(got) != 1 || got[0] != "09:00 manual" {
		t.Fatalf("%v", got)
	}
}

// TestRunKeepsTheDefinitionItFiredWith: a reload right after a slot fired
// does not swap the run's work under it (the daemon once took a second
// token that way: the run used the reloaded job's new client).
func TestRunKeepsTheDefinitionItFiredWith(t *testing.T) {
	for i := 0; i < 20; i++ {
		s, _, _ := setup(t)
		ctx := context.Background()
		before, after := &recorder{}, &recorder{}
		job := scheduler.Job{Name: "a", Schedule: hourly(t), Enabled: true, Run: before.run, Version: "v1"}
		s.Set(ctx, []scheduler.Job{job})
		s.Tick(ctx, t0.Add(time.Hour))
		job.Run, job.Version = after.run, "v2"
		s.Set(ctx, []scheduler.Job{job}) // at once, while the run may not have begun
		wait(s)
		if len(before.got()) != 1 || len(after.got()) != 0 {
			t.Fatalf("the fired run ran the definition of the reload: before %v, after %v", before.got(), after.got())
		}
	}
}

// TestResyncCatchesUpFromTheJournal: after a replica was cut off, Resync
// takes each job's last slot from the journal: slots decided elsewhere are
// not run again, and slots nobody decided follow the catch-up rules.
func TestResyncCatchesUpFromTheJournal(t *testing.T) {
	s, st, c := setup(t)
	ctx := context.Background()
	r := &recorder{}
	s.Set(ctx, []scheduler.Job{{Name: "a", Schedule: hourly(t), Enabled: true, CatchUp: 2 * time.Hour, Run: r.run}})
	// Cut off from 09:00 to 13:30: another replica ran 10:00 and 11:00,
	// nobody ran 12:00 or 13:00.
	st.Record(ctx, "a", t0.Add(time.Hour), pbirefresh.Scheduled, pbirefresh.Completed, "elsewhere")
	st.Record(ctx, "a", t0.Add(2*time.Hour), pbirefresh.Scheduled, pbirefresh.Completed, "elsewhere")
	c.Set(t0.Add(4*time.Hour + 30*time.Minute))
	if err := s.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	s.Tick(ctx, c.Now())
	wait(s)
	if got := r.got(); len(got) != 1 || got[0] != "13:00 catch-up" {
		t.Fatalf("runs %v, want only 13:00 caught up", got)
	}
	if got := statuses(t, st, "a")["12:00"]; got != "missed/scheduled" {
		t.Fatalf("12:00 recorded %q", got)
	}
}

// TestStartWaitsForTheJobToBeIdle: a run decided elsewhere (after its
// upstreams) starts only when the job has no run in progress, and Idle
// says when to try again.
func TestStartWaitsForTheJobToBeIdle(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	r := &recorder{block: make(chan struct{}), started: make(chan struct{}, 4)}
	idle := make(chan string, 4)
	s.Idle = func(job string) { idle <- job }
	s.Set(ctx, []scheduler.Job{{Name: "d", Enabled: true, Run: r.run}})
	if s.Start(ctx, "nope", t0, pbirefresh.After) {
		t.Fatal("started an unknown job")
	}
	if _, err := s.Trigger(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	<-r.started
	if s.Start(ctx, "d", t0.Add(time.Minute), pbirefresh.After) {
		t.Fatal("started while the job's previous run is in progress")
	}
	close(r.block)
	if job := <-idle; job != "d" {
		t.Fatalf("idle %q", job)
	}
	if !s.Start(ctx, "d", t0.Add(time.Minute), pbirefresh.After) {
		t.Fatal("not started once idle")
	}
	wait(s)
	if got := r.got(); len(got) != 2 || got[1] != "09:01 after" {
		t.Fatalf("%v", got)
	}
}

// TestBeforeDecidesWithoutAPlace: a job whose Before waits (for other
// jobs) holds no place under the limits meanwhile, so the job it waits for
// can run; Before's false runs nothing.
func TestBeforeDecidesWithoutAPlace(t *testing.T) {
	s, _, _ := setup(t)
	s.PerKey = 1
	ctx := context.Background()
	upstream := &recorder{started: make(chan struct{}, 1)}
	gated := &recorder{}
	open := make(chan bool)
	s.Set(ctx, []scheduler.Job{
		{Name: "gated", Enabled: true, LimitKey: "c", Run: gated.run, Before: func(ctx context.Context, slot time.Time, kind pbirefresh.Kind) bool { return <-open }},
		{Name: "up", Enabled: true, LimitKey: "c", Run: upstream.run},
	})
	s.Trigger(ctx, "gated") // waits in Before
	s.Trigger(ctx, "up")
	<-upstream.started // ran although gated fired first, with one place for both
	open <- false
	wait(s)
	if len(gated.got()) != 0 {
		t.Fatalf("gated ran although Before said no: %v", gated.got())
	}
	s.Trigger(ctx, "gated")
	open <- true
	wait(s)
	if len(gated.got()) != 1 {
		t.Fatalf("gated did not run when Before said yes: %v", gated.got())
	}
}

// A jitter wider than the gap between two slots is cut to the gap: each
// slot still fires before the next one, so no two slots fall due in one
// tick and none is recorded missed.
func TestJitterWiderThanTheSlotGap(t *testing.T) {
	every5, err := scheduler.Parse("*/5 * * * *", time.UTC, scheduler.DST{})
	if err != nil {
		t.Fatal(err)
	}
	// A name whose fixed offset within 12 min is past the 5 min gap.
	name := ""
	for i := 0; i < 1000 && name == ""; i++ {
		if n := "job-" + strconv.Itoa(i); scheduler.FixedJitter(n, 12*time.Minute) > 6*time.Minute {
			name = n
		}
	}
	if name == "" {
		t.Fatal("no name with a fixed offset past the gap")
	}
	for _, mode := range []pbirefresh.JitterMode{pbirefresh.JitterFixed, pbirefresh.JitterRandom} {
		t.Run(string(mode), func(t *testing.T) {
			s, st, c := setup(t)
			ctx := context.Background()
			r := &recorder{}
			s.Set(ctx, []scheduler.Job{{Name: name, Schedule: every5, Enabled: true, Jitter: 12 * time.Minute, JitterMode: mode, Run: r.run}})
			for i := 0; i < 24; i++ {
				slot, fire, ok := s.Next(name)
				if !ok {
					t.Fatal("no next slot")
				}
				if !fire.Before(slot.Time.Add(5 * time.Minute)) {
					t.Fatalf("slot %s fires at %s, at or after the next slot", slot.Time, fire)
				}
				c.Set(fire)
				s.Tick(ctx, fire)
				wait(s)
			}
			for slot, status := range statuses(t, st, name) {
				if strings.HasPrefix(status, string(pbirefresh.Missed)+"/") {
					t.Fatalf("slot %s recorded %s", slot, status)
				}
			}
			if got := r.got(); len(got) != 24 {
				t.Fatalf("%d runs of 24 slots: %v", len(got), got)
			}
		})
	}
}

// A reload that changes a job while its slot waits out its jitter keeps
// the slot: it fires, with the new definition, instead of vanishing.
func TestReloadInTheJitterWindowKeepsTheSlot(t *testing.T) {
	s, st, c := setup(t)
	ctx := context.Background()
	r := &recorder{}
	job := scheduler.Job{Name: "j", Schedule: hourly(t), Enabled: true, Jitter: 10 * time.Minute, JitterMode: pbirefresh.JitterFixed, Run: r.run, Version: "1"}
	s.Set(ctx, []scheduler.Job{job})
	slot, fire, ok := s.Next("j")
	if !ok || fire.Sub(slot.Time) < 2*time.Minute {
		t.Fatalf("fixed offset %s: the test needs one of 2 min or more", fire.Sub(slot.Time))
	}
	// The slot's time has passed; its jitter has not.
	c.Set(slot.Time.Add(time.Minute))
	s.Tick(ctx, c.Now())
	job.Version = "2"
	s.Set(ctx, []scheduler.Job{job})
	if next, _, ok := s.Next("j"); !ok || !next.Time.Equal(slot.Time) {
		t.Fatalf("after the reload the next slot is %s, want the pending %s", next.Time, slot.Time)
	}
	c.Set(fire)
	s.Tick(ctx, fire)
	wait(s)
	if got := r.got(); len(got) != 1 || got[0] != slot.Time.Format("15:04")+" scheduled" {
		t.Fatalf("runs %v, want the %s slot; recorded %v", got, slot.Time.Format("15:04"), statuses(t, st, "j"))
	}
}

// A run queued behind the one in progress (overlap: queue), or waiting for
// a place under the limits, does not start once a reload has paused or
// removed its job: it is recorded skipped.
func TestPausedOrRemovedJobsRunsDoNotStart(t *testing.T) {
	t.Run("queued", func(t *testing.T) {
		for _, reload := range []string{"paused", "removed"} {
			t.Run(reload, func(t *testing.T) {
				s, st, _ := setup(t)
				r := &recorder{block: make(chan struct{}), started: make(chan struct{}, 4)}
				ctx := context.Background()
				job := scheduler.Job{Name: "a", Schedule: hourly(t), Enabled: true, Overlap: pbirefresh.OverlapQueue, Run: r.run, Version: "1"}
				s.Set(ctx, []scheduler.Job{job})
				s.Tick(ctx, t0.Add(time.Hour)) // 10:00 starts and blocks
				<-r.started
				s.Tick(ctx, t0.Add(2*time.Hour)) // 11:00 queued
				var jobs []scheduler.Job
				if reload == "paused" {
					job.Enabled, job.Version = false, "2"
					jobs = append(jobs, job)
				}
				s.Set(ctx, jobs)
				close(r.block)
				wait(s)
				if got := r.got(); len(got) != 1 {
					t.Fatalf("runs %v: the queued run of a %s job started", got, reload)
				}
				if got := statuses(t, st, "a"); got["11:00"] != "skipped/scheduled" {
					t.Fatalf("records %v, want 11:00 skipped", got)
				}
			})
		}
	})
	t.Run("waiting for a place", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := &memJournal{}
			s := scheduler.New(&clock{now: t0}, j, nil)
			s.MaxInFlight = 1
			g := newHeld("a", "b")
			ctx := context.Background()
			jobs := hourlyOnOneKey(t, g, "a", "b")
			s.Set(ctx, jobs)
			s.Tick(ctx, t0.Add(time.Hour))
			synctest.Wait() // one runs, the other waits for the place
			running := g.running()
			if len(running) != 1 {
				t.Fatalf("running %v with max_in_flight 1", running)
			}
			waiting := "b"
			keep := jobs[0]
			if running[0] == "b" {
				waiting, keep = "a", jobs[1]
			}
			s.Set(ctx, []scheduler.Job{keep}) // the waiting job is removed
			g.letGo()
			wait(s)
			if g.peak != 1 {
				t.Fatalf("peak %d", g.peak)
			}
			j.mu.Lock()
			defer j.mu.Unlock()
			if len(j.records) != 1 || j.records[0] != waiting+" 10:00 skipped" {
				t.Fatalf("records %v, want the removed job's run skipped", j.records)
			}
		})
	})
}

// A manual run the overlap rule skips is reported as ErrSkipped (the API
// answers 409), not accepted; one queued says so.
func TestTriggerSaysWhatHappened(t *testing.T) {
	for _, mode := range pbirefresh.Overlaps() {
		t.Run(string(mode), func(t *testing.T) {
			s, _, _ := setup(t)
			r := &recorder{block: make(chan struct{}), started: make(chan struct{}, 4)}
			ctx := context.Background()
			s.Set(ctx, []scheduler.Job{{Name: "a", Enabled: true, Overlap: mode, Run: r.run}})
			if f, err := s.Trigger(ctx, "a"); err != nil || f.Queued {
				t.Fatalf("first trigger: %+v %v", f, err)
			}
			<-r.started
			f, err := s.Trigger(ctx, "a")
			switch mode {
			case pbirefresh.OverlapSkip:
				if !errors.Is(err, scheduler.ErrSkipped) {
					t.Fatalf("trigger while running (skip): %+v %v, want ErrSkipped", f, err)
				}
			case pbirefresh.OverlapQueue:
				if err != nil || !f.Queued {
					t.Fatalf("trigger while running (queue): %+v %v, want queued", f, err)
				}
			}
			close(r.block)
			wait(s)
			if _, err := s.Trigger(ctx, "nope"); !errors.Is(err, scheduler.ErrNoJob) {
				t.Fatalf("unknown job: %v", err)
			}
			wait(s)
		})
	}
}

// A reload in a slot's jitter window that changes the schedule itself
// keeps the pending slot only if the new schedule has it; slots of the new
// schedule between it and now were never due and are not recorded missed.
func TestReloadInTheJitterWindowWithANewSchedule(t *testing.T) {
	s, st, c := setup(t)
	ctx := context.Background()
	r := &recorder{}
	job := scheduler.Job{Name: "j", Schedule: hourly(t), Enabled: true, Jitter: 10 * time.Minute, JitterMode: pbirefresh.JitterFixed, Run: r.run, Version: "1"}
	s.Set(ctx, []scheduler.Job{job})
	slot, fire, _ := s.Next("j")
	if fire.Sub(slot.Time) <= 4*time.Minute {
		t.Fatalf("fixed offset %s: the test needs one over 4 min", fire.Sub(slot.Time))
	}
	c.Set(slot.Time.Add(4 * time.Minute)) // the new schedule's :03 has passed
	s.Tick(ctx, c.Now())
	every7, err := scheduler.Parse("3,10,17,24,31,38,45,52 * * * *", time.UTC, scheduler.DST{}) // not on the hour
	if err != nil {
		t.Fatal(err)
	}
	job.Schedule, job.Version = every7, "2"
	s.Set(ctx, []scheduler.Job{job})
	next, _, ok := s.Next("j")
	if !ok || !next.Time.After(c.Now()) {
		t.Fatalf("after the reload the next slot is %s, want one after now (%s)", next.Time, c.Now())
	}
	s.Tick(ctx, c.Now())
	wait(s)
	if got := statuses(t, st, "j"); len(got) != 0 || len(r.got()) != 0 {
		t.Fatalf("records %v, runs %v: want none", got, r.got())
	}
}
