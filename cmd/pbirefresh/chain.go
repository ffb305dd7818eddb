package main

import (
	"context"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/store"
)

// Chains. A job with after and no schedule runs when its upstreams have
// completed: the store records it as triggered in the transaction that
// records the upstream's completion (or skipped, naming the upstream, when
// the upstream did not complete), so a crash between the two neither
// loses nor doubles it. The dispatcher below starts triggered runs, under
// the scheduler's limits, on this replica or any other: claiming one is
// a conditional write, and one replica wins.
//
// A job with after and a schedule runs on its schedule, gated by
// on_upstream: when a slot comes and an upstream has not completed since
// the job's last run, it waits (up to its timeout), skips, or runs anyway.

// chainSweep is how often the dispatcher looks for triggered runs without
// being told: runs triggered on other replicas, and runs that waited for
// the job's own run in flight there.
const chainSweep = 5 * time.Second

// upstreamRecheck bounds how long a waiting job goes without looking at
// its upstreams again (their ends on other replicas are not announced).
const upstreamRecheck = 10 * time.Second

// buildChain is the configuration's after links, for the store.
func buildChain(cfg *configs.Config) *store.Chain {
	after := map[string][]string{}
	scheduled := map[string]bool{}
	for _, j := range cfg.Jobs {
		if len(j.After) > 0 {
			after[j.Name] = j.After
		}
		scheduled[j.Name] = j.Parsed != nil
	}
	return store.NewChain(after, func(job string) bool { return scheduled[job] })
}

// chainEnded is called after every recorded end: the dispatcher looks for
// what it triggered, and jobs waiting for upstreams look again.
func (c *runCmd) chainEnded() {
	c.mu.Lock()
	empty := c.chain.Empty()
	c.mu.Unlock()
	if empty {
		return
	}
	select {
	case c.chainPoke <- struct{}{}:
	default:
	}
	c.changedMu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.changedMu.Unlock()
}

// skippedAfter logs and counts the runs the store recorded as skipped
// with a run that did not complete: the jobs it triggers, and theirs.
func (c *runCmd) skippedAfter(job string, slot time.Time, status pbirefresh.Status) {
	c.mu.Lock()
	chain := c.chain
	c.mu.Unlock()
	if chain.Empty() || status == pbirefresh.Completed {
		return
	}
	var skipped []string
	seen := map[string]bool{}
	queue := []string{job}
	for len(queue) > 0 && len(skipped) <= len(chain.After) {
		up := queue[0]
		queue = queue[1:]
		for _, d := range chain.Triggers[up] {
			if !seen[d] {
				seen[d] = true
				skipped = append(skipped, d)
				queue = append(queue, d)
			}
		}
	}
	if len(skipped) == 0 {
		return
	}
	for _, d := range skipped {
		c.metrics.runs.WithLabelValues(d, string(pbirefresh.Skipped)).Inc()
	}
	c.logger.Info("runs after it skipped: the upstream did not complete", "job", job, "slot", slot, "status", status, "skipped", strings.Join(skipped, ","))
}

// ended returns a channel closed at the next recorded end.
func (c *runCmd) ended() <-chan struct{} {
	c.changedMu.Lock()
	defer c.changedMu.Unlock()
	return c.changed
}

// dispatchLoop starts triggered runs when told, and every chainSweep.
func (c *runCmd) dispatchLoop(ctx context.Context) {
	t := time.NewTicker(chainSweep)
	defer t.Stop()
	for {
		c.dispatch(ctx)
		select {
		case <-ctx.Done():
			return
		case <-c.chainPoke:
		case <-t.C:
		}
	}
}

// dispatch starts every triggered run whose job is idle here.
// It runs even when the configuration has no after links any more, so
// runs triggered before a reload still start.
func (c *runCmd) dispatch(ctx context.Context) {
	c.mu.Lock()
	cfg := c.cfg
	c.mu.Unlock()
	if !c.scheduling.Load() || c.store.Gate() != nil {
		return
	}
	runs, err := c.store.Triggered(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.logger.Warn("list triggered runs", "error", err)
		}
		return
	}
	now := time.Now()
	for _, r := range runs {
		if until, ok := c.chainBackoff.Load(r.Job); ok && now.Before(until.(time.Time)) {
			continue
		}
		job := cfg.Job(r.Job)
		if job != nil && *job.Enabled {
			c.strangers.Delete(r.ID)
			c.sched.Start(c.base, r.Job, r.Slot, pbirefresh.After)
			continue
		}
		// A job this replica does not know, or has paused, may be another
		// replica's newer configuration (reloads reach replicas one by
		// one): its runs are dropped only after strangerGrace.
		first, _ := c.strangers.LoadOrStore(r.ID, now)
		if now.Sub(first.(time.Time)) < strangerGrace {
			continue
		}
		c.strangers.Delete(r.ID)
		if job == nil {
			c.dropTriggered(ctx, r, "the job is no longer in the configuration")
		} else {
			c.dropTriggered(ctx, r, "the job is paused (enabled: false)")
		}
	}
}

// strangerGrace is how long a triggered run of a job that is unknown or
// paused here waits before it is recorded as skipped.
const strangerGrace = 5 * time.Minute

