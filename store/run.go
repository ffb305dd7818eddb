package store

import (
	"errors"
	"time"

	"github.com/pbirefresh/pbirefresh"
)

// Errors every implementation returns.
var (
	// ErrDuplicate: the (job, slot) pair is already recorded. The run must
	// not trigger a refresh.
	ErrDuplicate = errors.New("this job's slot is already recorded")
	// ErrBusy: another run of the job is in flight (pending or running),
	// maybe on another replica; the slot follows the overlap rule.
	ErrBusy = errors.New("another run of this job is in flight")
	// ErrFenced: this replica's lease has expired or cannot be renewed; it
	// must not claim, post or record anything until it rejoins.
	ErrFenced = errors.New("this replica has lost its lease")
	// ErrNotOwner: the run belongs to another replica now (it took it over
	// while this one could not renew its lease); its outcome is theirs to
	// record.
	ErrNotOwner = errors.New("the run belongs to another replica")
)

// Replica is one process sharing the state: its lease is renewed on the
// database's clock.
type Replica struct {
	ID        string    `json:"id"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Version   string    `json:"version"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	// Expires is when the lease ends unless renewed (database clock).
	Expires time.Time `json:"expires"`
	Alive   bool      `json:"alive"`
	// Runs is how many runs in flight it owns.
	Runs int `json:"runs"`
	// Self: this is the replica answering.
	Self bool `json:"self"`
}

// Run is one recorded run: a (job, slot) pair and what became of it.
type Run struct {
	ID        int64             `json:"id"`
	Job       string            `json:"job"`
	Slot      time.Time         `json:"slot"`
	Kind      pbirefresh.Kind   `json:"kind"`
	Status    pbirefresh.Status `json:"status"`
	RefreshID string            `json:"refresh_id,omitempty"`
	// Posted is when the run was recorded, just before its POST.
	Posted time.Time `json:"posted,omitzero"`
	Ended  time.Time `json:"ended,omitzero"`
	// ServiceStart and ServiceEnd are the refresh's times as Power BI
	// reported them.
	ServiceStart time.Time `json:"service_start,omitzero"`
	ServiceEnd   time.Time `json:"service_end,omitzero"`
	Polls        int       `json:"polls,omitempty"`
	Error        string    `json:"error,omitempty"`
	// Code is the service's error code (Power BI's error.code, the
	// refresh's serviceExceptionJson errorCode, or AADSTS<n>).
	Code string `json:"code,omitempty"`
	Hint string `json:"hint,omitempty"`
	Note string `json:"note,omitempty"`
	// Owner is the replica that follows (or followed) the run; empty with
	// a single process.
	Owner string `json:"owner,omitempty"`
	// Upstream and UpstreamRun name the run whose end triggered this one
	// (kind after), or skipped it.
	Upstream    string `json:"upstream,omitempty"`
	UpstreamRun int64  `json:"upstream_run,omitempty"`
}

// Duration is how long the refresh ran: the service's own times when it
// reported them, else from the POST to the end.
func (r Run) Duration() time.Duration {
	if !r.ServiceStart.IsZero() && r.ServiceEnd.After(r.ServiceStart) {
		return r.ServiceEnd.Sub(r.ServiceStart)
	}
	if !r.Posted.IsZero() && r.Ended.After(r.Posted) {
		return r.Ended.Sub(r.Posted)
	}
	return 0
}

// Outcome is what a run's end writes.
type Outcome struct {
	Status                   pbirefresh.Status
	RefreshID                string // kept when empty
	Polls                    int    // added to the polls already counted
	Error, Code, Hint, Note  string
	ServiceStart, ServiceEnd time.Time
}

// MaxPage bounds one page of history, whatever a caller asks for.
const MaxPage = 1000

// Query selects runs, newest slot first: a job's (all jobs when Job is
// ""), at most Limit (0 or above MaxPage: MaxPage), and, to page, only
// those strictly older than the cursor After (the last run of the
// previous page).
type Query struct {
	Job   string
	Limit int
	After *Cursor
}

// Cursor is a position in history: runs are ordered by slot, then id,
// newest first.
type Cursor struct {
	Slot time.Time
	ID   int64
}

// CursorOf returns the cursor just past run r.
func CursorOf(r Run) *Cursor { return &Cursor{Slot: r.Slot, ID: r.ID} }

// PageSize returns the number of runs a query returns at most.
func (q Query) PageSize() int {
	if q.Limit <= 0 || q.Limit > MaxPage {
		return MaxPage
	}
	return q.Limit
}

// Pause is what the state remembers of a job's pauses: when it was paused
// (zero: it is not) and when it was last taken up again (zero: never).
type Pause struct {
	Paused, Resumed time.Time
}

// Freshness is what a job's history says about its health: when its last
// successful refresh ended, and how many runs in a row have failed since.
type Freshness struct {
	LastSuccess time.Time
	Failures    int
}
