package refresh_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/pbirefresh/pbirefresh"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh/emulator"
	"github.com/pbirefresh/pbirefresh/refresh"
)

// Demo dataflows (emulator/demo.yaml): Sales Staging runs 5 s on premium
// capacity; Finance Dataflow runs 10 s on shared capacity (8 a day).
const (
	salesFlow   = "c0ffee00-0000-4000-8000-000000000301"
	financeFlow = "c0ffee00-0000-4000-8000-000000000302"
)

func flow(ws, id string) refresh.Dataflow { return refresh.Dataflow{WorkspaceID: ws, DataflowID: id} }

// stagingFor sets how long Sales Staging's refreshes run.
func stagingFor(d time.Duration) func(*emulator.Scenario) {
	return func(sc *emulator.Scenario) {
		sc.Workspaces[0].Dataflows[0].Behaviour.Duration = emulator.DurationDist{Min: emulator.Duration(d), Max: emulator.Duration(d)}
	}
}

// hookTransport carries a client's requests to the emulator. It records
// the path each went out with (escaped as sent), may rewrite answers, and
// calls after with each answered request: the moments at which a test
// acts as someone else. The client calls it on the run's goroutine.
type hookTransport struct {
	base    http.RoundTripper
	after   func(req *http.Request)
	rewrite func(body []byte) []byte

	mu    sync.Mutex
	paths []string
}

func (t *hookTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(req)
	t.mu.Lock()
	t.paths = append(t.paths, req.Method+" "+req.URL.EscapedPath())
	t.mu.Unlock()
	if err != nil {
		return res, err
	}
	if t.rewrite != nil {
		b, rerr := io.ReadAll(res.Body)
		res.Body.Close()
		if rerr != nil {
			return nil, rerr
		}
		b = t.rewrite(b)
		res.Body, res.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		res.Header.Del("Content-Length")
	}
	if t.after != nil {
		t.after(req)
	}
	return res, nil
}

// dataflowClient is h.client with its requests going through ht.
func (h *harness) dataflowClient(ht *hookTransport) *refresh.Client {
	ht.base = h.hc.Transport
	c := refresh.NewClient(h.emu.PowerBIURL(), &http.Client{Transport: ht}, h.cred)
	c.Clock, c.Logger = h.clock, h.client.Logger
	c.Seed(1)
	return c
}

// posted returns the transactions the emulator started for dataflow
// refresh requests, in order.
func (h *harness) posted() []string {
	var ids []string
	for _, r := range h.requests("dataflow.refresh") {
		if r.RefreshID != "" {
			ids = append(ids, r.RefreshID)
		}
	}
	return ids
}

// transaction returns a transaction as the dataflow's list shows it now.
func (h *harness) transaction(df refresh.Dataflow, id string) refresh.Transaction {
	h.t.Helper()
	list, err := h.client.Transactions(context.Background(), df, h.clock.Now().Add(time.Hour))
	if err != nil {
		h.t.Fatal(err)
	}
	for _, t := range list {
		if t.ID == id {
			return t
		}
	}
	h.t.Fatalf("transaction %s not listed", id)
	return refresh.Transaction{}
}

// started records what Started was called with.
type started struct{ calls []refresh.Refresh }

func (s *started) policy(timeout time.Duration) refresh.Policy {
	p := jobPolicy(timeout)
	p.Started = func(rf refresh.Refresh) { s.calls = append(s.calls, rf) }
	return p
}

func TestDataflowOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		behaviour *emulator.Behaviour
		opts      refresh.DataflowOptions
		cancel    bool // someone else cancels it in the portal
		want      pbirefresh.Status
		hintHas   string
		body      string
		query     string
	}{
		{name: "completes", want: pbirefresh.Completed, body: `{"notifyOption":"NoNotification"}`},
		{name: "options", opts: refresh.DataflowOptions{NotifyOption: "MailOnFailure", ProcessType: "processFull"}, want: pbirefresh.Completed,
			body: `{"notifyOption":"MailOnFailure"}`, query: "processType=processFull"},
		{name: "fails", behaviour: &emulator.Behaviour{Duration: emulator.DurationDist{Min: emulator.Duration(time.Minute), Max: emulator.Duration(time.Minute)}, Outcome: "failed"},
			want: pbirefresh.Failed, hintHas: "refresh history", body: `{"notifyOption":"NoNotification"}`},
		{name: "cancelled by someone else", behaviour: &emulator.Behaviour{Duration: emulator.DurationDist{Min: emulator.Duration(time.Hour), Max: emulator.Duration(time.Hour)}},
			cancel: true, want: pbirefresh.Cancelled, hintHas: "cancelled", body: `{"notifyOption":"NoNotification"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, nil)
			if tc.behaviour != nil {
				if err := h.emu.SetBehaviour(salesFlow, *tc.behaviour); err != nil {
					t.Fatal(err)
				}
			}
			var s started
			var progress refresh.Progress
			if tc.cancel {
				tok := h.pbiToken()
				progress = func(rf refresh.Refresh, st refresh.Status, polls int) {
					if st.Found && st.State == "InProgress" {
						req, _ := http.NewRequest("POST", h.emu.URL()+"/v1.0/myorg/groups/"+salesWS+"/dataflows/transactions/"+rf.ID+"/cancel", nil)
						req.Header.Set("Authorization", "Bearer "+tok)
						if r, err := h.hc.Do(req); err != nil || r.StatusCode != 200 {
							t.Fatalf("cancel as someone else: %v", err)
						}
					}
				}
			}
			res := h.client.RunDataflow(context.Background(), flow(salesWS, salesFlow), tc.opts, s.policy(time.Hour), progress)
			if res.Outcome != tc.want {
				t.Fatalf("outcome %s, want %s: %+v", res.Outcome, tc.want, res)
			}
			if tc.want != pbirefresh.Completed && (res.Err == nil || !strings.Contains(res.Hint, tc.hintHas)) {
				t.Errorf("error %v hint %q, want a hint about %q", res.Err, res.Hint, tc.hintHas)
			}
			// Followed by the transaction the POST started, announced once.
			ids := h.posted()
			if len(ids) != 1 || res.RefreshID != ids[0] || len(s.calls) != 1 || s.calls[0].ID != ids[0] || !s.calls[0].Posted.Equal(t0) {
				t.Fatalf("started %v, followed %s, Started %+v", ids, res.RefreshID, s.calls)
			}
			if res.ServiceStart.IsZero() || res.ServiceEnd.IsZero() || res.Polls == 0 {
				t.Errorf("service times or polls missing: %+v", res)
			}
			post := h.requests("dataflow.refresh")[0]
			if post.Body != tc.body || post.Query != tc.query {
				t.Errorf("POST ?%s %s, want ?%s %s", post.Query, post.Body, tc.query, tc.body)
			}
			if n := len(h.requests("dataflow.cancel")); n != map[bool]int{false: 0, true: 1}[tc.cancel] {
				t.Errorf("%d cancels", n)
			}
		})
	}
}

func TestDataflowBusy(t *testing.T) {
	for _, tc := range []struct {
		whenBusy pbirefresh.WhenBusy
		want     pbirefresh.Status
	}{{pbirefresh.BusyWait, pbirefresh.Completed}, {pbirefresh.BusySkip, pbirefresh.Skipped}, {pbirefresh.BusyFail, pbirefresh.Error}} {
		t.Run(string(tc.whenBusy), func(t *testing.T) {
			h := setup(t, nil)
			foreign, err := h.emu.StartExternalTransaction(salesFlow, "Scheduled", 20*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var s started
			p := s.policy(time.Hour)
			p.WhenBusy = tc.whenBusy
			res := h.client.RunDataflow(context.Background(), flow(salesWS, salesFlow), refresh.DataflowOptions{}, p, nil)
			if res.Outcome != tc.want {
				t.Fatalf("%+v", res)
			}
			switch tc.whenBusy {
			case pbirefresh.BusyWait:
				if !strings.Contains(res.Note, foreign) || h.clock.Now().Sub(t0) < 20*time.Minute || res.RefreshID == foreign || len(s.calls) != 1 {
					t.Errorf("did not wait for %s: %+v", foreign, res)
				}
			case pbirefresh.BusyFail:
				if !errors.Is(res.Err, refresh.ErrBusy) || !strings.Contains(res.Hint, "dataflow") {
					t.Errorf("error %v, hint %q", res.Err, res.Hint)
				}
			}
			if tc.whenBusy != pbirefresh.BusyWait && (res.RefreshID != "" || len(s.calls) != 0) {
				t.Errorf("a refresh was announced: %+v %+v", res, s.calls)
			}
			// Nothing foreign was cancelled, ever: it ran to its end.
			if n := len(h.requests("dataflow.cancel")); n != 0 {
				t.Fatalf("%d cancels during a busy dataflow", n)
			}
			h.clock.Advance(time.Hour)
			if st := h.transaction(flow(salesWS, salesFlow), foreign).Status; st != "Success" {
				t.Errorf("someone else's transaction ended %s", st)
			}
		})
	}
}

// TestDataflowNeverAdoptsForeign: someone else's transactions that start
// next to ours, before or after, listed before or after ours, are never
// taken for ours.
func TestDataflowNeverAdoptsForeign(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lag    time.Duration // settings.transaction_delay: how late ours is listed
		at     func(n int, req *http.Request) bool
		kind   string
		d      time.Duration
		before time.Duration // clock moved on before starting it
		after  time.Duration // and after
	}{
		// Started and ended between our read of the list and our POST: new
		// to us, and earlier than ours.
		{name: "ended just before our request", kind: "OnDemand", d: time.Second, after: 2 * time.Second,
			at: func(n int, req *http.Request) bool { return n == 1 }},
		// Listed at once while ours is not listed yet.
		{name: "started just after ours, ours listed late", lag: 30 * time.Second, kind: "OnDemand", d: 10 * time.Minute, before: 3 * time.Second,
			at: func(n int, req *http.Request) bool { return n == 3 }},
		{name: "scheduled with ours", kind: "Scheduled", d: 10 * time.Minute,
			at: func(n int, req *http.Request) bool { return req.Method == "POST" }},
		// Ours runs 5 s; someone else's starts at the next look.
		{name: "started after ours ended", kind: "OnDemand", d: time.Minute,
			at: func(n int, req *http.Request) bool { return n == 4 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, func(sc *emulator.Scenario) { sc.Settings.TransactionDelay = emulator.Duration(tc.lag) })
			var foreign string
			n := 0
			ht := &hookTransport{after: func(req *http.Request) {
				n++
				if foreign == "" && tc.at(n, req) {
					h.clock.Advance(tc.before)
					var err error
					if foreign, err = h.emu.StartExternalTransaction(salesFlow, tc.kind, tc.d); err != nil {
						t.Error(err)
					}
					h.clock.Advance(tc.after)
				}
			}}
			c := h.dataflowClient(ht)
			var s started
			res := c.RunDataflow(context.Background(), flow(salesWS, salesFlow), refresh.DataflowOptions{}, s.policy(time.Hour), nil)
			ours := h.posted()
			if foreign == "" || len(ours) != 1 {
				t.Fatalf("foreign %q, ours %v", foreign, ours)
			}
			if res.Outcome != pbirefresh.Completed || res.RefreshID != ours[0] || len(s.calls) != 1 || s.calls[0].ID != ours[0] {
				t.Fatalf("ours %s, foreign %s; followed %+v, Started %+v", ours[0], foreign, res, s.calls)
			}
			if n := len(h.requests("dataflow.cancel")); n != 0 {
				t.Fatalf("%d cancels", n)
			}
			if tc.kind == "OnDemand" && !strings.Contains(h.logs.String(), "several new transactions could be ours") {
				t.Errorf("the choice was not logged")
			}
		})
	}
}

// TestDataflowLost: the list never shows a new transaction within the
// grace (the emulator cannot drop an accepted dataflow POST; a list lag
// longer than the grace looks the same to the client).
func TestDataflowLost(t *testing.T) {
	h := setup(t, func(sc *emulator.Scenario) { sc.Settings.TransactionDelay = emulator.Duration(10 * time.Minute) })
	var s started
	res := h.client.RunDataflow(context.Background(), flow(salesWS, salesFlow), refresh.DataflowOptions{}, s.policy(time.Hour), nil)
	if res.Outcome != pbirefresh.Lost || res.RefreshID != "" || !strings.Contains(res.Hint, "history_grace") || len(s.calls) != 0 {
		t.Fatalf("%+v, Started %+v", res, s.calls)
	}
	if el := h.clock.Now().Sub(t0); el < 2*time.Minute || el > 3*time.Minute {
		t.Errorf("lost after %s; the grace is 2 min", el)
	}
}

func TestDataflowTimeout(t *testing.T) {
	for _, tc := range []struct {
		name      string
		timeout   time.Duration
		onTimeout pbirefresh.OnTimeout
		cancels   int
		status    string
	}{
		{"cancel ours", 30 * time.Minute, pbirefresh.TimeoutCancel, 1, "Cancelled"},
		{"cancel ours, deadline inside the grace", time.Minute, pbirefresh.TimeoutCancel, 1, "Cancelled"},
		{"leave it", 30 * time.Minute, pbirefresh.TimeoutLeave, 0, "InProgress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, stagingFor(5*time.Hour))
			ht := &hookTransport{}
			c := h.dataflowClient(ht)
			p := jobPolicy(tc.timeout)
			p.OnTimeout = tc.onTimeout
			res := c.RunDataflow(context.Background(), flow(salesWS, salesFlow), refresh.DataflowOptions{}, p, nil)
			if res.Outcome != pbirefresh.TimedOut || res.Note == "" || res.RefreshID == "" {
				t.Fatalf("%+v", res)
			}
			cancels := h.requests("dataflow.cancel")
			if len(cancels) != tc.cancels {
				t.Fatalf("%d cancels, want %d", len(cancels), tc.cancels)
			}
			for _, r := range cancels {
				if r.RefreshID != res.RefreshID || r.Status != 200 {
					t.Fatalf("cancelled %s (%d), not our %s", r.RefreshID, r.Status, res.RefreshID)
				}
			}
			if tc.cancels > 0 {
				// Sent URL-encoded: the id's ':', '@' and '$' escaped.
				i := slices.IndexFunc(ht.paths, func(s string) bool { return strings.HasSuffix(s, "/cancel") })
				if i < 0 || !strings.Contains(ht.paths[i], "%40") || !strings.Contains(ht.paths[i], "%24") || !strings.Contains(ht.paths[i], "%3A") ||
					strings.ContainsAny(strings.TrimPrefix(ht.paths[i], "POST "), "@$:") {
					t.Errorf("cancel sent as %v", ht.paths)
				}
			}
			h.clock.Advance(time.Second)
			if st := h.transaction(flow(salesWS, salesFlow), res.RefreshID).Status; st != tc.status {
				t.Fatalf("after the timeout: %s, want %s", st, tc.status)
			}
		})
	}
}

func TestDataflowFollowAfterRestart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		down    time.Duration // how long the process was down
		timeout time.Duration
		want    pbirefresh.Status
		cancels int
	}{
		{"follows to the end", 0, 3 * time.Hour, pbirefresh.Completed, 0},
		{"ended while down", 2 * time.Hour, 3 * time.Hour, pbirefresh.Completed, 0},
		{"deadline passes: cancels ours", 0, 30 * time.Minute, pbirefresh.TimedOut, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, stagingFor(time.Hour))
			ctx, stop := context.WithCancel(context.Background())
			var s started
			p := s.policy(tc.timeout)
			p.Started = func(rf refresh.Refresh) { s.calls = append(s.calls, rf); stop() } // shut down once persisted
			first := h.client.RunDataflow(ctx, flow(salesWS, salesFlow), refresh.DataflowOptions{}, p, nil)
			if first.Outcome != pbirefresh.Error || len(s.calls) != 1 || !errors.Is(first.Err, context.Canceled) {
				t.Fatalf("interrupted run: %+v", first)
			}
			h.clock.Advance(tc.down)
			polls := len(h.requests("dataflow.transactions"))
			res := h.client.FollowDataflow(context.Background(), flow(salesWS, salesFlow), s.calls[0], jobPolicy(tc.timeout))
			if res.Outcome != tc.want || res.RefreshID != s.calls[0].ID || res.RefreshID != h.posted()[0] {
				t.Fatalf("%+v", res)
			}
			if tc.down > 0 && (res.Polls != 1 || len(h.requests("dataflow.transactions")) != polls+1) {
				t.Errorf("%d polls for a transaction that had ended", res.Polls)
			}
			cancels := h.requests("dataflow.cancel")
			if len(cancels) != tc.cancels || (tc.cancels > 0 && cancels[0].RefreshID != res.RefreshID) {
				t.Errorf("cancels %+v", cancels)
			}
			if len(h.posted()) != 1 {
				t.Errorf("posted again: %v", h.posted())
			}
		})
	}
}

// TestDataflowUnclearAnswers: a POST without a clear answer starts one
// transaction, whatever happened to it.
func TestDataflowUnclearAnswers(t *testing.T) {
	for _, f := range []emulator.Fault{
		{Endpoint: "dataflow.refresh", Status: 503, Count: 1},                     // not processed
		{Endpoint: "dataflow.refresh", Reset: true, Count: 1},                     // not processed, no answer
		{Endpoint: "dataflow.refresh", Reset: true, AfterHandler: true, Count: 1}, // processed, no answer
	} {
		t.Run(describe(f), func(t *testing.T) {
			h := setup(t, nil)
			h.emu.SetFaults(f, emulator.Fault{Endpoint: "dataflow.transactions", Status: 503, Count: 2})
			res := h.client.RunDataflow(context.Background(), flow(salesWS, salesFlow), refresh.DataflowOptions{}, jobPolicy(time.Hour), nil)
			if ids := h.posted(); res.Outcome != pbirefresh.Completed || len(ids) != 1 || res.RefreshID != ids[0] {
				t.Fatalf("started %v: %+v", ids, res)
			}
		})
	}
}

// TestFindStartedDataflow settles a request whose answer was lost (the
// daemon stopped, or the connection dropped) without posting again.
func TestFindStartedDataflow(t *testing.T) {
	for _, tc := range []struct {
		name      string
		processed bool
		claimed   bool
		scheduled bool // a scheduled refresh starts just after
		found     bool
	}{
		{name: "processed, answer lost", processed: true, found: true},
		{name: "processed, scheduled one after it", processed: true, scheduled: true, found: true},
		{name: "not processed"},
		{name: "not processed, scheduled one after it", scheduled: true},
		{name: "claimed by another run", processed: true, claimed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, nil)
			h.emu.SetFaults(emulator.Fault{Endpoint: "dataflow.refresh", Reset: true, AfterHandler: tc.processed, Count: 1})
			posted := h.clock.Now()
			req, _ := http.NewRequest("POST", h.emu.URL()+"/v1.0/myorg/groups/"+salesWS+"/dataflows/"+salesFlow+"/refreshes", strings.NewReader(`{"notifyOption":"NoNotification"}`))
			req.Header.Set("Authorization", "Bearer "+h.pbiToken())
			req.Header.Set("Content-Type", "application/json")
			if res, err := h.hc.Do(req); err == nil {
				res.Body.Close()
				t.Fatalf("the fault did not fire: %d", res.StatusCode)
			}
			if tc.scheduled {
				h.clock.Advance(10 * time.Second)
				if _, err := h.emu.StartExternalTransaction(salesFlow, "Scheduled", time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			p := jobPolicy(time.Hour)
			ours := h.posted()
			if tc.claimed {
				p.Claimed = func(id string) bool { return slices.Contains(ours, id) }
			}
			id, err := h.client.FindStartedDataflow(context.Background(), flow(salesWS, salesFlow), posted, p)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 0, true: 1}[tc.processed]; len(ours) != want {
				t.Fatalf("the emulator started %v", ours)
			}
			if (id != "") != tc.found || (tc.found && id != ours[0]) {
				t.Fatalf("found %q, started %v", id, ours)
			}
			if n := len(h.requests("dataflow.refresh")); n != 1 {
				t.Fatalf("%d POSTs; settling must never post", n)
			}
		})
	}
}

func TestDataflowHints(t *testing.T) {
	t.Run("shared capacity quota", func(t *testing.T) {
		h := setup(t, nil)
		for i := 0; i < 8; i++ {
			if res := h.client.RunDataflow(context.Background(), flow(teamWS, financeFlow), refresh.DataflowOptions{}, jobPolicy(time.Hour), nil); res.Outcome != pbirefresh.Completed {
				t.Fatalf("refresh %d: %+v", i, res)
			}
		}
		res := h.client.RunDataflow(context.Background(), flow(teamWS, financeFlow), refresh.DataflowOptions{}, jobPolicy(time.Hour), nil)
		var api *refresh.APIError
		if res.Outcome != pbirefresh.QuotaExceeded || !errors.Is(res.Err, refresh.ErrQuota) || !errors.As(res.Err, &api) ||
			res.Code != "DailyDataflowRefreshLimitExceeded" || !strings.Contains(res.Hint, "8 dataflow refreshes a day") || res.RefreshID != "" {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("dataflow not in the workspace", func(t *testing.T) {
		h := setup(t, nil)
		res := h.client.RunDataflow(context.Background(), flow(teamWS, salesFlow), refresh.DataflowOptions{}, jobPolicy(time.Hour), nil)
		if res.Outcome != pbirefresh.Error || !strings.Contains(res.Hint, "workspace or dataflow was not found") {
			t.Fatalf("%+v", res)
		}
	})
}

// TestDataflowGate: a run whose gate is closed posts nothing.
func TestDataflowGate(t *testing.T) {
	h := setup(t, nil)
	lapsed := errors.New("lease lapsed")
	p := jobPolicy(time.Hour)
	p.Gate = func() error { return lapsed }
	res := h.client.RunDataflow(context.Background(), flow(salesWS, salesFlow), refresh.DataflowOptions{}, p, nil)
	if res.Outcome != pbirefresh.Error || !errors.Is(res.Err, lapsed) || len(h.requests("dataflow.refresh")) != 0 {
		t.Fatalf("%+v", res)
	}
}

// TestDataflowUnknownStatus: a status word nobody documented keeps the run
// going, with one warning.
func TestDataflowUnknownStatus(t *testing.T) {
	h := setup(t, stagingFor(10*time.Minute))
	c := h.dataflowClient(&hookTransport{rewrite: func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte(`"status":"InProgress"`), []byte(`"status":"Queued"`))
	}})
	res := c.RunDataflow(context.Background(), flow(salesWS, salesFlow), refresh.DataflowOptions{}, jobPolicy(time.Hour), nil)
	if res.Outcome != pbirefresh.Completed || res.Polls < 3 {
		t.Fatalf("%+v", res)
	}
	if n := strings.Count(h.logs.String(), "unknown transaction status"); n != 1 {
		t.Errorf("warned %d times, want once", n)
	}
}

// TestDataflowEndpointNames: metrics name dataflow requests by the
// emulator's operations.
func TestDataflowEndpointNames(t *testing.T) {
	h := setup(t, stagingFor(time.Hour))
	var mu sync.Mutex
	seen := map[string]bool{}
	h.client.Observe = func(endpoint string, status int) {
		mu.Lock()
		seen[endpoint] = true
		mu.Unlock()
	}
	h.client.RunDataflow(context.Background(), flow(salesWS, salesFlow), refresh.DataflowOptions{}, jobPolicy(10*time.Minute), nil)
	var got []string
	for k := range seen {
		got = append(got, k)
	}
	slices.Sort(got)
	if want := []string{"dataflow.cancel", "dataflow.refresh", "dataflow.transactions"}; !slices.Equal(got, want) {
		t.Fatalf("endpoints %v, want %v (endpointOf in client.go must name dataflow paths)", got, want)
	}
	var ops []string
	for _, r := range h.emu.Requests() {
		if strings.Contains(r.Path, "/dataflows/") && !slices.Contains(ops, r.Operation) {
			ops = append(ops, r.Operation)
		}
	}
	slices.Sort(ops)
	if !slices.Equal(ops, got) {
		t.Errorf("the emulator calls them %v", ops)
	}
}

// Throttled while following a transaction with a Retry-After past the
// deadline: timed out, not an error (as for datasets).
func TestDataflowThrottledPastTheDeadline(t *testing.T) {
	h := setup(t, stagingFor(5*time.Hour))
	c := h.dataflowClient(&hookTransport{})
	stormed := false
	progress := func(refresh.Refresh, refresh.Status, int) {
		if !stormed {
			stormed = true
			h.emu.Storm(2 * time.Hour)
		}
	}
	p := jobPolicy(30 * time.Minute)
	p.OnTimeout = pbirefresh.TimeoutLeave
	res := c.RunDataflow(context.Background(), flow(salesWS, salesFlow), refresh.DataflowOptions{}, p, progress)
	if !stormed {
		t.Fatal("never polled; the storm did not start")
	}
	if res.Outcome != pbirefresh.TimedOut || !strings.Contains(res.Note, "throttled until the deadline") {
		t.Fatalf("%+v", res)
	}
}
