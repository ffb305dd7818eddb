package emulator

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"time"
)

const (
	historyCap     = 60             // entries kept per dataset (spec: "last available 60")
	historyKeepMin = 20             // ... of which at least this many even when old
	historyMaxAge  = 72 * time.Hour // older entries go once more than 20 exist
	maxTotal       = 24 * time.Hour // an enhanced request with its retries is capped here
	sharedDaily    = 8              // shared capacity: API + scheduled refreshes per 24 h
	// maxAttempts bounds the planned attempts of one refresh, whatever
	// retryCount says; the 24 h cap usually ends a refresh long before.
	maxAttempts = 1000
)

// Refresh types as the history reports them.
const (
	typeViaAPI         = "ViaApi"
	typeViaEnhancedAPI = "ViaEnhancedApi"
	typeScheduled      = "Scheduled"
	typeOnDemand       = "OnDemand"
)

type wsState struct {
	ws        *Workspace
	members   map[string]string // lower-case principal → lower-case role
	datasets  []*dsState
	dataflows []*dfState
}

type dsState struct {
	ds        Dataset
	ws        *wsState
	behaviour Behaviour
	history   []*refresh  // oldest first, at most historyCap
	posts     []time.Time // recent POST times, for drop bursts
	// sched is the refresh schedule as it stands (PATCH changes it); the
	// scenario's copy is left alone.
	sched ScheduleInfo
	// schedChecked is the instant up to which the schedule's slots have
	// been turned into refreshes (settings.fire_schedules).
	schedChecked time.Time
	loc          *time.Location // sched.TimeZone resolved, cached
	locFor       string
}

// refreshObject is one table (and partition) of an enhanced request.
type refreshObject struct {
	Table     string `json:"table"`
	Partition string `json:"partition,omitempty"`
}

// refreshRequest is a POST body after validation, in the service's casing.
type refreshRequest struct {
	enhanced           bool
	notifyOption       string
	typ                string
	commitMode         string
	maxParallelism     int
	retryCount         int
	objects            []refreshObject
	applyRefreshPolicy bool
	effectiveDate      string
	timeout            time.Duration
}

type attempt struct {
	start, end time.Time
	exception  string // serviceExceptionJson when the attempt failed
	timedOut   bool
}

// refresh is one refresh of a dataset. Its whole course is planned when it
// starts; what a client sees at time t is derived from the plan (view), so
// a fake clock can move it along without goroutines or timers.
type refresh struct {
	requestID   string
	id          int64
	ds          *dsState
	refreshType string
	req         refreshRequest
	posted      time.Time
	visibleAt   time.Time
	attempts    []attempt
	end         time.Time
	status      string // final status
	extStatus   string // final extendedStatus
	message     string // final engine message on failure
	cancelledAt time.Time
}

// plan lays out the attempts of a new refresh.
func plan(r *refresh, b Behaviour, premium bool, rng *rand.Rand) {
	limit := 5 * time.Hour // classic: 5 h on Premium, 2 h on shared (refresh-data.md)
	if !premium {
		limit = 2 * time.Hour
	}
	attempts := 1
	if r.req.enhanced {
		limit = r.req.timeout
		attempts = 1 + min(r.req.retryCount, maxAttempts-1)
	}
	t := r.posted.Add(b.NotStartedFor.D())
	deadline := r.posted.Add(maxTotal)
	// RefreshApiRequest with a refresh policy must be Transactional: the
	// service accepts the POST and fails the refresh (spec example).
	policyConflict := r.req.enhanced && r.req.commitMode == "PartialBatch" && r.req.applyRefreshPolicy
	for i := 0; i < attempts; i++ {
		d := b.Duration.draw(rng)
		a := attempt{start: t}
		switch {
		case policyConflict:
			a.end = t.Add(min(d, 2*time.Second))
			a.exception = `{"errorCode":"ModelRefresh_ShortMessage_ProcessingError","errorDescription":"RefreshApiRequest for table refresh using refresh policy must have the property 'CommitMode' = 'Transactional' instead of 'PartialBatch'."}`
			r.message = "RefreshApiRequest for table refresh using refresh policy must have the property 'CommitMode' = 'Transactional' instead of 'PartialBatch'."
			i = attempts // not retried: the request itself is at fault
		case d > limit:
			a.end, a.timedOut = t.Add(limit), true
			// The error code of a timed-out attempt is not documented.
			a.exception = fmt.Sprintf(`{"errorCode":"ModelRefresh_ShortMessage_TimedOut","errorDescription":"The refresh attempt exceeded the timeout of %s."}`, limit)
			r.message = fmt.Sprintf("The operation was timed out after %s.", limit)
		case b.Outcome == "failed" || i < b.FailAttempts:
			a.end = t.Add(d)
			a.exception = fmt.Sprintf(`{"errorCode":%q}`, b.ErrorCode)
			r.message = b.ErrorMessage
		default:
			a.end = t.Add(d)
		}
		if a.end.After(deadline) {
			a.end = deadline
		}
		r.attempts = append(r.attempts, a)
		t = a.end
		if a.exception == "" || !t.Before(deadline) {
			break
		}
	}
	last := r.attempts[len(r.attempts)-1]
	r.end = last.end
	switch {
	case last.exception == "" && b.Outcome == "disabled":
		r.status, r.extStatus = "Disabled", "Disabled"
		r.message = "The refresh was disabled by a selective refresh."
	case last.exception == "":
		r.status, r.extStatus, r.message = "Completed", "Completed", ""
	case last.timedOut:
		// TimedOut maps to status Failed: assumed, Microsoft does not say.
		r.status, r.extStatus = "Failed", "TimedOut"
	default:
		r.status, r.extStatus = "Failed", "Failed"
	}
}

