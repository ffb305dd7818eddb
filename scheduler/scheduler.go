package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/pbirefresh/pbirefresh"
)

// Clock is the scheduler's time. Sleep returns early with ctx's error.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

// Journal is the durable state the scheduler reads and writes: the newest
// decided slot of a job (to know what was missed while down), and slots
// decided without a run.
//
// The scheduler never calls it while holding its own lock, so a slow disk
// or a busy database delays only the write, never every job's timing.
type Journal interface {
	LastSlot(ctx context.Context, job string) (time.Time, bool, error)
	Record(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind, status pbirefresh.Status, note string) error
	// Fail marks a slot's run as failed with a note, whether or not the
	// run had recorded it (a run that panicked).
	Fail(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind, note string) error
}

// LastSlots is what a journal may offer to read every job's last slot at
// once: a database across the network answers 10,000 jobs in one round
// trip instead of 10,000.
type LastSlots interface {
	LastSlots(ctx context.Context) (map[string]time.Time, error)
}

// RunFunc runs one slot of a job. It is called at most once per (job,
// slot) by this process; the journal's uniqueness covers restarts.
type RunFunc func(ctx context.Context, slot time.Time, kind pbirefresh.Kind) error

// Job is one scheduled job.
type Job struct {
	Name string
	// Before, if set, decides a slot before the run takes a place under
	// the limits (a job waiting for other jobs must not hold a place they
	// need): false runs nothing, and Before has recorded why.
	Before func(ctx context.Context, slot time.Time, kind pbirefresh.Kind) bool
	// Schedule is nil for a job that runs only when triggered.
	Schedule *Schedule
	Enabled  bool
	// Overlap: skip (the default, also for "") records a slot that fires
	// while the previous run is in progress as skipped; queue keeps at most
	// one pending run and starts it when the previous ends.
	Overlap pbirefresh.Overlap
	// CatchUp: after downtime or a forward clock step, the newest missed
	// slot still within this window runs once; 0 runs none.
	CatchUp time.Duration
	// Jitter delays each run by a random [0, Jitter), or by a stable
	// per-job offset with JitterMode fixed.
	Jitter     time.Duration
	JitterMode pbirefresh.JitterMode
	// LimitKey groups jobs under the per-key cap (the credential).
	LimitKey string
	Run      RunFunc
	// Version identifies the definition: a reload keeps the state of a
	// job whose name and version are unchanged.
	Version string
}

type jobState struct {
	job     Job
	next    Slot
	fireAt  time.Time
	hasNext bool
	running bool
	pending *queued
	index   int // in the heap; -1 when not in it
}

// fireHeap orders the enabled jobs by their next firing time, so a wake
// costs O(log n) in the number of jobs, not O(n).
type fireHeap []*jobState

func (h fireHeap) Len() int { return len(h) }
func (h fireHeap) Less(i, j int) bool {
	if !h[i].fireAt.Equal(h[j].fireAt) {
		return h[i].fireAt.Before(h[j].fireAt)
	}
	return h[i].job.Name < h[j].job.Name
}
func (h fireHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *fireHeap) Push(x any) {
	st := x.(*jobState)
	st.index = len(*h)
	*h = append(*h, st)
}
func (h *fireHeap) Pop() any {
	old := *h
	st := old[len(old)-1]
	old[len(old)-1] = nil
	st.index = -1
	*h = old[:len(old)-1]
	return st
}

type queued struct {
	slot time.Time
	kind pbirefresh.Kind
}

// record is a decision about a slot that ran nothing (skipped, missed),
// written to the journal after the scheduler's lock is released.
type record struct {
	job    string
	slot   time.Time
	kind   pbirefresh.Kind
	status pbirefresh.Status
	note   string
}

