package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
)

// Store is what the contract exercises.
type Store interface {
	Begin(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind) (int64, error)
	Record(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind, status pbirefresh.Status, note string) error
	Fail(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind, note string) error
	SetRefresh(ctx context.Context, id int64, refreshID string) error
	Finish(ctx context.Context, id int64, o store.Outcome) error
	Claimed(ctx context.Context, refreshID string) (bool, error)
	LastSlot(ctx context.Context, job string) (time.Time, bool, error)
	LastSlots(ctx context.Context) (map[string]time.Time, error)
	// Adopt takes over the runs in flight that no live process follows
	// (after a restart: all of them) and returns them.
	Adopt(ctx context.Context) ([]store.Run, error)
	Runs(ctx context.Context, q store.Query) ([]store.Run, error)
	RecentDurations(ctx context.Context, n int) (map[string][]time.Duration, error)
	Freshness(ctx context.Context) (map[string]store.Freshness, error)
	Prune(ctx context.Context, keep int, maxAge time.Duration) (int64, error)
	SetChain(c *store.Chain)
	Waiting(ctx context.Context, job string, ups []string) ([]string, error)
	Triggered(ctx context.Context) ([]store.Run, error)
	Claim(ctx context.Context, job string, slot time.Time) (int64, error)
	SetPaused(ctx context.Context, job string, paused bool, at time.Time) error
	Pauses(ctx context.Context) (map[string]store.Pause, error)
	Ping(ctx context.Context) error
	Close() error
}

// Opener opens the store called name, creating it empty the first time;
// opening the same name again after Close sees what was written. now is
// the store's clock.
type Opener func(t *testing.T, name string, now func() time.Time) Store

