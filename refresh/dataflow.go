package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pbirefresh/pbirefresh"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Dataflow names a Power BI dataflow. Dataflows always live in a
// workspace: the API has no "My workspace" path for them.
type Dataflow struct {
	WorkspaceID string
	DataflowID  string
}

func (d Dataflow) path() string {
	return "/v1.0/myorg/groups/" + d.WorkspaceID + "/dataflows/" + d.DataflowID
}

// DataflowOptions is the dataflow refresh request
// (https://learn.microsoft.com/rest/api/power-bi/dataflows/refresh-dataflow).
type DataflowOptions struct {
	// NotifyOption is NoNotification (the default) or MailOnFailure. The
	// service requires one and does not support MailOnCompletion.
	NotifyOption string
	// ProcessType is default or processFull; empty sends none.
	ProcessType string
}

// Transaction is one refresh of a dataflow, as GET .../transactions lists
// it (https://learn.microsoft.com/rest/api/power-bi/dataflows/get-dataflow-transactions).
type Transaction struct {
	ID          string
	RefreshType string // OnDemand or Scheduled
	Status      string // as the service wrote it
	Start, End  time.Time
}

// txnSkew is the clock skew allowed between this host and the service when
// placing a transaction's start next to our request.
const txnSkew = time.Minute

// errNoTransaction: an accepted refresh request left no transaction that
// could be ours.
var errNoTransaction = errors.New("no new transaction appeared in the dataflow's transactions")

