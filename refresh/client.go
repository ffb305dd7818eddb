package refresh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/internal/retryafter"
)

// Dataset names a semantic model. An empty WorkspaceID means "My
// workspace" (not available to service principals).
type Dataset struct {
	WorkspaceID string
	DatasetID   string
}

func (d Dataset) path() string {
	if d.WorkspaceID == "" {
		return "/v1.0/myorg/datasets/" + d.DatasetID
	}
	return "/v1.0/myorg/groups/" + d.WorkspaceID + "/datasets/" + d.DatasetID
}

// Options is the refresh request. Enhanced selects the enhanced API; the
// other fields are sent only when set, in the service's spelling.
type Options struct {
	Enhanced     bool
	NotifyOption string // classic only

	Type               string // Full, ClearValues, Calculate, DataOnly, Automatic, Defragment
	CommitMode         string // Transactional, PartialBatch
	MaxParallelism     *int
	RetryCount         *int
	ApplyRefreshPolicy *bool
	EffectiveDate      string // RFC 3339
	Timeout            string // hh:mm:ss
	Objects            []Object
}

// Object is a table, or one of its partitions.
type Object struct {
	Table     string `json:"table"`
	Partition string `json:"partition,omitempty"`
}

// body builds the POST body: notifyOption only for classic refreshes, and
// only enhanced fields otherwise (the service refuses the mix).
func (o Options) body() []byte {
	if !o.Enhanced {
		if o.NotifyOption == "" {
			return nil
		}
		b, _ := json.Marshal(map[string]string{"notifyOption": o.NotifyOption})
		return b
	}
	m := map[string]any{}
	if o.Type != "" {
		m["type"] = o.Type
	}
	if o.CommitMode != "" {
		m["commitMode"] = o.CommitMode
	}
	if o.MaxParallelism != nil {
		m["maxParallelism"] = *o.MaxParallelism
	}
	if o.RetryCount != nil {
		m["retryCount"] = *o.RetryCount
	}
	if o.ApplyRefreshPolicy != nil {
		m["applyRefreshPolicy"] = *o.ApplyRefreshPolicy
	}
	if o.EffectiveDate != "" {
		m["effectiveDate"] = o.EffectiveDate
	}
	if o.Timeout != "" {
		m["timeout"] = o.Timeout
	}
	if len(o.Objects) > 0 {
		m["objects"] = o.Objects
	}
	if len(m) == 0 {
		// Enhanced with every option at its default: name one so the
		// service takes the enhanced path (any field but notifyOption).
		m["type"] = "Automatic"
	}
	b, _ := json.Marshal(m)
	return b
}

// Refresh identifies one refresh by the id its POST returned.
type Refresh struct {
	Dataset  Dataset
	ID       string
	Enhanced bool
	Posted   time.Time // on the client's clock
}

// Client talks to the Power BI REST API. Create it with NewClient.
type Client struct {
	// Clock times every wait (default SystemClock).
	Clock Clock
	// Logger receives one event per decision (default: discarded).
	Logger *slog.Logger
	// HistoryGrace is how long a new refresh may stay out of the history
	// and details before it counts as lost (default 2m; the service's lag
	// is a few seconds, apache/airflow#44618).
	HistoryGrace time.Duration
	// MaxBackoff caps the wait between retries of 5xx and network errors
	// (default 1m).
	MaxBackoff time.Duration
	// Observe, if set, sees every response: the endpoint (refresh.post,
	// refresh.history, refresh.details, refresh.cancel, groups.get,
	// datasets.get, groups.list, datasets.list, schedule.get,
	// schedule.update, dataflow.refresh, dataflow.transactions,
	// dataflow.cancel) and the status (0 for a network error).
	Observe func(endpoint string, status int)

	base   string
	http   *http.Client
	tokens TokenSource

	mu  sync.Mutex
	rng *rand.Rand
}