// T0 is the contract's epoch.
var T0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// Run runs the whole contract.
func Run(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"LifecycleAndUniqueness", lifecycle},
		{"ConcurrentBeginsTakeASlotOnce", concurrentBegins},
		{"FailAndRecord", failAndRecord},
		{"OneRunOfAJobInFlight", busy},
		{"Paging", paging},
		{"Durations", durations},
		{"Freshness", freshness},
		{"Prune", prune},
		{"Chain", chain},
		{"ChainDiamondRace", diamondRace},
		{"PausesOutliveTheProcess", pauses},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
}

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func lifecycle(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, "lifecycle", fixed(T0))
	id, err := s.Begin(ctx, "sales", T0, pbirefresh.Scheduled)
	must(t, err)
	if _, err := s.Begin(ctx, "sales", T0, pbirefresh.CatchUp); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("second Begin of a slot: %v, want ErrDuplicate", err)
	}
	if err := s.Record(ctx, "sales", T0, pbirefresh.Scheduled, pbirefresh.Skipped, "overlap"); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("Record of a taken slot: %v, want ErrDuplicate", err)
	}
	must(t, s.SetRefresh(ctx, id, "r-1"))
	if ok, err := s.Claimed(ctx, "r-1"); !ok || err != nil {
		t.Fatalf("claimed r-1: %v %v", ok, err)
	}
	if ok, _ := s.Claimed(ctx, "r-2"); ok {
		t.Fatal("r-2 claimed by nobody")
	}
	must(t, s.Finish(ctx, id, store.Outcome{Status: pbirefresh.Completed, Polls: 7, Code: "c", Hint: "h",
		ServiceStart: T0.Add(time.Second), ServiceEnd: T0.Add(31 * time.Second)}))
	must(t, s.Record(ctx, "sales", T0.Add(time.Hour), pbirefresh.Scheduled, pbirefresh.Missed, "daemon down"))
	last, ok, err := s.LastSlot(ctx, "sales")
	if err != nil || !ok || !last.Equal(T0.Add(time.Hour)) {
		t.Fatalf("last slot %s %v %v", last, ok, err)
	}
	if all, err := s.LastSlots(ctx); err != nil || len(all) != 1 || !all["sales"].Equal(T0.Add(time.Hour)) {
		t.Fatalf("last slots %v %v", all, err)
	}
	if _, ok, _ := s.LastSlot(ctx, "nobody"); ok {
		t.Fatal("a job without runs has a last slot")
	}
	// A manual run does not move the schedule's last slot.
	_, err = s.Begin(ctx, "sales", T0.Add(5*time.Hour), pbirefresh.Manual)
	must(t, err)
	if last, _, _ := s.LastSlot(ctx, "sales"); !last.Equal(T0.Add(time.Hour)) {
		t.Fatalf("manual run moved the last slot to %s", last)
	}
	// Left in flight by the process that closes now.
	_, err = s.Begin(ctx, "inventory", T0, pbirefresh.Scheduled)
	must(t, err)
	must(t, s.Ping(ctx))
	must(t, s.Close())

	// Reopen: everything survives, and the next process adopts what was
	// left in flight, once.
	s = open(t, "lifecycle", fixed(T0))
	adopted, err := s.Adopt(ctx)
	must(t, err)
	if len(adopted) != 2 || adopted[0].Job != "sales" || adopted[0].Kind != pbirefresh.Manual || adopted[1].Job != "inventory" ||
		adopted[1].Status != pbirefresh.Pending || !adopted[1].Posted.Equal(T0) {
		t.Fatalf("adopted: %+v, want the manual sales run and the inventory run, in order", adopted)
	}
	if again, _ := s.Adopt(ctx); len(again) != 0 {
		t.Fatalf("adopted twice: %+v", again)
	}
	runs, err := s.Runs(ctx, store.Query{Job: "sales"})
	must(t, err)
	if len(runs) != 3 {
		t.Fatalf("after reopen: %d runs, want 3", len(runs))
	}
	r := runs[2]
	if r.RefreshID != "r-1" || r.Status != pbirefresh.Completed || r.Polls != 7 || !r.Slot.Equal(T0) || r.Kind != pbirefresh.Scheduled ||
		r.Code != "c" || r.Hint != "h" || r.Duration() != 30*time.Second || !r.Ended.Equal(T0) {
		t.Fatalf("after reopen: %+v", r)
	}
	if runs[1].Status != pbirefresh.Missed || runs[1].Note != "daemon down" || runs[0].Kind != pbirefresh.Manual {
		t.Fatalf("after reopen: %+v", runs[:2])
	}
	if _, err := s.Begin(ctx, "sales", T0, pbirefresh.Scheduled); !errors.Is(err, store.ErrDuplicate) {
		t.Fatal("uniqueness lost across reopen")
	}
}

func concurrentBegins(t *testing.T, open Opener) {
	s := open(t, "concurrent", fixed(T0))
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, dup := 0, 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Begin(context.Background(), "j", T0, pbirefresh.Scheduled)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, store.ErrDuplicate):
				dup++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || dup != 19 {
		t.Fatalf("%d Begins won and %d were duplicates, want 1 and 19", won, dup)
	}
}

func failAndRecord(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, "fail", fixed(T0))
	// A run that panicked after recording itself.
	id, err := s.Begin(ctx, "a", T0, pbirefresh.Scheduled)
	must(t, err)
	must(t, s.SetRefresh(ctx, id, "r"))
	must(t, s.Fail(ctx, "a", T0, pbirefresh.Scheduled, "panic: boom"))
	// One that panicked before: a new record.
	must(t, s.Fail(ctx, "a", T0.Add(time.Hour), pbirefresh.Scheduled, "panic: early"))
	// One already final stays as it was.
	must(t, s.Record(ctx, "a", T0.Add(2*time.Hour), pbirefresh.Scheduled, pbirefresh.Skipped, "overlap"))
	must(t, s.Fail(ctx, "a", T0.Add(2*time.Hour), pbirefresh.Scheduled, "late"))
	runs, err := s.Runs(ctx, store.Query{Job: "a"})
	must(t, err)
	got := map[time.Time]string{}
	for _, r := range runs {
		got[r.Slot] = string(r.Status) + ":" + r.Note
	}
	want := map[time.Time]string{T0: "error:panic: boom", T0.Add(time.Hour): "error:panic: early", T0.Add(2 * time.Hour): "skipped:overlap"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := s.Begin(ctx, "a", T0.Add(3*time.Hour), pbirefresh.Scheduled); err != nil {
		t.Fatalf("a run of the job is still in flight: %v", err)
	}
}

