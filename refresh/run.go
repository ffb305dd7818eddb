package refresh

import (
	"encoding/json"
	"github.com/pbirefresh/pbirefresh"
	"log/slog"

	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Policy is what a job asks of a run.
type Policy struct {
	// Timeout is the client-side deadline, from the start of Run.
	Timeout time.Duration
	// OnTimeout: cancel DELETEs our own enhanced refresh; leave lets it
	// run. Classic refreshes cannot be cancelled and are left.
	OnTimeout pbirefresh.OnTimeout
	// WhenBusy: wait follows the other refresh to its end (never
	// cancelling it) and then starts ours; skip; fail.
	WhenBusy pbirefresh.WhenBusy
	// MinInterval and MaxInterval bound the adaptive polling.
	MinInterval, MaxInterval time.Duration
	// Poller replaces the adaptive poller (benchmarks compare policies).
	Poller Poller
	// Started, if set, is called with the refresh as soon as its id is
	// known, before following it (the daemon persists the id there).
	Started func(Refresh)
	// HistoryGrace overrides the client's (see Client.HistoryGrace).
	HistoryGrace time.Duration
	// Claimed reports whether a refresh id already belongs to another run;
	// settling an unanswered POST never adopts such a refresh.
	Claimed func(refreshID string) bool
	// Gate, if set, is asked right before each POST: an error stops the run
	// without posting (a replica whose lease may have lapsed must not post).
	Gate func() error
	// Logger, if set, receives this run's events (the daemon adds the job
	// and slot); default: the client's.
	Logger *slog.Logger
	// Durations are how long this dataset's recent refreshes ran, from the
	// caller's own records. When there are some, they guide polling and
	// the dataset's history is not read before the POST.
	Durations []time.Duration
	// QuotaHint, if set, says what caused a quota_exceeded answer (the
	// daemon names the job's schedule); it leads the outcome's hint.
	QuotaHint func() string
}

// quota ends a run refused by the shared-capacity quota.
func (r *Result) quota(err error, p Policy) {
	r.fail(pbirefresh.QuotaExceeded, err)
	if p.QuotaHint != nil {
		if h := p.QuotaHint(); h != "" {
			r.Hint = strings.TrimSuffix(h+"; "+r.Hint, "; ")
		}
	}
}

// Result is how a run ended.
type Result struct {
	RefreshID string            `json:"refresh_id,omitempty"`
	Outcome   pbirefresh.Status `json:"status"`
	Start     time.Time         `json:"start"`
	// Posted is when the POST that started the refresh was sent: Start
	// and a wait for another refresh to end (when_busy: wait) come
	// before it. Zero if nothing was started.
	Posted           time.Time `json:"posted,omitzero"`
	End              time.Time `json:"end"`
	ServiceStart     time.Time `json:"service_start,omitzero"`
	ServiceEnd       time.Time `json:"service_end,omitzero"`
	Polls            int       `json:"polls"`
	Attempts         int       `json:"attempts,omitempty"`
	ServiceException string    `json:"service_exception,omitempty"`
	Messages         []string  `json:"messages,omitempty"`
	Note             string    `json:"note,omitempty"`
	Err              error     `json:"-"`
	Error            string    `json:"error,omitempty"`
	// Code is the service's error code: Power BI's error.code, the
	// refresh's serviceExceptionJson errorCode, or AADSTS<n>.
	Code string `json:"code,omitempty"`
	Hint string `json:"hint,omitempty"`
}

// Progress is called after every poll (for a live status line).
type Progress func(rf Refresh, st Status, polls int)

func (p Policy) logger(c *Client) *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return c.log()
}

// Ran is how long the refresh ran: the service's own times when it
// reported them, else from the POST to the end; 0 if nothing started.
func (r *Result) Ran() time.Duration {
	if !r.ServiceStart.IsZero() && r.ServiceEnd.After(r.ServiceStart) {
		return r.ServiceEnd.Sub(r.ServiceStart)
	}
	if !r.Posted.IsZero() && r.End.After(r.Posted) {
		return r.End.Sub(r.Posted)
	}
	return 0
}

func (r *Result) fail(o pbirefresh.Status, err error) {
	r.Outcome, r.Err = o, err
	if err != nil {
		r.Error = err.Error()
		r.Hint = pbirefresh.Hint(err)
		r.Code = codeOf(err)
	}
}