// Scheduler owns time for a set of jobs: it wakes at least every
// WakeEvery, fires due slots, handles lateness, missed slots, overlap,
// limits, jitter and panics. Create it with New, then Set jobs, then Run.
type Scheduler struct {
	// Logger receives one event per decision.
	Logger *slog.Logger
	// MaxInFlight and PerKey cap runs in flight (0: no cap); runs beyond
	// wait their turn. Set them before Run; SetLimits changes them later.
	MaxInFlight, PerKey int
	// Tolerance: a slot fired up to this late is not a misfire (default 1m).
	Tolerance time.Duration
	// WakeEvery bounds one sleep, so a wall-clock step or a suspend is
	// noticed (default 30s).
	WakeEvery time.Duration
	// Idle, if set, is called (without locks held) each time a job's run
	// has ended and the job has nothing queued: a run started elsewhere
	// (Start) may go now.
	Idle func(job string)

	clock   Clock
	journal Journal

	mu      sync.Mutex
	jobs    map[string]*jobState
	due     fireHeap // enabled jobs with a next slot, by fire time
	lastNow time.Time
	global  *places            // created at the first run, with MaxInFlight
	perKey  map[string]*places // by key, created at the key's first run, with PerKey
	rng     *rand.Rand
	wg      sync.WaitGroup
	base    context.Context // the runs' context: the documented exception to "no contexts in structs"
}

// New returns a scheduler.
func New(clock Clock, journal Journal, logger *slog.Logger) *Scheduler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{Logger: logger, clock: clock, journal: journal, jobs: map[string]*jobState{},
		perKey: map[string]*places{}, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)), base: context.Background()}
}

func (s *Scheduler) tolerance() time.Duration {
	if s.Tolerance > 0 {
		return s.Tolerance
	}
	return time.Minute
}

// Set installs (or reloads) the jobs. An unchanged job keeps its state; a
// new or changed one is scheduled from now, or, if the journal knows its
// last slot, from there (so slots missed while down are found). A job
// resumed here is scheduled from now: its slots missed while paused are
// never run (a job that is new here and enabled is taken up from the
// journal's last slot, which counts a resume in the daemon's journal).
// Runs in flight continue.
func (s *Scheduler) Set(ctx context.Context, jobs []Job) error {
	// The journal is read before the lock is taken: only for jobs this
	// scheduler does not know yet.
	s.mu.Lock()
	var unknown []string
	for _, j := range jobs {
		if s.jobs[j.Name] == nil && j.Enabled {
			unknown = append(unknown, j.Name)
		}
	}
	s.mu.Unlock()
	last, err := s.lastSlots(ctx, unknown)
	if err != nil {
		return err
	}

	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := map[string]bool{}
	for _, j := range jobs {
		keep[j.Name] = true
		st := s.jobs[j.Name]
		if st != nil {
			// Update in place: a run (or hold) in flight clears this same
			// state's running flag when it ends.
			changed := st.job.Version != j.Version || st.job.Enabled != j.Enabled
			// A slot whose time has passed but whose jitter has not is
			// still to fire: a change of definition (not a resume) keeps it
			// rather than dropping it, recorded nowhere, if the new
			// schedule has it too. (Other slots of a new schedule between
			// it and now were never due: they are not made missed.)
			pending, keep := st.next.Time, st.job.Enabled && j.Enabled && st.hasNext && !st.next.Time.After(now)
			st.job = j
			if !changed {
				continue // same definition: new closures, same next slot
			}
			if keep {
				st.advance(pending.Add(-time.Nanosecond), s)
				keep = st.hasNext && st.next.Time.Equal(pending)
			}
			if !keep {
				st.advance(now, s)
			}
			s.logScheduled(st)
			continue
		}
		st = &jobState{job: j}
		from := now
		if t, ok := last[j.Name]; ok && j.Enabled && t.Before(now) {
			from = t
		}
		st.advance(from, s)
		s.jobs[j.Name] = st
		s.logScheduled(st)
	}
	for name := range s.jobs {
		if !keep[name] {
			delete(s.jobs, name)
			s.Logger.Info("job removed", "job", name)
		}
	}
	s.due = s.due[:0]
	for _, st := range s.jobs {
		st.index = -1
		if st.job.Enabled && st.hasNext {
			s.due = append(s.due, st)
		}
	}
	sort.Slice(s.due, func(i, j int) bool { return s.due.Less(i, j) })
	for i, st := range s.due {
		st.index = i
	}
	return nil
}