// busy: one run of a job in flight at a time, whichever process fires it;
// a skipped slot is not a run in flight.
func busy(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, "busy", fixed(T0))
	id, err := s.Begin(ctx, "a", T0, pbirefresh.Scheduled)
	must(t, err)
	if _, err := s.Begin(ctx, "a", T0.Add(time.Hour), pbirefresh.Scheduled); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("second run in flight: %v, want ErrBusy", err)
	}
	must(t, s.Record(ctx, "a", T0.Add(time.Hour), pbirefresh.Scheduled, pbirefresh.Skipped, "overlap"))
	if _, err := s.Begin(ctx, "b", T0.Add(time.Hour), pbirefresh.Scheduled); err != nil {
		t.Fatalf("another job: %v", err)
	}
	must(t, s.SetRefresh(ctx, id, "r"))
	if _, err := s.Begin(ctx, "a", T0.Add(2*time.Hour), pbirefresh.Manual); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("while running: %v, want ErrBusy", err)
	}
	must(t, s.Finish(ctx, id, store.Outcome{Status: pbirefresh.Completed}))
	if _, err := s.Begin(ctx, "a", T0.Add(2*time.Hour), pbirefresh.Manual); err != nil {
		t.Fatalf("after the run ended: %v", err)
	}
}

func paging(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, "paging", fixed(T0))
	// Two jobs, interleaved, with equal slots across jobs.
	for i := 0; i < 25; i++ {
		for _, j := range []string{"a", "b"} {
			must(t, s.Record(ctx, j, T0.Add(time.Duration(i)*time.Minute), pbirefresh.Scheduled, pbirefresh.Missed, ""))
		}
	}
	for _, job := range []string{"", "a"} {
		var all []store.Run
		q := store.Query{Job: job, Limit: 7}
		for pages := 0; pages < 20; pages++ {
			page, err := s.Runs(ctx, q)
			must(t, err)
			if len(page) > 7 {
				t.Fatalf("page of %d runs, limit 7", len(page))
			}
			all = append(all, page...)
			if len(page) < 7 {
				break
			}
			q.After = store.CursorOf(page[len(page)-1])
		}
		want := 50
		if job != "" {
			want = 25
		}
		if len(all) != want {
			t.Fatalf("job %q: paged %d runs, want %d", job, len(all), want)
		}
		seen := map[int64]bool{}
		for i, r := range all {
			if seen[r.ID] {
				t.Fatalf("run %d twice", r.ID)
			}
			seen[r.ID] = true
			if i > 0 && (r.Slot.After(all[i-1].Slot) || r.Slot.Equal(all[i-1].Slot) && r.ID > all[i-1].ID) {
				t.Fatalf("not newest first at %d", i)
			}
			if job != "" && r.Job != job {
				t.Fatalf("job %q in a page of %q", r.Job, job)
			}
		}
	}
	if got := (store.Query{Limit: 1 << 20}).PageSize(); got != store.MaxPage {
		t.Fatalf("page size %d, want the cap %d", got, store.MaxPage)
	}
}