// finishesAt is when the refresh reaches its terminal state.
func (r *refresh) finishesAt() time.Time {
	if !r.cancelledAt.IsZero() && r.cancelledAt.Before(r.end) {
		return r.cancelledAt
	}
	return r.end
}

func (r *refresh) running(now time.Time) bool { return now.Before(r.finishesAt()) }

func (r *refresh) visible(now time.Time) bool { return !now.Before(r.visibleAt) }

// view is the refresh as a client sees it at one instant.
type view struct {
	status, extStatus string
	endTime           time.Time
	attempts          []attempt
	exception         string
	message           string
	terminal          bool
}

func (r *refresh) view(now time.Time) view {
	end := r.finishesAt()
	v := view{}
	for _, a := range r.attempts {
		if now.Before(a.start) {
			break
		}
		if a.end.After(end) { // cut short by a cancel
			a.end, a.exception, a.timedOut = end, "", false
		}
		if now.Before(a.end) {
			a.end, a.exception = time.Time{}, ""
		}
		v.attempts = append(v.attempts, a)
	}
	switch {
	case !now.Before(end) && end.Equal(r.cancelledAt):
		v.status, v.extStatus, v.endTime, v.terminal = "Cancelled", "Cancelled", end, true
	case !now.Before(end):
		v.status, v.extStatus, v.endTime, v.terminal = r.status, r.extStatus, end, true
		v.message = r.message
		if r.status == "Failed" {
			v.exception = r.attempts[len(r.attempts)-1].exception
		}
	case len(v.attempts) == 0:
		v.status, v.extStatus = "Unknown", "NotStarted"
	default:
		v.status, v.extStatus = "Unknown", "InProgress"
	}
	return v
}

// Timestamps: history entries carry Z and 7 fractional digits, as seen on
// the wire and in the spec's examples.
const stamp7 = "2006-01-02T15:04:05.0000000Z"

func fmtTime(t time.Time) string { return t.UTC().Format(stamp7) }

type attemptJSON struct {
	AttemptID            int    `json:"attemptId"`
	StartTime            string `json:"startTime"`
	EndTime              string `json:"endTime,omitempty"`
	Type                 string `json:"type"`
	ServiceExceptionJSON string `json:"serviceExceptionJson,omitempty"`
}

func attemptsJSON(as []attempt, f func(time.Time) string) []attemptJSON {
	out := make([]attemptJSON, 0, len(as))
	for i, a := range as {
		j := attemptJSON{AttemptID: i + 1, StartTime: f(a.start), Type: "Data", ServiceExceptionJSON: a.exception}
		if !a.end.IsZero() {
			j.EndTime = f(a.end)
		}
		out = append(out, j)
	}
	return out
}

// historyEntry is one element of GET .../refreshes (spec: Refresh, plus the
// observed numeric id and extendedStatus).
type historyEntry struct {
	RequestID            string        `json:"requestId"`
	ID                   int64         `json:"id"`
	RefreshType          string        `json:"refreshType"`
	StartTime            string        `json:"startTime"`
	EndTime              string        `json:"endTime,omitempty"`
	Status               string        `json:"status"`
	ExtendedStatus       string        `json:"extendedStatus,omitempty"`
	ServiceExceptionJSON string        `json:"serviceExceptionJson,omitempty"`
	RefreshAttempts      []attemptJSON `json:"refreshAttempts,omitempty"`
}