func (s *Scheduler) logScheduled(st *jobState) {
	switch {
	case !st.job.Enabled:
		s.Logger.Info("job paused", "job", st.job.Name)
	case st.hasNext:
		s.Logger.Info("job scheduled", "job", st.job.Name, "next", st.next.Time, "note", st.next.Note)
	}
}

// advance moves the job to its first slot after t, with jitter. A job
// without a schedule runs only when triggered.
func (st *jobState) advance(t time.Time, s *Scheduler) {
	if st.job.Schedule == nil {
		st.hasNext = false
		return
	}
	st.next, st.hasNext = st.job.Schedule.Next(t)
	st.fireAt = st.next.Time
	if j := st.jitterBefore(); j > 0 {
		if st.job.JitterMode == pbirefresh.JitterFixed {
			st.fireAt = st.fireAt.Add(FixedJitter(st.job.Name, j))
		} else {
			st.fireAt = st.fireAt.Add(time.Duration(s.rng.Int64N(int64(j))))
		}
	}
}

// jitterBefore is the job's jitter for its next slot, cut to the time
// until the slot after it: a slot delayed to or past the next one would be
// due with it in the same tick, and be recorded missed.
func (st *jobState) jitterBefore() time.Duration {
	j := st.job.Jitter
	if j <= 0 || !st.hasNext {
		return 0
	}
	if after, ok := st.job.Schedule.Next(st.next.Time); ok {
		j = min(j, after.Time.Sub(st.next.Time))
	}
	return j
}

// Next returns a job's next slot and when it fires (with jitter).
func (s *Scheduler) Next(name string) (Slot, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.jobs[name]
	if st == nil || !st.job.Enabled || !st.hasNext {
		return Slot{}, time.Time{}, false
	}
	return st.next, st.fireAt, true
}

// maxDue bounds the slots examined per job and tick; older ones are
// counted, not listed.
const maxDue = 1000

// Tick fires what is due at now. Run calls it; tests call it directly.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) {
	s.mu.Lock()
	recs := s.tick(ctx, now)
	s.mu.Unlock()
	s.write(ctx, recs)
}

// tick decides; the caller writes the decisions. Must hold s.mu.
func (s *Scheduler) tick(ctx context.Context, now time.Time) []record {
	if !s.lastNow.IsZero() {
		switch d := now.Sub(s.lastNow); {
		case d < -time.Second:
			// Slots already decided are behind each job's next slot, so a
			// backward step can never run one twice.
			s.Logger.Warn("clock stepped back", "by", -d)
		case d > s.wake()+s.tolerance():
			s.Logger.Warn("clock jumped forward or the process was suspended", "by", d)
		}
	}
	s.lastNow = now
	var fired []*jobState
	for len(s.due) > 0 && !s.due[0].fireAt.After(now) {
		fired = append(fired, heap.Pop(&s.due).(*jobState))
	}
	var recs []record
	for _, st := range fired {
		name := st.job.Name
		var due []Slot
		skippedOld := 0
		for st.hasNext && !st.fireAt.After(now) {
			if len(due) == maxDue {
				skippedOld += len(due) - 1
				due = due[len(due)-1:]
			}
			due = append(due, st.next)
			st.advance(st.next.Time, s)
		}
		if st.hasNext && st.job.Enabled {
			heap.Push(&s.due, st)
		}
		if len(due) == 0 {
			continue
		}
		newest := due[len(due)-1]
		late := now.Sub(newest.Time)
		if len(due) == 1 && skippedOld == 0 && late <= st.job.Jitter+s.tolerance() {
			recs = s.fire(ctx, st, newest.Time, pbirefresh.Scheduled, newest.Note, recs)
			continue
		}
		catch := st.job.CatchUp > 0 && late <= st.job.CatchUp
		missed := due
		if catch {
			missed = due[:len(due)-1]
		}
		for _, m := range missed {
			note := "not run: the scheduler was down or the clock jumped"
			if m.Note != "" {
				note += " (" + m.Note + ")"
			}
			recs = append(recs, record{name, m.Time, pbirefresh.Scheduled, pbirefresh.Missed, note})
		}
		if len(missed) > 0 || skippedOld > 0 {
			s.Logger.Warn("slots missed", "job", name, "count", len(missed)+skippedOld, "newest", newest.Time, "catch_up", catch)
		}
		if catch {
			recs = s.fire(ctx, st, newest.Time, pbirefresh.CatchUp, newest.Note, recs)
		}
	}
	return recs
}