// dropTriggered records a triggered run that cannot run as skipped; its
// own dependents are skipped with it.
func (c *runCmd) dropTriggered(ctx context.Context, r store.Run, why string) {
	id, err := c.store.Claim(ctx, r.Job, r.Slot)
	if err != nil {
		return // claimed elsewhere, or its job busy: looked at again later
	}
	if err := c.store.Finish(context.WithoutCancel(ctx), id, store.Outcome{Status: pbirefresh.Skipped, Note: why}); err != nil {
		c.storeFailed("a triggered run could not be recorded as skipped", r.Job, err)
		return
	}
	c.metrics.runs.WithLabelValues(r.Job, string(pbirefresh.Skipped)).Inc()
	c.logger.Info("run skipped", "job", r.Job, "slot", r.Slot, "kind", pbirefresh.After, "reason", why)
}

// gateKey names a slot whose gate decided to run with a note.
type gateKey struct {
	job  string
	slot time.Time
}

// upstreamBefore is the scheduler's Before of a scheduled job with after:
// its gate, decided before the run takes a place under the limits.
func (c *runCmd) upstreamBefore(job *configs.Job) func(context.Context, time.Time, pbirefresh.Kind) bool {
	return func(ctx context.Context, slot time.Time, kind pbirefresh.Kind) bool {
		if kind != pbirefresh.Scheduled && kind != pbirefresh.CatchUp {
			return true // manual runs are not gated
		}
		ctx, stop := c.memberContext(ctx)
		defer stop()
		note, ok := c.upstreamGate(ctx, job, slot, kind)
		if ok && note != "" {
			c.gateNotes.Store(gateKey{job.Name, slot}, note)
		}
		return ok
	}
}

// upstreamGate decides a scheduled slot of a job with after: ok to run
// (with a note when it runs although upstreams are not fresh), or not
// (the slot is recorded as skipped, or shutdown came first).
func (c *runCmd) upstreamGate(ctx context.Context, job *configs.Job, slot time.Time, kind pbirefresh.Kind) (string, bool) {
	waiting, err := c.store.Waiting(ctx, job.Name, job.After)
	if err == nil && len(waiting) == 0 {
		return "", true
	}
	describe := func(w []string, err error) string {
		if err != nil {
			return "the state of its upstreams could not be read (" + err.Error() + ")"
		}
		return "upstream " + strings.Join(w, ", ") + " has not completed since this job's last run"
	}
	switch job.OnUpstream {
	case configs.UpstreamRun:
		note := "ran although " + describe(waiting, err)
		c.logger.Info("run goes ahead (on_upstream: run)", "job", job.Name, "slot", slot, "reason", describe(waiting, err))
		return note, true
	case configs.UpstreamSkip:
		c.skipSlot(ctx, job.Name, slot, kind, describe(waiting, err)+" (on_upstream: skip)")
		return "", false
	}
	limit := job.Effective.Timeout.D()
	c.logger.Info("run waits for its upstreams", "job", job.Name, "slot", slot, "upstreams", strings.Join(waiting, ","), "at_most", limit)
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	recheck := time.NewTicker(upstreamRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			// Not recorded: the next start treats the slot by the
			// catch-up rules.
			return "", false
		case <-deadline.C:
			c.skipSlot(ctx, job.Name, slot, kind, "waited "+limit.String()+": "+describe(waiting, err))
			return "", false
		case <-c.ended():
		case <-recheck.C:
		}
		// Another replica may have decided this slot meanwhile (its run
		// then counts as the last run, and this one would wait in vain).
		// Only this slot: a later one decided here (the overlap rule skips
		// the job's next slot while this one waits) says nothing about it.
		if decided, derr := c.slotDecided(ctx, job.Name, slot); derr == nil && decided {
			c.logger.Debug("slot decided elsewhere while waiting for upstreams", "job", job.Name, "slot", slot)
			return "", false
		}
		waiting, err = c.store.Waiting(ctx, job.Name, job.After)
		if err == nil && len(waiting) == 0 {
			c.logger.Info("upstreams completed; the run goes ahead", "job", job.Name, "slot", slot)
			return "", true
		}
	}
}

// slotDecided reports whether the store holds a scheduled (not manual)
// run of job at slot.
func (c *runCmd) slotDecided(ctx context.Context, job string, slot time.Time) (bool, error) {
	// Runs are ordered by slot then id, newest first; the cursor just past
	// (slot, any id) starts the page at slot.
	runs, err := c.store.Runs(ctx, store.Query{Job: job, Limit: 10, After: &store.Cursor{Slot: slot, ID: math.MaxInt64}})
	if err != nil {
		return false, err
	}
	for _, r := range runs {
		if !r.Slot.Equal(slot) {
			break
		}
		if r.Kind != pbirefresh.Manual {
			return true, nil
		}
	}
	return false, nil
}

// skipSlot records a slot skipped by policy.
func (c *runCmd) skipSlot(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind, why string) {
	err := c.store.Record(ctx, job, slot, kind, pbirefresh.Skipped, why)
	switch {
	case errors.Is(err, store.ErrDuplicate), errors.Is(err, store.ErrFenced):
		return
	case err != nil:
		c.storeFailed("a skipped slot could not be recorded", job, err)
		return
	}
	c.metrics.runs.WithLabelValues(job, string(pbirefresh.Skipped)).Inc()
	c.logger.Info("run skipped", "job", job, "slot", slot, "reason", why)
}
