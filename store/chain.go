package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pbirefresh/pbirefresh"
)

// Chain is which jobs run after which (the jobs' after lists). The store
// applies it inside the transaction that records an upstream run's end, so
// a crash either keeps both the end and what it triggered, or neither.
type Chain struct {
	// Triggers[job] lists the jobs job's completion may trigger: those
	// with job in their after list and no schedule of their own.
	Triggers map[string][]string
	// After[job] is job's after list.
	After map[string][]string
}

// NewChain builds a chain from each job's after list; scheduled tells
// which jobs have a schedule (they run on it, gated by their upstreams,
// and are never triggered).
func NewChain(after map[string][]string, scheduled func(job string) bool) *Chain {
	c := &Chain{Triggers: map[string][]string{}, After: map[string][]string{}}
	for job, ups := range after {
		if len(ups) == 0 {
			continue
		}
		c.After[job] = ups
		if scheduled(job) {
			continue
		}
		for _, up := range ups {
			c.Triggers[up] = append(c.Triggers[up], job)
		}
	}
	// Sorted, so every process locks a completion's dependents in the
	// same order (two replicas never wait for each other's locks).
	for _, ds := range c.Triggers {
		slices.Sort(ds)
	}
	return c
}

// Empty reports whether no job runs after another.
func (c *Chain) Empty() bool { return c == nil || len(c.After) == 0 }

// ChainTx is what applying a chain needs inside the transaction that
// records an upstream's end.
type ChainTx interface {
	// Lock serialises the readiness checks of a dependent job until the
	// transaction ends (PostgreSQL: an advisory lock; SQLite has one
	// writer and needs none).
	Lock(ctx context.Context, job string) error
	// Waiting returns the upstreams in ups that have not completed since
	// job's last run: its newest run that is triggered, in flight, or
	// started a refresh (runs skipped, missed, or ended before any refresh
	// existed do not count); with no such run, since ever.
	Waiting(ctx context.Context, job string, ups []string) ([]string, error)
	// Queued reports whether job has a triggered run not yet started.
	Queued(ctx context.Context, job string) (bool, error)
	// Insert records a run of job at slot, triggered (to run) or skipped,
	// naming the upstream run that decided it. inserted is false when the
	// slot is already taken (a run of job was decided for it before).
	Insert(ctx context.Context, job string, slot time.Time, status pbirefresh.Status, up Upstream, note string) (id int64, inserted bool, err error)
}

// Upstream names the run that triggered (or skipped) a dependent run.
type Upstream struct {
	Job string
	Run int64
}

// Step applies the chain to the end of run id (job's, at slot): a
// completion triggers each dependent whose other upstreams have completed
// since its last run, unless one is already queued (at most one follow-up
// waits, as with overlap: queue; when it starts it reads what every
// upstream has completed by then); any other end skips every dependent,
// and theirs in turn, naming the upstream.
func (c *Chain) Step(ctx context.Context, tx ChainTx, job string, slot time.Time, id int64, status pbirefresh.Status) error {
	if c.Empty() || len(c.Triggers[job]) == 0 {
		return nil
	}
	if status == pbirefresh.Completed {
		for _, d := range c.Triggers[job] {
			if err := tx.Lock(ctx, d); err != nil {
				return err
			}
			waiting, err := tx.Waiting(ctx, d, c.After[d])
			if err != nil {
				return err
			}
			if len(waiting) > 0 {
				continue
			}
			if queued, err := tx.Queued(ctx, d); err != nil || queued {
				if err != nil {
					return err
				}
				continue
			}
			if _, _, err := tx.Insert(ctx, d, slot, pbirefresh.Triggered, Upstream{job, id}, "after "+job); err != nil {
				return err
			}
		}
		return nil
	}
	// The graph is acyclic (configs refuses cycles); the bound only guards
	// against a chain built by hand.
	return c.skip(ctx, tx, job, slot, id, fmt.Sprintf("upstream %s did not complete (%s)", job, status), len(c.After)+1)
}

func (c *Chain) skip(ctx context.Context, tx ChainTx, job string, slot time.Time, id int64, note string, depth int) error {
	if depth == 0 {
		return fmt.Errorf("chain deeper than its jobs at %s: is it cyclic?", job)
	}
	for _, d := range c.Triggers[job] {
		nid, inserted, err := tx.Insert(ctx, d, slot, pbirefresh.Skipped, Upstream{job, id}, note)
		if err != nil {
			return err
		}
		if inserted {
			if err := c.skip(ctx, tx, d, slot, nid, fmt.Sprintf("upstream %s was skipped: %s", d, note), depth-1); err != nil {
				return err
			}
		}
	}
	return nil
}