func durations(t *testing.T, open Opener) {
	ctx := context.Background()
	now := T0
	s := open(t, "durations", func() time.Time { return now })
	for i, d := range []time.Duration{10 * time.Second, 20 * time.Second, 0, 40 * time.Second} {
		slot := T0.Add(time.Duration(i) * time.Hour)
		now = slot
		id, err := s.Begin(ctx, "a", slot, pbirefresh.Scheduled)
		must(t, err)
		o := store.Outcome{Status: pbirefresh.Completed, ServiceStart: slot, ServiceEnd: slot.Add(d)}
		if d == 0 { // a failure: not a duration to expect
			o = store.Outcome{Status: pbirefresh.Failed}
			now = slot.Add(time.Minute)
		}
		must(t, s.Finish(ctx, id, o))
	}
	must(t, s.Record(ctx, "b", T0, pbirefresh.Scheduled, pbirefresh.Missed, ""))
	got, err := s.RecentDurations(ctx, 2)
	must(t, err)
	if fmt.Sprint(got) != "map[a:[40s 20s]]" {
		t.Fatalf("durations %v, want job a's newest two completed: [40s 20s], and nothing for b", got)
	}
}

func prune(t *testing.T, open Opener) {
	ctx := context.Background()
	now := T0.Add(48 * time.Hour)
	s := open(t, "prune", func() time.Time { return now })
	for i := 0; i < 10; i++ {
		must(t, s.Record(ctx, "a", T0.Add(time.Duration(i)*time.Hour), pbirefresh.Scheduled, pbirefresh.Missed, ""))
	}
	must(t, s.Record(ctx, "old", T0, pbirefresh.Scheduled, pbirefresh.Missed, ""))
	inflight, err := s.Begin(ctx, "a", T0.Add(-time.Hour), pbirefresh.Scheduled) // oldest, but in flight
	must(t, err)
	n, err := s.Prune(ctx, 3, 40*time.Hour) // keep 3 per job, nothing older than T0+8h
	must(t, err)
	runs, err := s.Runs(ctx, store.Query{})
	must(t, err)
	var kept []string
	for _, r := range runs {
		kept = append(kept, fmt.Sprintf("%s@%s", r.Job, r.Slot.Sub(T0)))
	}
	if n != 9 || fmt.Sprint(kept) != "[a@9h0m0s a@8h0m0s a@-1h0m0s]" {
		t.Fatalf("pruned %d, kept %v; want 9 pruned and the two newest within the age plus the one in flight", n, kept)
	}
	if kept[len(kept)-1] != "a@-1h0m0s" {
		t.Fatalf("the run in flight (id %d) was pruned", inflight)
	}
}

// freshness: the last success and the failures in a row since, per job.
func freshness(t *testing.T, open Opener) {
	ctx := context.Background()
	now := T0
	s := open(t, "freshness", func() time.Time { return now })
	run := func(job string, slot time.Duration, status pbirefresh.Status) {
		now = T0.Add(slot + time.Minute)
		if status.Decided() {
			must(t, s.Record(ctx, job, T0.Add(slot), pbirefresh.Scheduled, status, ""))
			return
		}
		id, err := s.Begin(ctx, job, T0.Add(slot), pbirefresh.Scheduled)
		must(t, err)
		must(t, s.Finish(ctx, id, store.Outcome{Status: status}))
	}
	run("a", 0, pbirefresh.Completed)
	run("a", time.Hour, pbirefresh.Failed)
	run("a", 2*time.Hour, pbirefresh.Skipped)
	run("a", 3*time.Hour, pbirefresh.Error)
	run("b", 0, pbirefresh.Failed)
	run("c", 0, pbirefresh.Failed)
	run("c", time.Hour, pbirefresh.Completed)
	got, err := s.Freshness(ctx)
	must(t, err)
	want := map[string]store.Freshness{
		"a": {LastSuccess: T0.Add(time.Minute), Failures: 2},
		"b": {Failures: 1},
		"c": {LastSuccess: T0.Add(time.Hour + time.Minute)},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("freshness %v, want %v", got, want)
	}
}

// ticking is a clock that moves a millisecond at every reading.
func ticking() func() time.Time {
	var mu sync.Mutex
	now := T0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}
}