// codeOf finds the service's error code in err.
func codeOf(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	var au *AuthError
	if errors.As(err, &au) && au.Code != 0 {
		return fmt.Sprintf("AADSTS%d", au.Code)
	}
	return ""
}

// exceptionCode reads errorCode from a serviceExceptionJson.
func exceptionCode(j string) string {
	var v struct {
		ErrorCode string `json:"errorCode"`
	}
	if json.Unmarshal([]byte(j), &v) == nil {
		return v.ErrorCode
	}
	return ""
}

// Run starts one refresh of ds and follows it to its true end under the
// policy. It never cancels a refresh it did not start.
func (c *Client) Run(ctx context.Context, ds Dataset, opts Options, p Policy, progress Progress) (res Result) {
	clk := c.clock()
	res.Start = clk.Now()
	deadline := res.Start.Add(p.Timeout)
	log := p.logger(c).With("workspace_id", ds.WorkspaceID, "dataset_id", ds.DatasetID)
	defer func() {
		res.End = clk.Now()
		logEnd(ctx, log, &res)
	}()

	// Recent durations guide the polling: the caller's own records, or,
	// without them, the dataset's history.
	durs := p.Durations
	if len(durs) == 0 {
		hist, err := c.History(ctx, ds, 10, deadline)
		if err != nil {
			res.fail(pbirefresh.Error, err)
			return res
		}
		durs = completedDurations(hist)
	}
	exp := newExpectation(durs)

	var rf Refresh
	var err error
	for {
		rf, err = c.start(ctx, ds, opts, deadline, p)
		if err == nil {
			break
		}
		if errors.Is(err, ErrQuota) {
			res.quota(err, p)
			return res
		}
		if !errors.Is(err, ErrBusy) {
			res.fail(pbirefresh.Error, err)
			return res
		}
		if res.busy(p, err, "dataset") {
			return res
		}
		log.Info("another refresh is running; waiting for it to end")
		if res.waited(c.waitForeign(ctx, ds, p, deadline, &res), "dataset") {
			return res
		}
	}
	res.RefreshID, res.Posted = rf.ID, rf.Posted
	log.Info("refresh started", "refresh_id", rf.ID, "enhanced", rf.Enhanced, "expected", exp.Expected)
	if p.Started != nil {
		p.Started(rf)
	}

	poller := p.Poller
	if poller == nil {
		poller = exp.poller(p)
	}
	c.follow(ctx, rf, poller, p, deadline, &res, progress)
	return res
}

// busy applies the when_busy rule to a refresh refused because another
// refresh of the item (a dataset, a dataflow) is running; true: the run
// ends here (skip, fail), false: it waits for the other one.
func (res *Result) busy(p Policy, err error, item string) bool {
	switch p.WhenBusy {
	case pbirefresh.BusySkip:
		res.Outcome, res.Note = pbirefresh.Skipped, "another refresh of the "+item+" was running"
		return true
	case pbirefresh.BusyFail:
		res.fail(pbirefresh.Error, err)
		return true
	}
	return false
}

// waited records how the wait for another refresh of the item ended;
// true: the run ends here (the deadline passed, or the wait failed).
func (res *Result) waited(werr error, item string) bool {
	switch {
	case werr == nil:
		return false
	case errors.Is(werr, errDeadline):
		res.Outcome, res.Note = pbirefresh.TimedOut, "the deadline passed while another refresh of the "+item+" was running; nothing was started"
	default:
		res.fail(pbirefresh.Error, werr)
	}
	return true
}