// Transactions lists a dataflow's transactions, newest first.
func (c *Client) Transactions(ctx context.Context, df Dataflow, deadline time.Time) ([]Transaction, error) {
	path := df.path() + "/transactions"
	r, err := c.do(ctx, http.MethodGet, path, nil, deadline)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		return nil, dataflowError(apiError(http.MethodGet, path, r))
	}
	var out struct {
		Value []struct {
			ID          string `json:"id"`
			RefreshType string `json:"refreshType"`
			StartTime   string `json:"startTime"`
			EndTime     string `json:"endTime"`
			Status      string `json:"status"`
		} `json:"value"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		return nil, fmt.Errorf("GET %s: unreadable body: %w", path, err)
	}
	list := make([]Transaction, 0, len(out.Value))
	for _, v := range out.Value {
		t := Transaction{ID: v.ID, RefreshType: v.RefreshType, Status: v.Status, Start: parseTime(v.StartTime), End: parseTime(v.EndTime)}
		if t.Start.IsZero() {
			// Only id is required; it begins with the start time, as in
			// "2020-08-27T16:07:47.2487692Z@<guid>$2" (docs/powerbi.md,
			// "Dataflows").
			at, _, _ := strings.Cut(v.ID, "@")
			t.Start = parseTime(at)
		}
		list = append(list, t)
	}
	return list, nil
}

// dataflowOutcome maps a transaction's status. Microsoft lists no values
// (docs/powerbi.md, "Dataflows"); InProgress, Success, Failed and Cancelled
// are what clients see. Any other word keeps the run going until its
// deadline rather than ending it on a word we do not know.
func dataflowOutcome(status string) (pbirefresh.Status, bool) {
	switch strings.ToLower(status) {
	case "success":
		return pbirefresh.Completed, true
	case "failed":
		return pbirefresh.Failed, true
	case "cancelled", "canceled":
		return pbirefresh.Cancelled, true
	case "inprogress", "notstarted", "":
		return pbirefresh.Running, true
	}
	return pbirefresh.Running, false
}

// dataflowError words the hint of a refused dataflow request: classify
// writes its hints for datasets and does not know the dataflow limit of
// shared capacity, DailyDataflowRefreshLimitExceeded (docs/powerbi.md,
// "Dataflows"), whose message does not say "exceeded limit".
func dataflowError(e *APIError) error {
	switch {
	case strings.EqualFold(e.Code, "DailyDataflowRefreshLimitExceeded"):
		e.sentinel = ErrQuota
		e.hint = "shared (Pro) capacity allows 8 dataflow refreshes a day counting scheduled ones: refresh less often, turn off the dataflow's scheduled refresh, or move the workspace to Premium/PPU/Fabric capacity"
	case errors.Is(e, ErrBusy):
		e.hint = "another refresh of this dataflow is running (scheduled, portal or another tool); when_busy decides whether to wait, skip or fail"
	case e.Status == http.StatusNotFound:
		e.hint = "the workspace or dataflow was not found for this app: add the service principal to the workspace (Member or Admin) and check the workspace and dataflow ids"
	}
	return e
}

// RunDataflow starts one refresh of df and follows it to its true end
// under the policy, as Run does for datasets. It never cancels, and never
// follows, a transaction it did not start.
//
// The POST answers without an id, so the transaction is identified by
// what the list shows (see txnWindow): it reads the transactions before
// posting, and, for the history grace after the POST, which new ones
// appear. Telling ours apart takes the whole grace, since the list may
// lag; Started is called once it is done.
func (c *Client) RunDataflow(ctx context.Context, df Dataflow, opts DataflowOptions, p Policy, progress Progress) (res Result) {
	clk := c.clock()
	res.Start = clk.Now()
	deadline := res.Start.Add(p.Timeout)
	log := p.logger(c).With("workspace_id", df.WorkspaceID, "dataflow_id", df.DataflowID)
	defer func() {
		res.End = clk.Now()
		logEnd(ctx, log, &res)
	}()

	var (
		rf   Refresh
		list []Transaction
		durs = p.Durations
	)
	for {
		before, err := c.Transactions(ctx, df, deadline)
		if err != nil {
			res.fail(pbirefresh.Error, err)
			return res
		}
		if len(durs) == 0 {
			durs = txnDurations(before)
		}
		rf, list, err = c.startDataflow(ctx, df, opts, before, deadline, p, &res, log)
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, errNoTransaction):
			res.fail(pbirefresh.Lost, err)
			return res
		case errors.Is(err, ErrQuota):
			res.quota(err, p)
			return res
		case !errors.Is(err, ErrBusy):
			res.fail(pbirefresh.Error, err)
			return res
		}
		if res.busy(p, err, "dataflow") {
			return res
		}
		log.Info("another refresh is running; waiting for it to end")
		if res.waited(c.waitForeignTxn(ctx, df, p, deadline, &res, log), "dataflow") {
			return res
		}
	}
	exp := newExpectation(durs)
	res.RefreshID, res.Posted = rf.ID, rf.Posted
	log.Info("refresh started", "refresh_id", rf.ID, "expected", exp.Expected)
	if p.Started != nil {
		p.Started(rf)
	}
	poller := p.Poller
	if poller == nil {
		poller = exp.poller(p)
	}
	c.followTxn(ctx, df, rf, poller, p, deadline, &res, progress, list, log)
	return res
}

// startDataflow posts the refresh request and identifies the transaction
// it started among those not in before; it returns the transaction and the
// last list read. An accepted POST that left no transaction gives
// errNoTransaction. After an unclear answer (5xx, reset) it looks for the
// transaction the same way, and posts again only when none appeared, as
// Start does for datasets.
func (c *Client) startDataflow(ctx context.Context, df Dataflow, opts DataflowOptions, before []Transaction, deadline time.Time, p Policy, res *Result, log *slog.Logger) (Refresh, []Transaction, error) {
	clk := c.clock()
	path := df.path() + "/refreshes"
	if opts.ProcessType != "" {
		path += "?processType=" + url.QueryEscape(opts.ProcessType)
	}
	notify := opts.NotifyOption
	if notify == "" {
		notify = "NoNotification" // required by the service
	}
	body, _ := json.Marshal(map[string]string{"notifyOption": notify})
	for attempt := 1; ; attempt++ {
		posted := clk.Now()
		r, err := c.doGated(ctx, http.MethodPost, path, body, deadline, p.Gate)
		ambiguous := errors.Is(err, errAmbiguous)
		switch {
		case ambiguous:
			log.Warn("refresh request had no clear answer; looking for it in the transactions", "error", err, "attempt", attempt)
		case err != nil:
			return Refresh{}, nil, err
		case r.status != http.StatusOK && r.status != http.StatusAccepted:
			return Refresh{}, nil, dataflowError(apiError(http.MethodPost, path, r))
		}
		answered := clk.Now()
		w := txnWindow{known: map[string]bool{}, from: posted.Add(-txnSkew), to: answered.Add(txnSkew), at: answered}
		for _, t := range before {
			w.known[t.ID] = true
		}
		id, list, ierr := c.identifyTxn(ctx, df, w, posted.Add(c.graceFor(p)), p, deadline, &res.Polls, log)
		if ierr != nil {
			return Refresh{}, nil, ierr
		}
		if id != "" {
			return Refresh{ID: id, Posted: posted}, list, nil
		}
		if !ambiguous {
			return Refresh{}, nil, pbirefresh.WithHint(fmt.Errorf("%w within %s of the refresh request", errNoTransaction, c.graceFor(p)),
				"Power BI accepted the request but no new transaction of the dataflow appeared: look at the dataflow's refresh history in the portal, and raise history_grace if the list lags longer")
		}
		if attempt >= 5 || !clk.Now().Before(deadline) {
			return Refresh{}, nil, pbirefresh.WithHint(err, "Power BI did not accept the refresh request; it is usually a passing fault: try again later")
		}
		before = list // all of it predates the next POST
	}
}

// txnWindow says which transaction a POST started. The POST answers
// without an id (docs/powerbi.md, "Dataflows"), so ours is told apart by
// the list. A candidate
//   - was not listed before the POST,
//   - is not refreshType Scheduled (the service's scheduler starts those),
//   - is not claimed by another run (Policy.Claimed),
//   - started between the POST less the clock skew and its answer plus
//     the skew.
//
// The service refuses a refresh while another is in progress, so at most
// one candidate is ours, and any other either ended before ours started or
// started after ours. Of several, ours is the one that started nearest
// the answer (at): the newest could be one started just after ours
// (someone else's once a short refresh of ours had ended, or a scheduled
// one), the earliest one that ended just before our POST and was not
// listed yet. The nearest is right while the clocks agree more closely
// than such a neighbour started, and a neighbour can only be that close
// when a refresh lasts less than the skew. As the list may lag, a
// neighbour can be listed before ours: the choice waits until the history
// grace after the POST has passed.
type txnWindow struct {
	known    map[string]bool
	from, to time.Time
	at       time.Time
}

// pick returns the id of our transaction in list, or "", and the other
// candidates.
func (w txnWindow) pick(list []Transaction, claimed func(string) bool) (string, []string) {
	var (
		ids  []string
		best = -1
		gap  time.Duration
	)
	for i, t := range list {
		if w.known[t.ID] || t.Start.IsZero() || t.Start.Before(w.from) || t.Start.After(w.to) ||
			strings.EqualFold(t.RefreshType, "Scheduled") || (claimed != nil && claimed(t.ID)) {
			continue
		}
		ids = append(ids, t.ID)
		if d := t.Start.Sub(w.at).Abs(); best < 0 || d < gap || d == gap && t.Start.After(list[best].Start) {
			best, gap = i, d
		}
	}
	if best < 0 {
		return "", nil
	}
	others := ids[:0:0]
	for _, id := range ids {
		if id != list[best].ID {
			others = append(others, id)
		}
	}
	return list[best].ID, others
}

// identifyTxn reads the transactions until the list can no longer lag
// behind the POST (until), at least once, and picks ours. It counts its
// reads in polls, if set.
func (c *Client) identifyTxn(ctx context.Context, df Dataflow, w txnWindow, until time.Time, p Policy, deadline time.Time, polls *int, log *slog.Logger) (string, []Transaction, error) {
	clk := c.clock()
	grace := c.graceFor(p)
	// Identifying runs to its end even past the run's deadline: a
	// transaction we cannot name could be neither followed nor cancelled.
	if d := until.Add(time.Minute); deadline.Before(d) {
		deadline = d
	}
	for {
		list, err := c.Transactions(ctx, df, deadline)
		if err != nil {
			return "", nil, err
		}
		if polls != nil {
			*polls++
		}
		now := clk.Now()
		if !now.Before(until) {
			id, others := w.pick(list, p.Claimed)
			if len(others) > 0 {
				log.Warn("several new transactions could be ours; took the one that started nearest the request", "refresh_id", id, "others", strings.Join(others, " "))
			}
			return id, list, nil
		}
		if err := clk.Sleep(ctx, min(max(grace/8, time.Second), until.Sub(now))); err != nil {
			return "", nil, err
		}
	}
}

// txnDurations lists how long the successful transactions ran.
func txnDurations(list []Transaction) []time.Duration {
	var ds []time.Duration
	for _, t := range list {
		if o, _ := dataflowOutcome(t.Status); o == pbirefresh.Completed && t.End.After(t.Start) {
			ds = append(ds, t.End.Sub(t.Start))
		}
	}
	return ds
}

// FollowDataflow reattaches to a transaction started earlier (by this
// process before a restart; rf.ID is the transaction id) and follows it
// to its end; the deadline counts from rf.Posted.
func (c *Client) FollowDataflow(ctx context.Context, df Dataflow, rf Refresh, p Policy) (res Result) {
	clk := c.clock()
	res.Start, res.Posted, res.RefreshID = rf.Posted, rf.Posted, rf.ID
	log := p.logger(c).With("workspace_id", df.WorkspaceID, "dataflow_id", df.DataflowID)
	defer func() {
		res.End = clk.Now()
		logEnd(ctx, log, &res)
	}()
	deadline := rf.Posted.Add(p.Timeout)
	first := deadline
	if soon := clk.Now().Add(time.Minute); first.Before(soon) {
		first = soon
	}
	// One read gives the durations and the transaction's state now: it may
	// have ended while the process was down.
	list, err := c.Transactions(ctx, df, first)
	if err != nil {
		res.fail(pbirefresh.Error, err)
		return res
	}
	res.Polls++
	durs := p.Durations
	if len(durs) == 0 {
		durs = txnDurations(list)
	}
	poller := p.Poller
	if poller == nil {
		poller = newExpectation(durs).poller(p)
	}
	log.Info("reattached to refresh", "refresh_id", rf.ID, "posted", rf.Posted)
	c.followTxn(ctx, df, rf, poller, p, deadline, &res, nil, list, log)
	return res
}

// FindStartedDataflow settles a refresh request whose answer was lost: it
// looks, until the history grace after posted has passed, for the
// transaction that request started, chosen as RunDataflow chooses (see
// txnWindow) among those unclaimed that started from posted less the clock
// skew to the grace plus the skew after it, nearest posted. It never posts
// again, and returns "" if there is none.
func (c *Client) FindStartedDataflow(ctx context.Context, df Dataflow, posted time.Time, p Policy) (string, error) {
	grace := c.graceFor(p)
	w := txnWindow{from: posted.Add(-txnSkew), to: posted.Add(grace + txnSkew), at: posted}
	log := p.logger(c).With("workspace_id", df.WorkspaceID, "dataflow_id", df.DataflowID)
	id, _, err := c.identifyTxn(ctx, df, w, posted.Add(grace), p, c.clock().Now().Add(grace+time.Minute), nil, log)
	return id, err
}

// followTxn polls the transactions until ours ends, the deadline passes,
// or it is lost. A non-nil list is looked at before the first wait.
func (c *Client) followTxn(ctx context.Context, df Dataflow, rf Refresh, poller Poller, p Policy, deadline time.Time, res *Result, progress Progress, list []Transaction, log *slog.Logger) {
	clk := c.clock()
	var seen, warned bool
	for {
		if list == nil {
			now := clk.Now()
			wait := c.stretch(poller.Next(now.Sub(rf.Posted), res.Polls), 0.1)
			if p.Poller != nil {
				wait = poller.Next(now.Sub(rf.Posted), res.Polls) // comparisons run without jitter
			}
			if wait <= 0 {
				wait = noHistoryFloor // a policy without intervals must not spin
			}
			if now.Add(wait).After(deadline) {
				wait = deadline.Sub(now) // one last look at the deadline
			}
			if err := clk.Sleep(ctx, wait); err != nil {
				res.fail(pbirefresh.Error, fmt.Errorf("stopped following dataflow transaction %s: %w", rf.ID, err))
				res.Note = "the refresh keeps running in Power BI"
				return
			}
			var err error
			list, err = c.Transactions(ctx, df, deadline)
			res.Polls++
			if err != nil {
				if errors.Is(err, ErrThrottled) {
					if err := c.throttledToDeadline(ctx, deadline); err != nil {
						res.fail(pbirefresh.Error, fmt.Errorf("stopped following dataflow transaction %s: %w", rf.ID, err))
						res.Note = "the refresh keeps running in Power BI"
						return
					}
					c.txnTimeout(ctx, df, rf, p, res, log)
					res.Note += "; throttled until the deadline"
					return
				}
				res.fail(pbirefresh.Error, err)
				return
			}
		}
		var st Status
		for _, t := range list {
			if strings.EqualFold(t.ID, rf.ID) {
				st = Status{Found: true, State: t.Status, Start: t.Start, End: t.End}
				var known bool
				if st.Outcome, known = dataflowOutcome(t.Status); !known && !warned {
					warned = true
					log.Warn("unknown transaction status; following until the deadline", "refresh_id", rf.ID, "status", t.Status)
				}
				break
			}
		}
		list = nil
		if progress != nil {
			progress(rf, st, res.Polls)
		}
		switch {
		case st.Found:
			seen = true
			res.ServiceStart, res.ServiceEnd = st.Start, st.End
		case seen || clk.Now().Sub(rf.Posted) >= c.graceFor(p):
			res.fail(pbirefresh.Lost, fmt.Errorf("dataflow transaction %s is no longer in the dataflow's transactions", rf.ID))
			res.Hint = "look for the refresh in the dataflow's refresh history in the Power BI portal"
			return
		}
		if st.Terminal() {
			res.Outcome = st.Outcome
			if st.Outcome != pbirefresh.Completed {
				res.Err = fmt.Errorf("dataflow transaction %s ended %s", rf.ID, st.State)
				res.Error = res.Err.Error()
				res.Hint = "see the dataflow's refresh history in the Power BI portal for the table and error"
				if st.Outcome == pbirefresh.Cancelled {
					res.Hint = "someone or something cancelled the dataflow refresh in Power BI"
				}
			}
			return
		}
		if !clk.Now().Before(deadline) {
			c.txnTimeout(ctx, df, rf, p, res, log)
			return
		}
	}
}

// txnTimeout ends a run at its deadline: cancel our own transaction, or
// leave it.
func (c *Client) txnTimeout(ctx context.Context, df Dataflow, rf Refresh, p Policy, res *Result, log *slog.Logger) {
	res.Outcome = pbirefresh.TimedOut
	res.Err = fmt.Errorf("dataflow transaction %s did not end within %s", rf.ID, p.Timeout)
	res.Error = res.Err.Error()
	res.Hint = "raise the job's timeout, or look at why the dataflow refresh takes longer than usual"
	if p.OnTimeout != pbirefresh.TimeoutCancel {
		res.Note = "left running in Power BI (on_timeout: leave)"
		return
	}
	// A short grace for the cancel itself, past the run's deadline.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	switch err := c.CancelDataflow(cctx, df, rf.ID, c.clock().Now().Add(time.Minute)); {
	case err == nil:
		res.Note = "cancelled at the deadline"
	case errors.Is(err, ErrFinished):
		res.Note = "it finished just as the deadline passed"
	default:
		res.Note = "cancel at the deadline failed: " + err.Error()
	}
	log.Info("refresh cancelled at the deadline", "refresh_id", rf.ID, "note", res.Note)
}

// CancelDataflow asks the service to cancel a dataflow transaction
// (https://learn.microsoft.com/rest/api/power-bi/dataflows/cancel-dataflow-transaction).
// Only call it for a transaction this process started (RunDataflow does
// so only on its own timeout). It returns ErrFinished if the transaction
// had already ended.
func (c *Client) CancelDataflow(ctx context.Context, df Dataflow, transactionID string, deadline time.Time) error {
	path := "/v1.0/myorg/groups/" + df.WorkspaceID + "/dataflows/transactions/" + escapeTxnID(transactionID) + "/cancel"
	for attempt := 1; ; attempt++ {
		r, err := c.do(ctx, http.MethodPost, path, nil, deadline)
		if errors.Is(err, errAmbiguous) && attempt < 3 && c.clock().Now().Add(time.Duration(attempt)*time.Second).Before(deadline) {
			// Marking a transaction twice is harmless: the second answer
			// is alreadyConcluded or successfullyMarked again.
			if err := c.clock().Sleep(ctx, time.Duration(attempt)*time.Second); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if r.status != http.StatusOK {
			return dataflowError(apiError(http.MethodPost, path, r))
		}
		var body struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			return fmt.Errorf("POST %s: unreadable body: %w", path, err)
		}
		// The spec's enum: invalid, successfullyMarked, alreadyConcluded,
		// notFound; its example writes SuccessfullyMarked.
		switch strings.ToLower(body.Status) {
		case "successfullymarked":
			return nil
		case "alreadyconcluded":
			return ErrFinished
		}
		return fmt.Errorf("cancel dataflow transaction %s: the service answered %q", transactionID, body.Status)
	}
}

// escapeTxnID percent-encodes a transaction id for the path: everything
// but RFC 3986's unreserved characters. Microsoft documents the id as
// URL-encoded, and url.PathEscape would leave its ':', '@' and '$' as they
// are (legal in a path segment, but not what the documentation shows).
func escapeTxnID(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		switch ch := id[i]; {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9', ch == '-', ch == '.', ch == '_', ch == '~':
			b.WriteByte(ch)
		default:
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}

// waitForeignTxn follows someone else's running transaction until none
// runs; it never cancels it.
func (c *Client) waitForeignTxn(ctx context.Context, df Dataflow, p Policy, deadline time.Time, res *Result, log *slog.Logger) error {
	clk := c.clock()
	var foreign string
	for polls := 0; ; polls++ {
		if !clk.Now().Before(deadline) {
			return errDeadline
		}
		list, err := c.Transactions(ctx, df, deadline)
		if err != nil {
			return err
		}
		running := ""
		for _, t := range list {
			if o, _ := dataflowOutcome(t.Status); o == pbirefresh.Running && t.Start.Before(clk.Now()) {
				running = t.ID
				break
			}
		}
		if running == "" && polls > 0 {
			log.Info("the other refresh has ended", "other_refresh_id", foreign)
			return nil
		}
		if running != "" && running != foreign {
			foreign = running
			res.Note = "waited for transaction " + foreign + " started by someone else"
		}
		wait := max(p.MinInterval, noHistoryFloor)
		if p.MaxInterval > 0 {
			wait = min(wait, max(p.MaxInterval, p.MinInterval))
		}
		if clk.Now().Add(wait).After(deadline) {
			wait = deadline.Sub(clk.Now())
		}
		if err := clk.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}