// testChain: a and b feed d (a diamond's join), d feeds e; f has a
// schedule and after a, so it is gated, never triggered.
func testChain() *store.Chain {
	return store.NewChain(map[string][]string{"d": {"a", "b"}, "e": {"d"}, "f": {"a"}}, func(job string) bool { return job == "f" })
}

func triggered(t *testing.T, s Store) []store.Run {
	t.Helper()
	runs, err := s.Triggered(context.Background())
	must(t, err)
	return runs
}

func chain(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, "chain", ticking())
	s.SetChain(testChain())
	run := func(job string, slot time.Time, status pbirefresh.Status) int64 {
		t.Helper()
		id, err := s.Begin(ctx, job, slot, pbirefresh.Scheduled)
		must(t, err)
		must(t, s.Finish(ctx, id, store.Outcome{Status: status}))
		return id
	}
	day := 24 * time.Hour
	run("a", T0, pbirefresh.Completed)
	if got := triggered(t, s); len(got) != 0 {
		t.Fatalf("d triggered with b never completed: %+v", got)
	}
	if w, err := s.Waiting(ctx, "d", []string{"a", "b"}); err != nil || fmt.Sprint(w) != "[b]" {
		t.Fatalf("waiting %v %v, want [b]", w, err)
	}
	if w, err := s.Waiting(ctx, "f", []string{"a"}); err != nil || len(w) != 0 {
		t.Fatalf("f waiting %v %v, want none (a completed, f never ran)", w, err)
	}
	bSlot := T0.Add(30 * time.Minute)
	bID := run("b", bSlot, pbirefresh.Completed)
	got := triggered(t, s)
	if len(got) != 1 || got[0].Job != "d" || !got[0].Slot.Equal(bSlot) || got[0].Kind != pbirefresh.After || got[0].Status != pbirefresh.Triggered ||
		got[0].Upstream != "b" || got[0].UpstreamRun != bID {
		t.Fatalf("want d triggered by b's run %d at b's slot, got %+v", bID, got)
	}
	// b completes again while d waits: still one queued run of d, which
	// will read both completions when it starts.
	run("b", bSlot.Add(time.Minute), pbirefresh.Completed)
	if got := triggered(t, s); len(got) != 1 {
		t.Fatalf("a second queued run of d: %+v", got)
	}
	// A run of d is in flight: the triggered one waits.
	busy, err := s.Begin(ctx, "d", T0.Add(-time.Hour), pbirefresh.Manual)
	must(t, err)
	if _, err := s.Claim(ctx, "d", bSlot); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("claim while d is in flight: %v, want ErrBusy", err)
	}
	must(t, s.Finish(ctx, busy, store.Outcome{Status: pbirefresh.Failed}))
	dID, err := s.Claim(ctx, "d", bSlot)
	must(t, err)
	if _, err := s.Claim(ctx, "d", bSlot); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("second claim: %v, want ErrDuplicate", err)
	}
	if got := triggered(t, s); len(got) != 0 {
		t.Fatalf("claimed run still listed: %+v", got)
	}
	must(t, s.Finish(ctx, dID, store.Outcome{Status: pbirefresh.Completed}))
	got = triggered(t, s)
	if len(got) != 1 || got[0].Job != "e" || got[0].Upstream != "d" || got[0].UpstreamRun != dID || !got[0].Slot.Equal(bSlot) {
		t.Fatalf("want e triggered by d, got %+v", got)
	}
	eID, err := s.Claim(ctx, "e", bSlot)
	must(t, err)
	must(t, s.Finish(ctx, eID, store.Outcome{Status: pbirefresh.Completed}))
	// Next day: a completes, b has not since d ran: nothing.
	run("a", T0.Add(day), pbirefresh.Completed)
	if got := triggered(t, s); len(got) != 0 {
		t.Fatalf("d triggered by a alone: %+v", got)
	}
	// b fails: d is skipped naming b, and e naming d.
	bFail := run("b", bSlot.Add(day), pbirefresh.Failed)
	runs, err := s.Runs(ctx, store.Query{Limit: 100})
	must(t, err)
	found := 0
	for _, r := range runs {
		if !r.Slot.Equal(bSlot.Add(day)) {
			continue
		}
		switch r.Job {
		case "d":
			found++
			if r.Status != pbirefresh.Skipped || r.Upstream != "b" || r.UpstreamRun != bFail || r.Note != "upstream b did not complete (failed)" {
				t.Errorf("d: %+v", r)
			}
		case "e":
			found++
			if r.Status != pbirefresh.Skipped || r.Upstream != "d" || r.Note != "upstream d was skipped: upstream b did not complete (failed)" {
				t.Errorf("e: %+v", r)
			}
		}
	}
	if found != 2 {
		t.Fatalf("want d and e skipped at b's slot, found %d: %+v", found, runs)
	}
	if got := triggered(t, s); len(got) != 0 {
		t.Fatalf("triggered after a failure: %+v", got)
	}
	// b is run again by hand and completes: a's completion (after d's last
	// run) and b's make d ready.
	run("b", bSlot.Add(day+time.Hour), pbirefresh.Completed)
	if got := triggered(t, s); len(got) != 1 || got[0].Job != "d" {
		t.Fatalf("want d triggered after b's rerun, got %+v", got)
	}
	// d's run fails before any refresh existed (a name that resolves to
	// nothing): it does not count as d's last run, so the upstreams' ends
	// before it still count; a refresh that failed in the service does.
	dID, err = s.Claim(ctx, "d", bSlot.Add(day+time.Hour))
	must(t, err)
	must(t, s.Finish(ctx, dID, store.Outcome{Status: pbirefresh.Error, Error: "no dataset named"}))
	if w, err := s.Waiting(ctx, "d", []string{"a", "b"}); err != nil || len(w) != 0 {
		t.Fatalf("d waiting %v %v after a run that started nothing, want none", w, err)
	}
	failed, err := s.Begin(ctx, "d", T0.Add(3*day), pbirefresh.Manual)
	must(t, err)
	must(t, s.SetRefresh(ctx, failed, "r-d"))
	must(t, s.Finish(ctx, failed, store.Outcome{Status: pbirefresh.Failed}))
	if w, err := s.Waiting(ctx, "d", []string{"a", "b"}); err != nil || fmt.Sprint(w) != "[a b]" {
		t.Fatalf("d waiting %v %v after a refresh that failed, want [a b]", w, err)
	}
	run("b", T0.Add(3*day+time.Hour), pbirefresh.Completed)
	// f is scheduled: never triggered, and now waits for nothing (a
	// completed, f never ran); after f runs, it waits for a again.
	fID, err := s.Begin(ctx, "f", T0.Add(2*day), pbirefresh.Scheduled)
	must(t, err)
	must(t, s.Finish(ctx, fID, store.Outcome{Status: pbirefresh.Completed}))
	if w, err := s.Waiting(ctx, "f", []string{"a"}); err != nil || fmt.Sprint(w) != "[a]" {
		t.Fatalf("f waiting %v %v, want [a]", w, err)
	}
	// Triggered runs are never pruned, nor a job's newest completed run
	// and newest refresh (readiness is measured from them).
	if got := triggered(t, s); len(got) != 0 {
		t.Fatalf("triggered before prune: %+v", got)
	}
	run("a", T0.Add(4*day), pbirefresh.Completed)
	run("b", T0.Add(4*day), pbirefresh.Completed)
	_, err = s.Prune(ctx, 0, 0)
	must(t, err)
	if got := triggered(t, s); len(got) != 1 || got[0].Job != "d" {
		t.Fatalf("prune removed a triggered run: %+v", got)
	}
	if w, err := s.Waiting(ctx, "e", []string{"d"}); err != nil || fmt.Sprint(w) != "[d]" {
		t.Fatalf("e waiting %v %v after prune, want [d]", w, err)
	}
	if w, err := s.Waiting(ctx, "f", []string{"a"}); err != nil || len(w) != 0 {
		t.Fatalf("f waiting %v %v after prune: a's newest completion was pruned", w, err)
	}
}