// write records decisions about slots that ran nothing. It runs without
// the scheduler's lock.
func (s *Scheduler) write(ctx context.Context, recs []record) {
	for _, r := range recs {
		if err := s.journal.Record(ctx, r.job, r.slot, r.kind, r.status, r.note); err != nil {
			s.Logger.Error("record "+string(r.status)+" slot", "job", r.job, "slot", r.slot, "error", err)
		}
	}
}

func (s *Scheduler) wake() time.Duration {
	if s.WakeEvery > 0 {
		return s.WakeEvery
	}
	return 30 * time.Second
}

// fire starts a run, or applies the overlap rule; a skipped slot is
// appended to recs for the caller to write. Must hold s.mu.
func (s *Scheduler) fire(ctx context.Context, st *jobState, slot time.Time, kind pbirefresh.Kind, note string, recs []record) []record {
	name := st.job.Name
	if st.running {
		if st.job.Overlap == pbirefresh.OverlapQueue && st.pending == nil {
			st.pending = &queued{slot: slot, kind: kind}
			s.Logger.Info("run queued: the previous run is in progress", "job", name, "slot", slot)
			return recs
		}
		reason := "the previous run is still in progress"
		if st.pending != nil {
			reason = "the previous run is in progress and one run is already queued"
		}
		s.Logger.Info("run skipped", "job", name, "slot", slot, "reason", reason)
		return append(recs, record{name, slot, kind, pbirefresh.Skipped, reason})
	}
	st.running = true
	// A slot fired on time is logged at Debug: the run's own events (the
	// daemon's "refresh started", "refresh completed") name the job and
	// slot, and at 100 runs a second a third line per run costs more CPU
	// than the scheduler itself. Catch-up, manual and DST-adjusted fires
	// are logged at Info.
	level := slog.LevelDebug
	attrs := []any{"job", name, "slot", slot, "kind", kind}
	if note != "" {
		attrs = append(attrs, "dst", note)
	}
	// A run its upstreams triggered is fired on every replica and claimed
	// by one: the winner's "refresh started" tells it.
	if kind != pbirefresh.Scheduled && kind != pbirefresh.After || note != "" {
		level = slog.LevelInfo
	}
	s.Logger.Log(context.Background(), level, "run fired", attrs...)
	s.wg.Add(1)
	// The run takes the definition it fired with, read under the lock: a
	// reload that lands meanwhile changes the job's next runs, not this one.
	go s.execute(ctx, st, st.job, slot, kind)
	return recs
}