// NewClient returns a client for the REST root base (e.g.
// https://api.powerbi.com).
func NewClient(base string, hc *http.Client, tokens TokenSource) *Client {
	return &Client{base: strings.TrimSuffix(base, "/"), http: hc, tokens: tokens, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))}
}

// Seed makes jitter repeatable (tests, benchmarks).
func (c *Client) Seed(s uint64) {
	c.mu.Lock()
	c.rng = rand.New(rand.NewPCG(s, 1))
	c.mu.Unlock()
}

func (c *Client) clock() Clock {
	if c.Clock == nil {
		return SystemClock{}
	}
	return c.Clock
}

func (c *Client) log() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Client) jitter(d time.Duration, spread float64) time.Duration {
	c.mu.Lock()
	f := 1 - spread + 2*spread*c.rng.Float64()
	c.mu.Unlock()
	return time.Duration(float64(d) * f)
}

// stretch lengthens d by a random share of up to spread.
func (c *Client) stretch(d time.Duration, spread float64) time.Duration {
	c.mu.Lock()
	f := 1 + spread*c.rng.Float64()
	c.mu.Unlock()
	return time.Duration(float64(d) * f)
}

// errAmbiguous: a POST got no clear answer (5xx, reset, timeout); it may or
// may not have started a refresh.
var errAmbiguous = errors.New("no clear answer to the refresh request")

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one logical request: it renews the token once on 401, honours
// Retry-After on 429, and retries 5xx and network errors with backoff and
// jitter, all within deadline. POSTs are not retried on 5xx or network
// errors: the caller resolves them (errAmbiguous).
func (c *Client) do(ctx context.Context, method, path string, body []byte, deadline time.Time) (*response, error) {
	return c.doGated(ctx, method, path, body, deadline, nil)
}

