package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/scheduler"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

// A slot waiting for its upstreams (on_upstream: wait) keeps waiting when
// the job's next slot is skipped by the overlap rule meanwhile: that skip
// is a later slot, not this one decided elsewhere. Before, the gate read
// "the job's last slot is at or after mine" as "decided elsewhere" and let
// the slot go, recorded nowhere.
func TestUpstreamWaitOutlivesAnOverlapSkip(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"), sqlite.Options{Daemon: &sqlite.Holder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waits := make(chan struct{}, 1)
	logger := slog.New(&signalHandler{msg: "run waits for its upstreams", ch: waits})
	c := &runCmd{store: st, logger: logger, changed: make(chan struct{}), chainPoke: make(chan struct{}, 1),
		metrics: newMetrics(func() *scheduler.Scheduler { return nil }, func() []string { return nil }, func() (int, bool, bool) { return 0, false, false },
			newHealthGauges(func() map[string]fresh { return nil }, func() bool { return true }))}
	c.chain = store.NewChain(map[string][]string{"down": {"up"}}, func(string) bool { return true })
	st.SetChain(c.chain)
	job := &configs.Job{Name: "down", After: []string{"up"}, OnUpstream: configs.UpstreamWait}
	job.Effective.Timeout = configs.Duration(time.Hour)

	slot := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	type verdict struct {
		note string
		ok   bool
	}
	out := make(chan verdict, 1)
	go func() {
		note, ok := c.upstreamGate(ctx, job, slot, pbirefresh.Scheduled)
		out <- verdict{note, ok}
	}()
	select {
	case <-waits:
	case v := <-out:
		t.Fatalf("the gate did not wait: %+v", v)
	case <-time.After(time.Minute):
		t.Fatal("the gate did not start waiting within a minute")
	}
	// While the slot waits, the next slot comes and the overlap rule skips
	// it; then the upstream completes, and its end wakes the gate.
	if err := st.Record(ctx, "down", slot.Add(time.Hour), pbirefresh.Scheduled, pbirefresh.Skipped, "the previous run is still in progress"); err != nil {
		t.Fatal(err)
	}
	if err := st.Record(ctx, "up", slot.Add(10*time.Minute), pbirefresh.Scheduled, pbirefresh.Completed, ""); err != nil {
		t.Fatal(err)
	}
	c.chainEnded()
	select {
	case v := <-out:
		if !v.ok {
			t.Fatalf("the upstream completed, but the gate let the slot go (a later slot's skip read as this slot decided elsewhere): %+v", v)
		}
	case <-time.After(time.Minute):
		t.Fatal("the gate did not decide within a minute of the upstream's completion")
	}
}

// signalHandler sends on ch when a record with message msg is logged.
type signalHandler struct {
	msg string
	ch  chan struct{}
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *signalHandler) WithGroup(string) slog.Handler      { return h }

// fencedStore refuses Begin while fenced, as a PostgreSQL store does while
// its lease's trust window has passed without a renewal; asked receives a
// value each time Gate is asked while fenced.
type fencedStore struct {
	*sqlite.Store
	mu     sync.Mutex
	fenced bool
	asked  chan struct{}
}

func (f *fencedStore) Begin(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind) (int64, error) {
	f.mu.Lock()
	fenced := f.fenced
	f.mu.Unlock()
	if fenced {
		return 0, store.ErrFenced
	}
	return f.Store.Begin(ctx, job, slot, kind)
}

func (f *fencedStore) Gate() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fenced {
		select {
		case f.asked <- struct{}{}:
		default:
		}
		return store.ErrFenced
	}
	return nil
}

// A slot that falls while the lease's gate is closed for a late renewal
// (the lease not yet counted lost) is recorded once the gate opens again:
// before, it was logged "slot not claimed" and recorded by no replica.
func TestFencedSlotRecordedWhenTheGateOpens(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"), sqlite.Options{Daemon: &sqlite.Holder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := &fencedStore{Store: st, fenced: true, asked: make(chan struct{}, 1)}
	c := &runCmd{store: f, logger: slog.New(slog.DiscardHandler),
		cfg: &configs.Config{State: configs.State{Postgres: &configs.Postgres{LeaseTTL: configs.Duration(time.Minute)}}}}
	slot := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	type begun struct {
		id  int64
		err error
	}
	out := make(chan begun, 1)
	go func() {
		id, err := c.begin(ctx, "j", slot, pbirefresh.Scheduled)
		out <- begun{id, err}
	}()
	select {
	case <-f.asked: // it waits for the gate
	case b := <-out:
		t.Fatalf("fenced Begin gave up at once: %+v", b)
	case <-time.After(time.Minute):
		t.Fatal("the gate was not asked within a minute")
	}
	f.mu.Lock()
	f.fenced = false // a renewal succeeded
	f.mu.Unlock()
	select {
	case b := <-out:
		if b.err != nil || b.id == 0 {
			t.Fatalf("after the gate opened: %+v", b)
		}
	case <-time.After(time.Minute):
		t.Fatal("no Begin within a minute of the gate opening")
	}
	if runs, err := st.Runs(ctx, store.Query{Job: "j"}); err != nil || len(runs) != 1 || !runs[0].Slot.Equal(slot) {
		t.Fatalf("runs %+v %v", runs, err)
	}
}

// slowSlots blocks LastSlots until its context ends, as a database that
// does not answer; entered receives a value when it is called.
type slowSlots struct {
	*sqlite.Store
	slow    atomic.Bool
	entered chan struct{}
}

func (s *slowSlots) LastSlots(ctx context.Context) (map[string]time.Time, error) {
	if !s.slow.Load() {
		return s.Store.LastSlots(ctx)
	}
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// A rejoin returns at once, however slow the database is to answer the
// schedule's resync: it is called from the goroutine that renews the
// lease, and a renewal held up behind the resync loses the lease again.
func TestRejoinDoesNotHoldUpTheRenewals(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"), sqlite.Options{Daemon: &sqlite.Holder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	slow := &slowSlots{Store: st, entered: make(chan struct{}, 1)}
	logger := slog.New(slog.DiscardHandler)
	c := &runCmd{store: slow, logger: logger, base: ctx, cfg: &configs.Config{}}
	c.sched = scheduler.New(refresh.SystemClock{}, &journal{stateStore: slow, logger: logger}, logger)
	hourly, err := scheduler.Parse("0 * * * *", time.UTC, scheduler.DST{})
	if err != nil {
		t.Fatal(err)
	}
	noop := func(context.Context, time.Time, pbirefresh.Kind) error { return nil }
	var jobs []scheduler.Job
	for _, n := range []string{"a", "b"} { // two jobs: the scheduler reads all last slots at once
		jobs = append(jobs, scheduler.Job{Name: n, Schedule: hourly, Enabled: true, Run: noop})
	}
	if err := c.sched.Set(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	slow.slow.Store(true) // the database stops answering
	done := make(chan struct{})
	go func() { c.rejoined(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("rejoined waited on the database for a minute")
	}
	select {
	case <-slow.entered: // the resync did ask the database
	case <-time.After(time.Minute):
		t.Fatal("the resync never read the journal")
	}
}
