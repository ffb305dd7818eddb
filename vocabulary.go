package pbirefresh

import (
	"slices"
	"strings"
)

// Kind says why a run happened. A run is identified by (job, slot); its
// kind is recorded with it.
type Kind string

// Kinds of run.
const (
	// Scheduled: the job's schedule fired the slot.
	Scheduled Kind = "scheduled"
	// CatchUp: the newest slot missed during downtime, run late once.
	CatchUp Kind = "catch-up"
	// Manual: an operator asked for it (API, run-now); its slot is the
	// instant of the request.
	Manual Kind = "manual"
	// After: the jobs named in the job's after list completed; its slot
	// is the slot of the upstream run whose completion triggered it.
	After Kind = "after"
)

// Status is where a run is, or how it ended.
type Status string

// Statuses. Triggered, Pending and Running are in flight; every other one
// is final.
const (
	// Triggered: its upstreams completed; it waits to start (a place under
	// the concurrency limits, or the end of its own previous run).
	Triggered Status = "triggered"
	// Pending: recorded, its POST not yet known to have reached the service.
	Pending Status = "pending"
	// Running: the refresh id is known; the run follows it.
	Running Status = "running"
	// Completed is the only success.
	Completed Status = "completed"
	// Failed, Cancelled, Disabled, TimedOut and Lost are distinct failures
	// of a refresh that was started.
	Failed    Status = "failed"
	Cancelled Status = "cancelled"
	Disabled  Status = "disabled"
	TimedOut  Status = "timed_out"
	// Lost: accepted by the service but never seen running (it drops
	// requests that arrive in bursts).
	Lost Status = "lost"
	// Skipped: not started by policy (overlap, an upstream that did not
	// complete, or a busy dataset with when_busy: skip).
	Skipped Status = "skipped"
	// Missed: the slot passed while the daemon was down or the clock
	// jumped, and catch-up did not cover it.
	Missed Status = "missed"
	// QuotaExceeded: shared capacity's daily refresh limit was used up;
	// nothing was started.
	QuotaExceeded Status = "quota_exceeded"
	// Error: the refresh could not be started or followed (credentials,
	// permissions, network, an interrupted run that started nothing).
	Error Status = "error"
)

// Statuses lists every status, in flight first.
func Statuses() []Status {
	return []Status{Triggered, Pending, Running, Completed, Failed, Cancelled, Disabled, TimedOut, Lost, Skipped, Missed, QuotaExceeded, Error}
}

// InFlight reports whether the run has not ended yet.
func (s Status) InFlight() bool { return s == Triggered || s == Pending || s == Running }

// Decided reports whether the status is a decision about a slot rather
// than the result of trying it: skipped and missed slots ran nothing.
func (s Status) Decided() bool { return s == Skipped || s == Missed }

// Result reports whether the status is the end of a run that tried: final,
// and neither skipped nor missed. "Last result" and recovery look only at
// these.
func (s Status) Result() bool { return !s.InFlight() && !s.Decided() }

// Failure reports whether a run that tried ended without success.
func (s Status) Failure() bool { return s.Result() && s != Completed }

// Overlap is what a job does when a slot fires while its previous run is
// still in progress.
type Overlap string

// Overlap policies.
const (
	// OverlapSkip records the slot as skipped (the default).
	OverlapSkip Overlap = "skip"
	// OverlapQueue keeps at most one pending run and starts it when the
	// previous one ends.
	OverlapQueue Overlap = "queue"
)

// Overlaps lists the overlap policies, the default first.
func Overlaps() []Overlap { return []Overlap{OverlapSkip, OverlapQueue} }

// WhenBusy is what a run does when someone else's refresh of the dataset is
// running.
type WhenBusy string

// Busy policies.
const (
	// BusyWait follows the other refresh to its end, never cancelling it,
	// then starts ours (the default).
	BusyWait WhenBusy = "wait"
	// BusySkip records the run as skipped.
	BusySkip WhenBusy = "skip"
	// BusyFail ends the run with an error.
	BusyFail WhenBusy = "fail"
)

// BusyPolicies lists the busy policies, the default first.
func BusyPolicies() []WhenBusy { return []WhenBusy{BusyWait, BusySkip, BusyFail} }

// OnTimeout is what a run does when its client-side deadline passes.
type OnTimeout string

// Timeout policies.
const (
	// TimeoutCancel cancels our own enhanced refresh (the default);
	// classic refreshes cannot be cancelled and are left running.
	TimeoutCancel OnTimeout = "cancel"
	// TimeoutLeave lets the refresh run on in Power BI.
	TimeoutLeave OnTimeout = "leave"
)

// TimeoutPolicies lists the timeout policies, the default first.
func TimeoutPolicies() []OnTimeout { return []OnTimeout{TimeoutCancel, TimeoutLeave} }

// JitterMode says how a job's jitter is drawn.
type JitterMode string

// Jitter modes.
const (
	// JitterRandom draws a delay in [0, jitter) for every run (the default).
	JitterRandom JitterMode = "random"
	// JitterFixed uses one stable per-job offset derived from its name.
	JitterFixed JitterMode = "fixed"
)

// JitterModes lists the jitter modes, the default first.
func JitterModes() []JitterMode { return []JitterMode{JitterRandom, JitterFixed} }

// DSTGap is what a wall-clock schedule does with a time that falls in a
// spring-forward gap.
type DSTGap string

// Gap policies.
const (
	// GapShift runs at the first instant after the gap (the default): a
	// late nightly refresh is better than none.
	GapShift DSTGap = "shift"
	// GapSkip does not run that day.
	GapSkip DSTGap = "skip"
)

// GapPolicies lists the gap policies, the default first.
func GapPolicies() []DSTGap { return []DSTGap{GapShift, GapSkip} }

// DSTRepeat is what a wall-clock schedule does with a time that a
// fall-back change repeats.
type DSTRepeat string

// Repeat policies.
const (
	// RepeatFirst runs once, at the first occurrence (the default).
	RepeatFirst DSTRepeat = "first"
	// RepeatBoth runs at both occurrences.
	RepeatBoth DSTRepeat = "both"
)

// RepeatPolicies lists the repeat policies, the default first.
func RepeatPolicies() []DSTRepeat { return []DSTRepeat{RepeatFirst, RepeatBoth} }

// Valid reports whether v is one of values.
func Valid[T ~string](v T, values []T) bool { return slices.Contains(values, v) }

// OneOf writes values as an operator reads them: "skip or queue",
// "wait, skip or fail".
func OneOf[T ~string](values []T) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