func (r *refresh) historyEntry(now time.Time) historyEntry {
	v := r.view(now)
	h := historyEntry{
		RequestID: r.requestID, ID: r.id, RefreshType: r.refreshType,
		StartTime: fmtTime(r.posted), Status: v.status, ServiceExceptionJSON: v.exception,
	}
	if r.req.enhanced {
		h.ExtendedStatus = v.extStatus
	}
	if v.terminal {
		h.EndTime = fmtTime(v.endTime)
		h.RefreshAttempts = attemptsJSON(v.attempts, fmtTime)
	}
	return h
}

type objectJSON struct {
	Table     string `json:"table"`
	Partition string `json:"partition,omitempty"`
	Status    string `json:"status"`
}

type messageJSON struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Type    string `json:"type"`
}

// detailJSON is GET .../refreshes/{id} (spec: DatasetRefreshDetail). It has
// no requestId, as on the real service.
type detailJSON struct {
	StartTime          string        `json:"startTime"`
	EndTime            string        `json:"endTime,omitempty"`
	Type               string        `json:"type"`
	CommitMode         string        `json:"commitMode"`
	Status             string        `json:"status"`
	ExtendedStatus     string        `json:"extendedStatus"`
	CurrentRefreshType string        `json:"currentRefreshType"`
	NumberOfAttempts   int           `json:"numberOfAttempts"`
	Objects            []objectJSON  `json:"objects,omitempty"`
	Messages           []messageJSON `json:"messages,omitempty"`
	RefreshAttempts    []attemptJSON `json:"refreshAttempts,omitempty"`
}

func (r *refresh) detail(now time.Time, withoutZone bool) detailJSON {
	f := fmtTime
	if withoutZone {
		f = func(t time.Time) string { return strings.TrimSuffix(fmtTime(t), "Z") }
	}
	v := r.view(now)
	d := detailJSON{
		StartTime: f(r.posted), Type: r.req.typ, CommitMode: r.req.commitMode,
		Status: v.status, ExtendedStatus: v.extStatus, CurrentRefreshType: r.req.typ,
		NumberOfAttempts: len(v.attempts), RefreshAttempts: attemptsJSON(v.attempts, f),
	}
	if v.terminal {
		d.EndTime = f(v.endTime)
	}
	objs := r.req.objects
	if len(objs) == 0 {
		for _, t := range r.ds.behaviour.Tables {
			objs = append(objs, refreshObject{Table: t})
		}
	}
	for _, o := range objs {
		d.Objects = append(d.Objects, objectJSON{Table: o.Table, Partition: o.Partition, Status: v.extStatus})
	}
	if v.message != "" && v.status != "Completed" {
		d.Messages = []messageJSON{{Message: v.message, Type: "Error"}}
	}
	return d
}

// prune enforces the history retention: at most 60 entries; entries older
// than 3 days go once more than 20 exist. Running refreshes stay.
func (e *Emulator) prune(ds *dsState, now time.Time) {
	keep := ds.history[:0]
	n := len(ds.history)
	for i, r := range ds.history {
		total := len(keep) + n - i // entries that would remain if this one stays
		tooMany := total > historyCap
		tooOld := total > historyKeepMin && now.Sub(r.posted) > historyMaxAge
		if (tooMany || tooOld) && !r.running(now) {
			delete(e.refreshes, strings.ToLower(r.requestID))
			continue
		}
		keep = append(keep, r)
	}
	clear(ds.history[len(keep):])
	ds.history = keep
}

func (ds *dsState) runningRefresh(now time.Time) *refresh {
	for i := len(ds.history) - 1; i >= 0; i-- {
		if ds.history[i].running(now) {
			return ds.history[i]
		}
	}
	return nil
}

// quotaUsed counts the refreshes that count against the shared-capacity
// daily limit in the 24 hours up to now: API and scheduled ones, not
// "Refresh now" in the portal. Refreshes started after now (a scheduled
// slot is checked at its own time, later entries may already exist) do not
// count.
func (ds *dsState) quotaUsed(now time.Time) int {
	n := 0
	for _, r := range ds.history {
		if d := now.Sub(r.posted); r.refreshType != typeOnDemand && d >= 0 && d < 24*time.Hour {
			n++
		}
	}
	return n
}

var timeoutRE = regexp.MustCompile(`^([0-1]?[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$`)

// requestError is a 400 (or 415) for a bad POST body.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, a ...any) *requestError {
	return &requestError{400, fmt.Sprintf(format, a...)}
}

var (
	notifyOptions = []string{"NoNotification", "MailOnFailure", "MailOnCompletion"}
	refreshTypes  = []string{"Full", "ClearValues", "Calculate", "DataOnly", "Automatic", "Defragment"}
	commitModes   = []string{"Transactional", "PartialBatch"}
)