func (s *Scheduler) execute(ctx context.Context, st *jobState, job Job, slot time.Time, kind pbirefresh.Kind) {
	defer s.wg.Done()
	if job.Before != nil && !job.Before(ctx, slot, kind) {
		s.done(ctx, st)
		return
	}
	if release, ok := s.acquire(ctx, job.LimitKey); ok {
		if why := s.dropped(st); why != "" {
			// Paused or removed by a reload while the run waited for its
			// place: it does not start.
			release()
			s.Logger.Info("run skipped", "job", job.Name, "slot", slot, "reason", why)
			s.write(ctx, []record{{job.Name, slot, kind, pbirefresh.Skipped, why}})
			s.done(ctx, st)
			return
		}
		func() {
			defer release()
			defer func() {
				if r := recover(); r != nil {
					s.Logger.Error("run panicked; the daemon carries on", "job", job.Name, "slot", slot, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					if err := s.journal.Fail(context.WithoutCancel(ctx), job.Name, slot, kind, fmt.Sprintf("panic: %v", r)); err != nil {
						s.Logger.Error("record panicked run", "job", job.Name, "error", err)
					}
				}
			}()
			if err := job.Run(ctx, slot, kind); err != nil && !errors.Is(err, context.Canceled) {
				s.Logger.Warn("run ended with an error", "job", job.Name, "slot", slot, "error", err)
			}
		}()
	}
	s.done(ctx, st)
}

// dropped says why a job's fired run must not start: the job was paused
// or removed by a reload since. "" if it may.
func (s *Scheduler) dropped(st *jobState) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.jobs[st.job.Name] != st:
		return "the job was removed from the configuration before its run started"
	case !st.job.Enabled:
		return "the job was paused (enabled: false) before its run started"
	}
	return ""
}

// done clears a job's running flag and starts its queued run, if any
// (unless a reload paused or removed the job meanwhile).
func (s *Scheduler) done(ctx context.Context, st *jobState) {
	var recs []record
	s.mu.Lock()
	st.running = false
	if p := st.pending; p != nil && ctx.Err() == nil {
		st.pending = nil
		if s.jobs[st.job.Name] != st || !st.job.Enabled {
			why := "the job was paused or removed before its queued run started"
			s.Logger.Info("queued run dropped", "job", st.job.Name, "slot", p.slot, "reason", why)
			recs = append(recs, record{st.job.Name, p.slot, p.kind, pbirefresh.Skipped, why})
		} else {
			recs = s.fire(ctx, st, p.slot, p.kind, "", recs)
		}
	}
	idle := !st.running
	name := st.job.Name
	s.mu.Unlock()
	s.write(ctx, recs)
	if idle && s.Idle != nil && ctx.Err() == nil {
		s.Idle(name)
	}
}

// lastSlots reads the jobs' last slots from the journal: at once when it
// can (LastSlots), else one by one.
func (s *Scheduler) lastSlots(ctx context.Context, names []string) (map[string]time.Time, error) {
	last := map[string]time.Time{}
	if all, ok := s.journal.(LastSlots); ok && len(names) > 1 {
		slots, err := all.LastSlots(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the jobs' last slots: %w", err)
		}
		for _, name := range names {
			if t, ok := slots[name]; ok {
				last[name] = t
			}
		}
		return last, nil
	}
	for _, name := range names {
		t, ok, err := s.journal.LastSlot(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("read the last slot of job %s: %w", name, err)
		}
		if ok {
			last[name] = t
		}
	}
	return last, nil
}

// Start runs a job now for a slot decided elsewhere (kind after: its
// upstreams triggered it), under the same limits as every run. It starts
// nothing and reports false when the job is unknown or its previous run
// is in progress; the caller tries again when the job is idle.
func (s *Scheduler) Start(ctx context.Context, name string, slot time.Time, kind pbirefresh.Kind) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.jobs[name]
	if st == nil || st.running {
		return false
	}
	s.fire(ctx, st, slot, kind, "", nil)
	return true
}

// acquire waits for a place under the per-key cap, then under the global
// one, in that order: a run waiting for its credential never holds a
// global place that another credential's run could use.
func (s *Scheduler) acquire(ctx context.Context, key string) (func(), bool) {
	s.mu.Lock()
	if s.global == nil {
		s.global = &places{cap: s.MaxInFlight}
	}
	g, k := s.global, s.perKey[key]
	if k == nil {
		k = &places{cap: s.PerKey}
		s.perKey[key] = k
	}
	s.mu.Unlock()
	if !k.take(ctx) {
		return nil, false
	}
	if !g.take(ctx) {
		k.release()
		return nil, false
	}
	return func() { g.release(); k.release() }, true
}

