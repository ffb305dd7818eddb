package main

import (
	"sort"
	"sync"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
)

// freshness answers the question operators care most about: has each job
// refreshed successfully recently enough? It holds each job's last success
// and failures in a row (read from the store at start-up, then kept up to
// date as runs end), its stale_after, and whether the one "stale"
// notification was sent.
type freshness struct {
	now     func() time.Time
	started time.Time

	mu   sync.Mutex
	jobs map[string]*jobFresh
}

type jobFresh struct {
	lastSuccess time.Time
	failures    int
	staleAfter  time.Duration // 0: never stale
	since       time.Time     // when the daemon first knew the job: the age of a job that never succeeded
	notified    bool          // the stale notification went out
}

// fresh is one job's health at an instant.
type fresh struct {
	LastSuccess time.Time
	Age         time.Duration // since the last success, or since the job was first known
	StaleAfter  time.Duration
	Stale       bool
	Failures    int
}

func newFreshness(now func() time.Time, from map[string]store.Freshness) *freshness {
	f := &freshness{now: now, started: now(), jobs: map[string]*jobFresh{}}
	for job, s := range from {
		f.jobs[job] = &jobFresh{lastSuccess: s.LastSuccess, failures: s.Failures, since: f.started}
	}
	return f
}

func (f *freshness) job(name string) *jobFresh {
	j := f.jobs[name]
	if j == nil {
		j = &jobFresh{since: f.now()}
		f.jobs[name] = j
	}
	return j
}

// configure sets the jobs' thresholds (start-up and reload) and forgets
// jobs no longer configured.
func (f *freshness) configure(staleAfter map[string]time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name := range f.jobs {
		if _, ok := staleAfter[name]; !ok {
			delete(f.jobs, name)
		}
	}
	for name, d := range staleAfter {
		f.job(name).staleAfter = d
	}
}

// ended records a run's result; it reports whether the job was stale and
// is fresh again (a recovery to tell).
func (f *freshness) ended(name string, status pbirefresh.Status, end time.Time) (recovered bool) {
	if !status.Result() {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.job(name)
	if status != pbirefresh.Completed {
		j.failures++
		return false
	}
	j.failures, j.lastSuccess = 0, end
	recovered, j.notified = j.notified, false
	return recovered
}

func (f *freshness) at(j *jobFresh, now time.Time) fresh {
	from := j.lastSuccess
	if from.IsZero() {
		from = j.since
	}
	age := now.Sub(from)
	return fresh{LastSuccess: j.lastSuccess, Age: age, StaleAfter: j.staleAfter, Stale: j.staleAfter > 0 && age > j.staleAfter, Failures: j.failures}
}

// get returns a job's health now.
func (f *freshness) get(name string) fresh {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[name]
	if j == nil {
		return fresh{}
	}
	return f.at(j, f.now())
}

// all returns every job's health now, by name.
func (f *freshness) all() map[string]fresh {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]fresh{}
	now := f.now()
	for name, j := range f.jobs {
		out[name] = f.at(j, now)
	}
	return out
}

// sync merges what the store says (with replicas, other replicas' runs
// end too): a later success, and the failures in a row counted across
// all of them. A job fresh again is no longer marked notified; the
// replica whose run made it fresh told the recovery.
func (f *freshness) sync(from map[string]store.Freshness) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	for name, s := range from {
		j := f.jobs[name]
		if j == nil {
			continue
		}
		if s.LastSuccess.After(j.lastSuccess) {
			j.lastSuccess = s.LastSuccess
		}
		j.failures = s.Failures
		if j.notified && !f.at(j, now).Stale {
			j.notified = false
		}
	}
}

// newlyStale returns the jobs that crossed their stale_after and have not
// been notified yet, marking them notified: each crossing is told once.
func (f *freshness) newlyStale() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	var out []string
	for name, j := range f.jobs {
		if !j.notified && f.at(j, now).Stale {
			j.notified = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