// enumValue matches case-insensitively and returns the service's casing.
func enumValue(raw json.RawMessage, field string, allowed []string) (string, *requestError) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", badRequest("%s must be a string, one of %s", field, strings.Join(allowed, ", "))
	}
	for _, a := range allowed {
		if strings.EqualFold(a, s) {
			return a, nil
		}
	}
	return "", badRequest("%q is not a valid value for %s; use one of %s", s, field, strings.Join(allowed, ", "))
}

func intValue(raw json.RawMessage, field string, minimum int) (int, *requestError) {
	var n json.Number
	// json.Number also takes a quoted number; the spec's type is integer.
	if len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		return 0, badRequest("%s must be an integer", field)
	}
	v, err := n.Int64()
	if err != nil || v < int64(minimum) || v > 1<<31-1 {
		return 0, badRequest("%s must be an integer of at least %d", field, minimum)
	}
	return int(v), nil
}

// boolValue accepts true/false and the strings "true"/"false" (the spec's
// own example sends "applyRefreshPolicy": "false").
func boolValue(raw json.RawMessage, field string) (bool, *requestError) {
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return b, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch strings.ToLower(s) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, badRequest("%s must be true or false", field)
}

// parseRefreshRequest validates a POST body against DatasetRefreshRequest
// plus timeout. It is as strict as the spec but for two leniencies the
// spec's own examples need: enum values in any case ("type": "full") and
// the booleans "true"/"false" as strings. Property names must match
// exactly, and unknown properties are refused: whether the service ignores
// them is unconfirmed, and refusing is the safe side for a client under
// test.
func parseRefreshRequest(body []byte) (refreshRequest, *requestError) {
	req := refreshRequest{typ: "Automatic", commitMode: "Transactional", maxParallelism: 10, applyRefreshPolicy: true, timeout: 5 * time.Hour}
	if len(strings.TrimSpace(string(body))) == 0 {
		return req, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return req, badRequest("The request body is not a valid JSON object.")
	}
	var err *requestError
	for k, raw := range fields {
		if string(raw) == "null" {
			return req, badRequest("%s must not be null; leave the property out instead", k)
		}
		if k != "notifyOption" {
			req.enhanced = true
		}
		switch k {
		case "notifyOption":
			req.notifyOption, err = enumValue(raw, "notifyOption", notifyOptions)
		case "type":
			req.typ, err = enumValue(raw, "type", refreshTypes)
		case "commitMode":
			req.commitMode, err = enumValue(raw, "commitMode", commitModes)
		case "maxParallelism":
			req.maxParallelism, err = intValue(raw, "maxParallelism", 1)
		case "retryCount":
			req.retryCount, err = intValue(raw, "retryCount", 0)
		case "applyRefreshPolicy":
			req.applyRefreshPolicy, err = boolValue(raw, "applyRefreshPolicy")
		case "effectiveDate":
			var s string
			if json.Unmarshal(raw, &s) != nil || !validDate(s) {
				err = badRequest("effectiveDate must be a date-time such as 2026-01-01T00:00:00Z")
			}
			req.effectiveDate = s
		case "timeout":
			var s string
			if json.Unmarshal(raw, &s) != nil || !timeoutRE.MatchString(s) {
				err = badRequest("timeout must be a string hh:mm:ss below 24:00:00")
			} else {
				var h, m, sec int
				fmt.Sscanf(s, "%d:%d:%d", &h, &m, &sec)
				req.timeout = time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
			}
		case "objects":
			req.objects, err = parseObjects(raw)
		default:
			err = badRequest("%q is not a property of a refresh request", k)
		}
		if err != nil {
			return req, err
		}
	}
	return req, nil
}

// validDate accepts what the spec's format date-time allows: RFC 3339.
func validDate(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

func parseObjects(raw json.RawMessage) ([]refreshObject, *requestError) {
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, badRequest("objects must be an array of {\"table\": ..., \"partition\": ...}")
	}
	out := make([]refreshObject, 0, len(items))
	for i, it := range items {
		var o refreshObject
		for k, v := range it {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return nil, badRequest("objects[%d].%s must be a string", i, k)
			}
			switch k {
			case "table":
				o.Table = s
			case "partition":
				o.Partition = s
			default:
				return nil, badRequest("objects[%d]: %q is not a property of a refresh object", i, k)
			}
		}
		if o.Table == "" {
			return nil, badRequest("objects[%d] needs a table", i)
		}
		out = append(out, o)
	}
	return out, nil
}