// logEnd writes the one event that ends every run, with what an operator
// needs to act on it: the outcome, the service's code and message, and
// the hint.
func logEnd(ctx context.Context, log *slog.Logger, res *Result) {
	attrs := []any{"status", res.Outcome, "polls", res.Polls, "elapsed", res.End.Sub(res.Start).Round(time.Millisecond)}
	if res.RefreshID != "" {
		attrs = append(attrs, "refresh_id", res.RefreshID)
	}
	for _, kv := range [][2]string{{"note", res.Note}, {"code", res.Code}, {"error", res.Error}, {"hint", res.Hint}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	switch {
	case res.Outcome == pbirefresh.Completed:
		log.Info("refresh completed", attrs...)
	case res.Outcome == pbirefresh.Skipped:
		log.Info("refresh skipped", attrs...)
	case ctx.Err() != nil && res.Outcome == pbirefresh.Error:
		log.Info("stopped following; the refresh keeps running in Power BI", attrs...)
	case res.RefreshID == "":
		log.Warn("refresh not started", attrs...)
	default:
		log.Warn("refresh ended unsuccessfully", attrs...)
	}
}

var errDeadline = errors.New("deadline passed")

// Follow reattaches to a refresh started earlier (by this process before a
// restart) and follows it to its end; the deadline counts from rf.Posted.
func (c *Client) Follow(ctx context.Context, rf Refresh, p Policy) (res Result) {
	clk := c.clock()
	res.Start, res.Posted, res.RefreshID = rf.Posted, rf.Posted, rf.ID
	log := p.logger(c).With("workspace_id", rf.Dataset.WorkspaceID, "dataset_id", rf.Dataset.DatasetID)
	defer func() {
		res.End = clk.Now()
		logEnd(ctx, log, &res)
	}()
	deadline := rf.Posted.Add(p.Timeout)
	histDeadline := deadline
	if soon := clk.Now().Add(time.Minute); histDeadline.Before(soon) {
		histDeadline = soon
	}
	durs := p.Durations
	if len(durs) == 0 {
		hist, err := c.History(ctx, rf.Dataset, 10, histDeadline)
		if err != nil {
			res.fail(pbirefresh.Error, err)
			return res
		}
		durs = completedDurations(hist)
	}
	poller := p.Poller
	if poller == nil {
		poller = newExpectation(durs).poller(p)
	}
	log.Info("reattached to refresh", "refresh_id", rf.ID, "posted", rf.Posted)
	c.follow(ctx, rf, poller, p, deadline, &res, nil)
	return res
}

// FindStarted looks, for up to the history grace, for an API refresh of ds
// of the type opts asks for, started since posted on the service's clock:
// the way to settle a POST whose answer was lost, never by posting again.
// It returns "" if there is none.
func (c *Client) FindStarted(ctx context.Context, ds Dataset, opts Options, posted time.Time, p Policy) (string, error) {
	return c.findStarted(ctx, ds, posted, c.clock().Now().Add(c.graceFor(p)+time.Minute), opts, p)
}

// follow polls rf until it ends, the deadline passes, or it is lost.
func (c *Client) follow(ctx context.Context, rf Refresh, poller Poller, p Policy, deadline time.Time, res *Result, progress Progress) {
	clk := c.clock()
	var seen bool
	for {
		now := clk.Now()
		// Jitter only lengthens a wait (by up to 10%): the poller's bounds
		// (the lag within 2%, never denser than 5 s without history) hold.
		wait := c.stretch(poller.Next(now.Sub(rf.Posted), res.Polls), 0.1)
		if p.Poller != nil {
			wait = poller.Next(now.Sub(rf.Posted), res.Polls) // comparisons run without jitter
		}
		if now.Add(wait).After(deadline) {
			wait = deadline.Sub(now) // one last look at the deadline
		}
		if err := clk.Sleep(ctx, wait); err != nil {
			res.fail(pbirefresh.Error, fmt.Errorf("stopped following refresh %s: %w", rf.ID, err))
			res.Note = "the refresh keeps running in Power BI"
			return
		}
		st, err := c.Status(ctx, rf, deadline)
		res.Polls++
		if err != nil {
			if errors.Is(err, ErrThrottled) {
				// do gives up on a 429 only when its Retry-After reaches the
				// deadline: the run cannot look again before it.
				if err := c.throttledToDeadline(ctx, deadline); err != nil {
					res.fail(pbirefresh.Error, fmt.Errorf("stopped following refresh %s: %w", rf.ID, err))
					res.Note = "the refresh keeps running in Power BI"
					return
				}
				c.timeout(ctx, rf, p, res)
				res.Note += "; throttled until the deadline"
				return
			}
			res.fail(pbirefresh.Error, err)
			return
		}
		if progress != nil {
			progress(rf, st, res.Polls)
		}
		if !st.Found {
			// Not visible yet (history lag), or never started (dropped).
			if !seen && clk.Now().Sub(rf.Posted) >= c.graceFor(p) {
				res.fail(pbirefresh.Lost, fmt.Errorf("refresh %s never appeared in the dataset's history or details within %s", rf.ID, c.graceFor(p)))
				res.Hint = "Power BI accepted the request but did not run it (it drops requests that arrive in bursts); the next run will try again"
				return
			}
			if seen {
				res.fail(pbirefresh.Lost, fmt.Errorf("refresh %s disappeared from the dataset's history", rf.ID))
				return
			}
		} else {
			seen = true
			res.ServiceStart, res.ServiceEnd = st.Start, st.End
			res.Attempts, res.ServiceException, res.Messages = st.Attempts, st.ServiceException, st.Messages
			res.Code = exceptionCode(st.ServiceException)
		}
		if st.Terminal() {
			res.Outcome = st.Outcome
			if st.Outcome != pbirefresh.Completed {
				res.Err = fmt.Errorf("refresh %s ended %s", rf.ID, st.State)
				res.Error = res.Err.Error()
				if st.Extended != "" && !strings.EqualFold(st.Extended, st.State) {
					res.Error += " (" + st.Extended + ")"
				}
				res.Hint = outcomeHint(st)
			}
			return
		}
		if !clk.Now().Before(deadline) {
			c.timeout(ctx, rf, p, res)
			return
		}
	}
}

// throttledToDeadline waits until deadline, for a follow whose polls are
// throttled past it; the run then times out as if its last poll had been
// answered "still running".
func (c *Client) throttledToDeadline(ctx context.Context, deadline time.Time) error {
	return c.clock().Sleep(ctx, deadline.Sub(c.clock().Now()))
}

// timeout ends a run at its deadline: cancel our own enhanced refresh, or
// leave it.
func (c *Client) timeout(ctx context.Context, rf Refresh, p Policy, res *Result) {
	res.Outcome = pbirefresh.TimedOut
	res.Err = fmt.Errorf("refresh %s did not end within %s", rf.ID, p.Timeout)
	res.Error = res.Err.Error()
	res.Hint = "raise the job's timeout, or look at why the refresh takes longer than usual"
	switch {
	case p.OnTimeout == pbirefresh.TimeoutCancel && rf.Enhanced:
		// A short grace for the DELETE itself, past the run's deadline.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		err := c.Cancel(cctx, rf, c.clock().Now().Add(time.Minute))
		switch {
		case err == nil:
			res.Note = "cancelled at the deadline"
		case errors.Is(err, ErrFinished):
			res.Note = "it finished just as the deadline passed"
		default:
			res.Note = "cancel at the deadline failed: " + err.Error()
		}
		c.log().Info("refresh cancelled at the deadline", "refresh_id", rf.ID, "note", res.Note)
	case p.OnTimeout == pbirefresh.TimeoutCancel:
		res.Note = "classic refreshes cannot be cancelled; it keeps running in Power BI"
	default:
		res.Note = "left running in Power BI (on_timeout: leave)"
	}
}

func outcomeHint(st Status) string {
	switch st.Outcome {
	case pbirefresh.Failed:
		if strings.Contains(st.ServiceException, "Credentials") {
			return "a data source's credentials are missing or invalid: update them in the dataset's settings (Data source credentials)"
		}
		return "see the service's error above and the dataset's refresh history in the Power BI portal"
	case pbirefresh.TimedOut:
		return "the service's per-attempt timeout passed: raise refresh.timeout or refresh fewer objects"
	case pbirefresh.Cancelled:
		return "someone or something cancelled the refresh in Power BI"
	case pbirefresh.Disabled:
		return "the refresh was disabled (selective refresh); check the dataset's settings"
	}
	return ""
}

// waitForeign follows someone else's running refresh, by its requestId in
// the history, until it ends; it never cancels it.
func (c *Client) waitForeign(ctx context.Context, ds Dataset, p Policy, deadline time.Time, res *Result) error {
	clk := c.clock()
	var foreign string
	for polls := 0; ; polls++ {
		if !clk.Now().Before(deadline) {
			return errDeadline
		}
		entries, err := c.History(ctx, ds, 5, deadline)
		if err != nil {
			return err
		}
		running := ""
		for _, e := range entries {
			if o, _ := outcomeOf(e.Status, e.ExtendedStatus); o == pbirefresh.Running && e.Start.Before(clk.Now()) {
				running = e.RequestID
				break
			}
		}
		if running == "" && polls > 0 {
			c.log().Info("the other refresh has ended", "dataset_id", ds.DatasetID, "other_refresh_id", foreign)
			return nil
		}
		if running != "" && running != foreign {
			foreign = running
			res.Note = "waited for refresh " + foreign + " started by someone else"
		}
		wait := min(max(p.MinInterval, 5*time.Second), max(p.MaxInterval, p.MinInterval))
		if clk.Now().Add(wait).After(deadline) {
			wait = deadline.Sub(clk.Now())
		}
		if err := clk.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}