// SetLimits changes the caps (a reload): runs in flight keep their places
// and count against the new caps; waiting runs start as soon as there is
// room under them.
func (s *Scheduler) SetLimits(maxInFlight, perKey int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.MaxInFlight, s.PerKey = maxInFlight, perKey
	if s.global != nil {
		s.global.setCap(maxInFlight)
	}
	for _, k := range s.perKey {
		k.setCap(perKey)
	}
}

// Hold marks a job busy until release is called: slots that fire
// meanwhile follow the overlap rule. The daemon holds a job while it
// settles a run an earlier process left in flight.
func (s *Scheduler) Hold(name string) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.jobs[name]
	if st == nil || st.running {
		return func() {}
	}
	st.running = true
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			base := s.base
			s.mu.Unlock()
			s.done(base, st)
		})
	}
}

// Resync recomputes every enabled job's next slot from the journal's last
// slot, as at start-up: after this process was cut off from a shared
// journal (other replicas ran slots meanwhile, or nobody did), the slots
// it missed follow the catch-up rules and none runs twice.
func (s *Scheduler) Resync(ctx context.Context) error {
	s.mu.Lock()
	var names []string
	for name, st := range s.jobs {
		if st.job.Enabled {
			names = append(names, name)
		}
	}
	s.mu.Unlock()
	last, err := s.lastSlots(ctx, names)
	if err != nil {
		return err
	}
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		st := s.jobs[name]
		if st == nil {
			continue
		}
		from := now
		if t, ok := last[name]; ok && t.Before(now) {
			from = t
		}
		st.advance(from, s)
		if st.index >= 0 {
			heap.Fix(&s.due, st.index)
		} else if st.hasNext && st.job.Enabled {
			heap.Push(&s.due, st)
		}
	}
	return nil
}

// Alive reports whether the loop has ticked within d (for a watchdog).
func (s *Scheduler) Alive(d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.lastNow.IsZero() && s.clock.Now().Sub(s.lastNow) < d
}

// ErrNoJob: Trigger named a job the scheduler does not have.
var ErrNoJob = errors.New("no such job")

// ErrSkipped: the overlap rule skipped a manual run (it is recorded
// skipped, with the reason the error gives).
var ErrSkipped = errors.New("run skipped")

// Fired is what Trigger did with a manual run: started it, or queued it
// behind the run in progress (overlap: queue).
type Fired struct {
	Slot   time.Time
	Queued bool
}

// Trigger starts a manual run now, through the overlap rules. A run the
// rules skip is recorded and reported as ErrSkipped.
func (s *Scheduler) Trigger(ctx context.Context, name string) (Fired, error) {
	s.mu.Lock()
	st := s.jobs[name]
	if st == nil {
		s.mu.Unlock()
		return Fired{}, fmt.Errorf("%w %q", ErrNoJob, name)
	}
	slot := s.clock.Now().UTC().Truncate(time.Millisecond)
	busy := st.running
	recs := s.fire(ctx, st, slot, pbirefresh.Manual, "", nil)
	s.mu.Unlock()
	s.write(ctx, recs)
	if len(recs) > 0 { // fire records only a skip
		return Fired{Slot: slot}, fmt.Errorf("%w: %s", ErrSkipped, recs[len(recs)-1].note)
	}
	return Fired{Slot: slot, Queued: busy}, nil
}

// Run ticks until ctx is done. In-flight runs get ctx too; Wait waits for
// them to return.
func (s *Scheduler) Run(ctx context.Context) {
	s.mu.Lock()
	s.base = ctx // queued runs released by Hold stop with the loop
	s.mu.Unlock()
	for {
		now := s.clock.Now()
		s.Tick(ctx, now)
		wait := s.wake()
		s.mu.Lock()
		if len(s.due) > 0 {
			wait = min(wait, max(s.due[0].fireAt.Sub(now), 0))
		}
		s.mu.Unlock()
		if s.clock.Sleep(ctx, max(wait, time.Millisecond)) != nil {
			return
		}
	}
}

// Wait waits for runs in flight to return, at most until ctx is done.
func (s *Scheduler) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