// diamondRace finishes both upstreams of d at once, round after round:
// d is triggered exactly once per round, never zero times, never twice.
func diamondRace(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, "diamond", ticking())
	s.SetChain(testChain())
	for round := range 20 {
		slot := T0.Add(time.Duration(round) * time.Hour)
		a, err := s.Begin(ctx, "a", slot, pbirefresh.Scheduled)
		must(t, err)
		b, err := s.Begin(ctx, "b", slot.Add(time.Minute), pbirefresh.Scheduled)
		must(t, err)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, id := range []int64{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Finish(ctx, id, store.Outcome{Status: pbirefresh.Completed})
			}()
		}
		wg.Wait()
		must(t, errors.Join(errs...))
		got := triggered(t, s)
		if len(got) != 1 || got[0].Job != "d" {
			t.Fatalf("round %d: want d triggered once, got %+v", round, got)
		}
		for _, job := range []string{"d", "e"} {
			got := triggered(t, s)
			if len(got) != 1 || got[0].Job != job {
				t.Fatalf("round %d: want %s triggered, got %+v", round, job, got)
			}
			id, err := s.Claim(ctx, job, got[0].Slot)
			must(t, err)
			must(t, s.Finish(ctx, id, store.Outcome{Status: pbirefresh.Completed}))
		}
		if got := triggered(t, s); len(got) != 0 {
			t.Fatalf("round %d: left %+v", round, got)
		}
	}
}