// doGated is do, asking gate (if set) right before each send, retries
// after a 429 or a renewed token included: a replica that lost its lease
// while it waited out a Retry-After must not post. (Only POSTs that start
// refreshes pass a gate.)
func (c *Client) doGated(ctx context.Context, method, path string, body []byte, deadline time.Time, gate func() error) (*response, error) {
	renewed := false
	backoff := time.Second
	maxBackoff := c.MaxBackoff
	if maxBackoff == 0 {
		maxBackoff = time.Minute
	}
	for attempt := 1; ; attempt++ {
		tok, err := c.tokens.Token(ctx)
		if err != nil {
			// The token service failing for a moment (5xx, 429, network)
			// is waited out like a Power BI 5xx; nothing was sent, so this
			// holds for POSTs too.
			var ae *AuthError
			if !errors.As(err, &ae) || !ae.Transient || ctx.Err() != nil {
				return nil, err
			}
			wait := c.jitter(backoff, 0.5)
			backoff = min(2*backoff, maxBackoff)
			if attempt >= 8 || !c.clock().Now().Add(wait).Before(deadline) {
				return nil, err
			}
			c.log().Warn("token service unavailable, retrying", "method", method, "path", path, "error", ae.Err, "attempt", attempt, "wait", wait)
			if err := c.clock().Sleep(ctx, wait); err != nil {
				return nil, err
			}
			continue
		}
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if gate != nil {
			if err := gate(); err != nil {
				return nil, fmt.Errorf("refresh not requested (%s %s not sent): %w", method, path, err)
			}
		}
		res, err := c.http.Do(req)
		if c.Observe != nil {
			status := 0
			if err == nil {
				status = res.StatusCode
			}
			c.Observe(endpointOf(method, path), status)
		}
		var r *response
		if err == nil {
			b, rerr := io.ReadAll(io.LimitReader(res.Body, 8<<20))
			res.Body.Close()
			if rerr == nil {
				r = &response{status: res.StatusCode, header: res.Header, body: b}
			} else {
				err = rerr
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var wait time.Duration
		switch {
		case err != nil || r.status >= 500:
			if method == http.MethodPost {
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w: %v", method, path, errAmbiguous, err)
				}
				return nil, fmt.Errorf("%s %s: %w: status %d", method, path, errAmbiguous, r.status)
			}
			wait = c.jitter(backoff, 0.5)
			if r != nil {
				if ra := retryafter.Parse(r.header, c.clock().Now()); ra > wait {
					wait = ra
				}
			}
			backoff = min(2*backoff, maxBackoff)
			what := "network error"
			if err == nil {
				what = "status " + strconv.Itoa(r.status)
			}
			if attempt >= 8 || !c.clock().Now().Add(wait).Before(deadline) {
				if err != nil {
					return nil, pbirefresh.WithHint(fmt.Errorf("%s %s: %w", method, path, err), "could not reach Power BI: check network access to the API host, proxies and the CA bundle")
				}
				return nil, apiError(method, path, r)
			}
			c.log().Warn("transient error, retrying", "method", method, "path", path, "error", what, "attempt", attempt, "wait", wait)
		case (r.status == http.StatusUnauthorized || tokenExpired(r)) && !renewed:
			// An expired or revoked token: renew it once; a second 401 is an
			// answer (the app is not authorised), not a token problem. The
			// service answers an expired token with 401, or with 403 and
			// code TokenExpired (Microsoft's troubleshooting table:
			// https://learn.microsoft.com/power-bi/developer/embedded/embedded-troubleshoot).
			renewed = true
			c.tokens.Invalidate()
			c.log().Info("token refused, renewing", "path", path)
			continue
		case r.status == http.StatusTooManyRequests:
			wait = retryafter.Parse(r.header, c.clock().Now())
			if wait == 0 {
				wait = c.jitter(backoff, 0.5)
				backoff = min(2*backoff, maxBackoff)
			}
			if !c.clock().Now().Add(wait).Before(deadline) {
				return nil, apiError(method, path, r)
			}
			c.log().Warn("throttled", "method", method, "path", path, "retry_after", wait)
		default:
			return r, nil
		}
		if err := c.clock().Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// tokenExpired: a 403 whose code is TokenExpired.
func tokenExpired(r *response) bool {
	return r.status == http.StatusForbidden && apiError("", "", r).Code == "TokenExpired"
}

func apiError(method, path string, r *response) *APIError {
	e := &APIError{Method: method, Path: path, Status: r.status, RequestID: r.header.Get("RequestId"), RetryAfter: retryafter.Parse(r.header, time.Now())}
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Message  string `json:"message"`
		MessageG string `json:"Message"`
	}
	if json.Unmarshal(r.body, &body) == nil {
		switch {
		case body.Error != nil:
			e.Code, e.Message = body.Error.Code, body.Error.Message
		case body.MessageG != "":
			e.Code = body.MessageG
		case body.Message != "":
			e.Message = body.Message
		}
	}
	e.classify()
	return e
}

// Start posts a refresh and returns it, identified by x-ms-request-id, else
// the last segment of Location, else RequestId. After an ambiguous failure
// it looks in the history for a refresh started since the POST before it
// posts again, so a refresh is never started twice blindly.
func (c *Client) Start(ctx context.Context, ds Dataset, opts Options, deadline time.Time) (Refresh, error) {
	return c.start(ctx, ds, opts, deadline, Policy{})
}

func (c *Client) start(ctx context.Context, ds Dataset, opts Options, deadline time.Time, p Policy) (Refresh, error) {
	path := ds.path() + "/refreshes"
	body := opts.body()
	for attempt := 1; ; attempt++ {
		posted := c.clock().Now()
		r, err := c.doGated(ctx, http.MethodPost, path, body, deadline, p.Gate)
		if errors.Is(err, errAmbiguous) {
			c.log().Warn("refresh request had no clear answer; looking for it in the history", "dataset_id", ds.DatasetID, "error", err, "attempt", attempt)
			found, ferr := c.findStarted(ctx, ds, posted, deadline, opts, p)
			if ferr != nil {
				return Refresh{}, ferr
			}
			if found != "" {
				c.log().Info("refresh found in the history after an unclear answer", "dataset_id", ds.DatasetID, "refresh_id", found)
				return Refresh{Dataset: ds, ID: found, Enhanced: opts.Enhanced, Posted: posted}, nil
			}
			if attempt >= 5 || !c.clock().Now().Before(deadline) {
				return Refresh{}, pbirefresh.WithHint(err, "Power BI did not accept the refresh request; it is usually a passing fault: try again later")
			}
			continue
		}
		if err != nil {
			return Refresh{}, err
		}
		if r.status != http.StatusAccepted && r.status != http.StatusOK {
			return Refresh{}, apiError(http.MethodPost, path, r)
		}
		id := refreshID(r.header)
		if id == "" {
			return Refresh{}, pbirefresh.WithHint(fmt.Errorf("POST %s: %d without a refresh id in x-ms-request-id, Location or RequestId", path, r.status), "the API answered without a refresh id; report it with the response's RequestId")
		}
		return Refresh{Dataset: ds, ID: id, Enhanced: opts.Enhanced, Posted: posted}, nil
	}
}

// refreshID picks the id: x-ms-request-id, Location's last segment,
// RequestId. Enhanced refreshes answer with x-ms-request-id and a Location
// ending in the refresh id; classic ones only with RequestId, which is the
// requestId their history entry carries (docs/powerbi.md, "Starting a
// refresh"; https://learn.microsoft.com/power-bi/connect-data/asynchronous-refresh).
func refreshID(h http.Header) string {
	if id := strings.TrimSpace(h.Get("x-ms-request-id")); id != "" {
		return id
	}
	if loc := h.Get("Location"); loc != "" {
		if u, err := url.Parse(loc); err == nil {
			p := strings.TrimSuffix(u.Path, "/")
			if i := strings.LastIndexByte(p, '/'); i >= 0 && i < len(p)-1 {
				return p[i+1:]
			}
		}
	}
	return strings.TrimSpace(h.Get("RequestId"))
}

// maxSkew bounds the difference between this host's clock and the
// service's when the service's Date header is missing.
const maxSkew = time.Minute

// findStarted looks for the earliest refresh of the POST's type (ViaApi
// for classic, ViaEnhancedApi for enhanced) started since posted that no
// other run claims, until the history lag after posted has passed, and
// returns its id, or "". It looks at least once.
//
// "Since posted" is on the service's clock: the history's Date header
// says how far the service's clock is from ours. Date has whole seconds
// and is read after the answer arrived, so the offset it gives is never
// more than the true one, and the bound never excludes our own refresh.
// Without a Date header the bound allows a minute of skew. A refresh that
// another tool started before the POST is therefore never taken for ours:
// following it would report someone else's outcome, and on_timeout:
// cancel would cancel it.
func (c *Client) findStarted(ctx context.Context, ds Dataset, posted, deadline time.Time, opts Options, p Policy) (string, error) {
	grace := c.graceFor(p)
	until := posted.Add(grace)
	want := "viaapi"
	if opts.Enhanced {
		want = "viaenhancedapi"
	}
	for {
		entries, date, err := c.history(ctx, ds, 5, deadline)
		if err != nil {
			return "", err
		}
		since := posted.Add(-maxSkew)
		if !date.IsZero() {
			since = posted.Add(date.Sub(c.clock().Now())).Add(-time.Second)
		}
		// The earliest unclaimed API refresh since the POST: later ones
		// belong to later POSTs.
		found := ""
		var at time.Time
		for _, e := range entries {
			if strings.EqualFold(e.RefreshType, want) && !e.Start.Before(since) &&
				(p.Claimed == nil || !p.Claimed(e.RequestID)) && (found == "" || e.Start.Before(at)) {
				found, at = e.RequestID, e.Start
			}
		}
		if found != "" {
			return found, nil
		}
		now := c.clock().Now()
		if !now.Before(until) || !now.Before(deadline) {
			return "", nil
		}
		if err := c.clock().Sleep(ctx, min(max(grace/8, time.Second), until.Sub(now))); err != nil {
			return "", err
		}
	}
}

func (c *Client) graceFor(p Policy) time.Duration {
	if p.HistoryGrace > 0 {
		return p.HistoryGrace
	}
	if c.HistoryGrace > 0 {
		return c.HistoryGrace
	}
	return 2 * time.Minute
}

// HistoryEntry is one refresh in a dataset's history.
type HistoryEntry struct {
	RequestID        string
	RefreshType      string
	Status           string
	ExtendedStatus   string
	Start, End       time.Time
	ServiceException string
	Attempts         int
}

type historyJSON struct {
	RequestID            string            `json:"requestId"`
	RefreshType          string            `json:"refreshType"`
	StartTime            string            `json:"startTime"`
	EndTime              string            `json:"endTime"`
	Status               string            `json:"status"`
	ExtendedStatus       string            `json:"extendedStatus"`
	ServiceExceptionJSON string            `json:"serviceExceptionJson"`
	RefreshAttempts      []json.RawMessage `json:"refreshAttempts"`
}

// History returns the newest entries of a dataset's refresh history (top
// <= 0: all the service keeps).
func (c *Client) History(ctx context.Context, ds Dataset, top int, deadline time.Time) ([]HistoryEntry, error) {
	entries, _, err := c.history(ctx, ds, top, deadline)
	return entries, err
}

// history is History that also returns the response's Date header, the
// service's clock (zero if absent).
func (c *Client) history(ctx context.Context, ds Dataset, top int, deadline time.Time) ([]HistoryEntry, time.Time, error) {
	path := ds.path() + "/refreshes"
	if top > 0 {
		path += "?$top=" + strconv.Itoa(top)
	}
	r, err := c.do(ctx, http.MethodGet, path, nil, deadline)
	if err != nil {
		return nil, time.Time{}, err
	}
	if r.status != http.StatusOK {
		return nil, time.Time{}, apiError(http.MethodGet, path, r)
	}
	var out struct {
		Value []historyJSON `json:"value"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		return nil, time.Time{}, fmt.Errorf("GET %s: unreadable body: %w", path, err)
	}
	date, _ := http.ParseTime(r.header.Get("Date"))
	entries := make([]HistoryEntry, 0, len(out.Value))
	for _, v := range out.Value {
		entries = append(entries, HistoryEntry{
			RequestID: v.RequestID, RefreshType: v.RefreshType, Status: v.Status, ExtendedStatus: v.ExtendedStatus,
			Start: parseTime(v.StartTime), End: parseTime(v.EndTime), ServiceException: v.ServiceExceptionJSON,
			Attempts: len(v.RefreshAttempts),
		})
	}
	return entries, date, nil
}

// parseTime reads the service's timestamps, with or without Z and with any
// number of fractional digits: history entries end in Z with 3 to 7
// digits, Microsoft's examples for the details endpoint omit the Z.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// Status is one observation of a refresh.
type Status struct {
	Found            bool   // false while the refresh is not (yet) visible
	State            string // status as the service wrote it
	Extended         string // extendedStatus, if any
	Outcome          pbirefresh.Status
	Start, End       time.Time
	ServiceException string
	Messages         []string
	Attempts         int
}

// Terminal reports whether the refresh has ended.
func (s Status) Terminal() bool { return s.Found && s.Outcome != pbirefresh.Running }

// Succeeded reports whether it ended Completed.
func (s Status) Succeeded() bool { return s.Found && s.Outcome == pbirefresh.Completed }

// outcomeOf maps the service's words, case-insensitively; an unknown
// value keeps the run going until its deadline rather than ending it on a
// word we do not know.
func outcomeOf(status, extended string) (pbirefresh.Status, bool) {
	switch strings.ToLower(extended) {
	case "timedout":
		return pbirefresh.TimedOut, true
	case "cancelled", "canceled":
		return pbirefresh.Cancelled, true
	}
	switch strings.ToLower(status) {
	case "completed":
		return pbirefresh.Completed, true
	case "failed":
		return pbirefresh.Failed, true
	case "cancelled", "canceled":
		return pbirefresh.Cancelled, true
	case "disabled":
		return pbirefresh.Disabled, true
	case "unknown", "notstarted", "inprogress", "":
		return pbirefresh.Running, true
	}
	return pbirefresh.Running, false
}

// Status observes a refresh: the details endpoint for enhanced refreshes
// (202 running, 200 done), the history for classic ones. A refresh not
// (yet) visible gives Found false.
func (c *Client) Status(ctx context.Context, rf Refresh, deadline time.Time) (Status, error) {
	if rf.Enhanced {
		path := rf.Dataset.path() + "/refreshes/" + rf.ID
		r, err := c.do(ctx, http.MethodGet, path, nil, deadline)
		if err != nil {
			return Status{}, err
		}
		switch r.status {
		case http.StatusOK, http.StatusAccepted:
		case http.StatusNotFound:
			return Status{}, nil
		default:
			return Status{}, apiError(http.MethodGet, path, r)
		}
		var d struct {
			StartTime        string `json:"startTime"`
			EndTime          string `json:"endTime"`
			Status           string `json:"status"`
			ExtendedStatus   string `json:"extendedStatus"`
			NumberOfAttempts int    `json:"numberOfAttempts"`
			Messages         []struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Type    string `json:"type"`
			} `json:"messages"`
			RefreshAttempts []struct {
				ServiceExceptionJSON string `json:"serviceExceptionJson"`
			} `json:"refreshAttempts"`
		}
		if err := json.Unmarshal(r.body, &d); err != nil {
			return Status{}, fmt.Errorf("GET %s: unreadable body: %w", path, err)
		}
		st := Status{Found: true, State: d.Status, Extended: d.ExtendedStatus, Start: parseTime(d.StartTime), End: parseTime(d.EndTime), Attempts: d.NumberOfAttempts}
		var known bool
		st.Outcome, known = outcomeOf(d.Status, d.ExtendedStatus)
		if !known {
			c.log().Warn("unknown refresh status; following until the deadline", "refresh_id", rf.ID, "status", d.Status)
		}
		// 202 means running, whatever the body says.
		if r.status == http.StatusAccepted {
			st.Outcome = pbirefresh.Running
		}
		for _, m := range d.Messages {
			st.Messages = append(st.Messages, strings.TrimSpace(m.Code+" "+m.Message))
		}
		if n := len(d.RefreshAttempts); n > 0 {
			st.ServiceException = d.RefreshAttempts[n-1].ServiceExceptionJSON
		}
		return st, nil
	}
	for _, top := range []int{20, 0} {
		entries, err := c.History(ctx, rf.Dataset, top, deadline)
		if err != nil {
			return Status{}, err
		}
		for _, e := range entries {
			if strings.EqualFold(e.RequestID, rf.ID) {
				st := Status{Found: true, State: e.Status, Extended: e.ExtendedStatus, Start: e.Start, End: e.End, ServiceException: e.ServiceException, Attempts: e.Attempts}
				var known bool
				st.Outcome, known = outcomeOf(e.Status, e.ExtendedStatus)
				if !known {
					c.log().Warn("unknown refresh status; following until the deadline", "refresh_id", rf.ID, "status", e.Status)
				}
				return st, nil
			}
		}
		if len(entries) < 20 {
			break // the whole history was read
		}
	}
	return Status{}, nil
}

// ErrFinished: a cancel found the refresh already ended.
var ErrFinished = errors.New("the refresh has already finished")

// Cancel asks the service to cancel a refresh. Only call it for a refresh
// this process started (Run does so only on its own timeout).
func (c *Client) Cancel(ctx context.Context, rf Refresh, deadline time.Time) error {
	path := rf.Dataset.path() + "/refreshes/" + rf.ID
	r, err := c.do(ctx, http.MethodDelete, path, nil, deadline)
	if err != nil {
		return err
	}
	switch {
	case r.status == http.StatusOK || r.status == http.StatusAccepted || r.status == http.StatusNoContent:
		return nil
	case r.status == http.StatusConflict || strings.Contains(strings.ToLower(string(r.body)), "cannot be cancelled"):
		return ErrFinished
	}
	return apiError(http.MethodDelete, path, r)
}

// completedDurations lists how long the completed refreshes in a history
// ran.
func completedDurations(entries []HistoryEntry) []time.Duration {
	var ds []time.Duration
	for _, e := range entries {
		if strings.EqualFold(e.Status, "Completed") && !e.End.IsZero() && e.End.After(e.Start) {
			ds = append(ds, e.End.Sub(e.Start))
		}
	}
	return ds
}

// CheckWorkspace confirms the caller can see a workspace.
func (c *Client) CheckWorkspace(ctx context.Context, workspaceID string, deadline time.Time) error {
	path := "/v1.0/myorg/groups/" + workspaceID
	r, err := c.do(ctx, http.MethodGet, path, nil, deadline)
	if err != nil {
		return err
	}
	if r.status != http.StatusOK {
		return apiError(http.MethodGet, path, r)
	}
	return nil
}

// CheckDataset confirms the caller can see a dataset and that it can be
// refreshed (DirectQuery and live-connection models cannot).
func (c *Client) CheckDataset(ctx context.Context, ds Dataset, deadline time.Time) error {
	path := ds.path()
	r, err := c.do(ctx, http.MethodGet, path, nil, deadline)
	if err != nil {
		return err
	}
	if r.status != http.StatusOK {
		return apiError(http.MethodGet, path, r)
	}
	var d struct {
		IsRefreshable *bool `json:"isRefreshable"`
	}
	if json.Unmarshal(r.body, &d) == nil && d.IsRefreshable != nil && !*d.IsRefreshable {
		return pbirefresh.WithHint(fmt.Errorf("dataset %s is not refreshable", ds.DatasetID), "DirectQuery and live-connection models have nothing to refresh; remove the job")
	}
	return nil
}

// endpointOf names a request for metrics.
func endpointOf(method, path string) string {
	p, _, _ := strings.Cut(path, "?")
	switch {
	case strings.Contains(p, "/dataflows/") && strings.HasSuffix(p, "/cancel"):
		return "dataflow.cancel"
	case strings.Contains(p, "/dataflows/") && strings.HasSuffix(p, "/transactions"):
		return "dataflow.transactions"
	case strings.Contains(p, "/dataflows/") && strings.HasSuffix(p, "/refreshes"):
		return "dataflow.refresh"
	case strings.HasSuffix(p, "/refreshes") && method == http.MethodPost:
		return "refresh.post"
	case strings.HasSuffix(p, "/refreshes"):
		return "refresh.history"
	case strings.Contains(p, "/refreshes/") && method == http.MethodDelete:
		return "refresh.cancel"
	case strings.Contains(p, "/refreshes/"):
		return "refresh.details"
	case strings.HasSuffix(p, "/refreshSchedule") && method == http.MethodPatch:
		return "schedule.update"
	case strings.HasSuffix(p, "/refreshSchedule"):
		return "schedule.get"
	case strings.HasSuffix(p, "/datasets"):
		return "datasets.list"
	case strings.HasSuffix(p, "/groups"):
		return "groups.list"
	case strings.Contains(p, "/datasets/"):
		return "datasets.get"
	default:
		return "groups.get"
	}
}