// pauses: a pause is remembered across a reopen (a restart) with its first
// time, and a resume with its time; neither is a run (LastSlot is the
// runs').
func pauses(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, "pauses", fixed(T0))
	must(t, s.Record(ctx, "sales", T0, pbirefresh.Scheduled, pbirefresh.Completed, ""))
	must(t, s.SetPaused(ctx, "sales", true, T0.Add(time.Hour)))
	must(t, s.SetPaused(ctx, "sales", true, T0.Add(2*time.Hour))) // still paused: the first time stays
	must(t, s.Close())
	s = open(t, "pauses", fixed(T0))
	defer s.Close()
	if p, err := s.Pauses(ctx); err != nil || len(p) != 1 || !p["sales"].Paused.Equal(T0.Add(time.Hour)) || !p["sales"].Resumed.IsZero() {
		t.Fatalf("pauses after a reopen: %+v %v, want sales paused since %s", p, err, T0.Add(time.Hour))
	}
	resumed := T0.Add(5 * time.Hour)
	must(t, s.SetPaused(ctx, "sales", false, resumed))
	must(t, s.SetPaused(ctx, "new", false, resumed)) // resumed without a pause known
	p, err := s.Pauses(ctx)
	if err != nil || len(p) != 2 || !p["sales"].Paused.IsZero() || !p["sales"].Resumed.Equal(resumed) || !p["new"].Resumed.Equal(resumed) {
		t.Fatalf("pauses after the resumes: %+v %v", p, err)
	}
	must(t, s.SetPaused(ctx, "sales", true, resumed.Add(time.Hour))) // paused again: the last resume stays known
	if p, err := s.Pauses(ctx); err != nil || !p["sales"].Paused.Equal(resumed.Add(time.Hour)) || !p["sales"].Resumed.Equal(resumed) {
		t.Fatalf("paused again: %+v %v", p, err)
	}
	if last, ok, err := s.LastSlot(ctx, "sales"); err != nil || !ok || !last.Equal(T0) {
		t.Fatalf("last slot %s %v %v: a pause or resume is not a run", last, ok, err)
	}
	if all, err := s.LastSlots(ctx); err != nil || len(all) != 1 || !all["sales"].Equal(T0) {
		t.Fatalf("last slots %v %v: a pause or resume is not a run", all, err)
	}
}
