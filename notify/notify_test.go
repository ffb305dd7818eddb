package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	fail   atomic.Int32 // answer 500 this many times first
	hang   bool
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.hang {
		// The server notices a client hanging up only once the body is read.
		io.Copy(io.Discard, req.Body)
		<-req.Context().Done()
		return
	}
	if r.fail.Add(-1) >= 0 {
		w.WriteHeader(500)
		return
	}
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, b)
	r.mu.Unlock()
}

func (r *receiver) got() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

var all = map[Kind]bool{Failure: true, Timeout: true, Lost: true, Recovery: true}

var ev = Event{Kind: Failure, Job: "finance", Slot: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC), Status: "failed",
	RefreshID: "r-1", Error: "refresh r-1 ended Failed", Hint: "update the data source credentials"}

func newNotifier(t *testing.T, targets []Target, logs io.Writer) (*Notifier, *[2]atomic.Int32) {
	n := New(http.DefaultClient, targets, slog.New(slog.NewTextHandler(logs, nil)))
	n.sleep = func(context.Context, time.Duration) error { return nil } // no real waiting between retries
	var results [2]atomic.Int32                                         // [failed, sent]
	n.OnResult = func(_ string, ok bool) {
		if ok {
			results[1].Add(1)
		} else {
			results[0].Add(1)
		}
	}
	return n, &results
}

func TestPayloadsAndRouting(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	var logs bytes.Buffer
	n, results := newNotifier(t, []Target{
		{Name: "hook", Type: "webhook", URL: srv.URL + "/hook?token=s3cr3t", On: all},
		{Name: "teams", Type: "teams", URL: srv.URL + "/teams?sig=s3cr3t", On: all},
		{Name: "slack", Type: "slack", URL: srv.URL + "/slack/s3cr3t", On: map[Kind]bool{Recovery: true}},
	}, &logs)
	n.Send(ev)
	rec := ev
	rec.Kind, rec.Status, rec.Error, rec.Hint = Recovery, "completed", "", ""
	n.Send(rec)
	n.Close(context.Background())
	bodies := rc.got()
	if len(bodies) != 5 || results[1].Load() != 5 {
		t.Fatalf("%d deliveries, %d sent", len(bodies), results[1].Load())
	}
	var sawHook, sawCard, sawSlack bool
	for _, b := range bodies {
		var m map[string]any
		json.Unmarshal(b, &m)
		switch {
		case m["event"] == string(Failure):
			sawHook = m["job"] == "finance" && m["hint"] == ev.Hint && m["refresh_id"] == "r-1"
		case m["type"] == "message":
			att := m["attachments"].([]any)[0].(map[string]any)
			sawCard = sawCard || att["contentType"] == "application/vnd.microsoft.card.adaptive" && strings.Contains(string(b), "AdaptiveCard")
		case m["text"] != nil:
			sawSlack = strings.Contains(m["text"].(string), "finance recovered")
		}
	}
	if !sawHook || !sawCard || !sawSlack {
		t.Fatalf("payloads: hook %v card %v slack %v\n%s", sawHook, sawCard, sawSlack, bytes.Join(bodies, []byte("\n")))
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Fatal("a webhook URL reached the log")
	}
}

func TestRetriesTimeoutsAndFailures(t *testing.T) {
	flaky := &receiver{}
	flaky.fail.Store(2)
	hung := &receiver{hang: true}
	s1, s2 := httptest.NewServer(flaky), httptest.NewServer(hung)
	defer s1.Close()
	defer s2.Close()
	var logs bytes.Buffer
	n, results := newNotifier(t, []Target{
		{Name: "flaky", Type: "webhook", URL: s1.URL + "/x?key=s3cr3t", On: all, Retries: 3},
		{Name: "hung", Type: "webhook", URL: s2.URL + "/y?key=s3cr3t", On: all, Retries: 1, Timeout: 100 * time.Millisecond},
		{Name: "nowhere", Type: "slack", URL: "http://127.0.0.1:1/hooks/s3cr3t", On: all, Retries: 0},
	}, &logs)
	began := time.Now()
	n.Send(ev)
	n.Close(context.Background())
	if len(flaky.got()) != 1 {
		t.Fatalf("flaky target got %d after retries", len(flaky.got()))
	}
	if results[1].Load() != 1 || results[0].Load() != 2 {
		t.Fatalf("sent %d failed %d", results[1].Load(), results[0].Load())
	}
	if el := time.Since(began); el > 5*time.Second {
		t.Fatalf("a hung target held delivery for %s", el)
	}
	out := logs.String()
	if !strings.Contains(out, "no answer within 100ms") || strings.Contains(out, "s3cr3t") {
		t.Fatalf("logs: %s", out)
	}
}

func TestSendNeverBlocks(t *testing.T) {
	hung := &receiver{hang: true}
	srv := httptest.NewServer(hung)
	defer srv.Close()
	n, results := newNotifier(t, []Target{{Name: "hung", Type: "webhook", URL: srv.URL, On: all, Timeout: time.Hour}}, io.Discard)
	began := time.Now()
	for i := 0; i < 1000; i++ {
		n.Send(ev)
	}
	if el := time.Since(began); el > time.Second {
		t.Fatalf("Send blocked for %s", el)
	}
	if results[0].Load() == 0 {
		t.Fatal("a full queue dropped nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	n.Close(ctx)
}

// TestSendAfterCloseIsDropped: a run that outlives the shutdown must not
// crash the daemon by notifying after the notifier closed.
func TestSendAfterCloseIsDropped(t *testing.T) {
	var logs strings.Builder
	n, _ := newNotifier(t, []Target{{Name: "hook", Type: "webhook", URL: "http://127.0.0.1:1/x", On: all}}, &logs)
	n.Close(context.Background())
	n.Send(Event{Kind: Failure, Job: "late"}) // panicked before: send on a closed channel
	n.Close(context.Background())             // twice is harmless
	if !strings.Contains(logs.String(), "notification dropped: the notifier is closed") {
		t.Fatalf("log: %s", logs.String())
	}
}

// TestRetryAfterIsHonoured: a throttling receiver's Retry-After sets the
// wait before the next attempt (never shorter than the backoff, never
// longer than a minute).
func TestRetryAfterIsHonoured(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.Header().Set("Retry-After", "86400")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 3:
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	n, results := newNotifier(t, []Target{{Name: "slack", Type: "slack", URL: srv.URL, On: all, Retries: 3}}, io.Discard)
	var mu sync.Mutex
	var waits []time.Duration
	n.sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return nil
	}
	n.Send(ev)
	n.Close(context.Background())
	if results[1].Load() != 1 || calls.Load() != 4 {
		t.Fatalf("sent %d after %d attempts", results[1].Load(), calls.Load())
	}
	want := []time.Duration{7 * time.Second, time.Minute, 4 * time.Second}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
}

// TestRedirectThatDropsTheBodyFails: a 302 would turn the POST into a GET
// without the event; a receiver answering that GET 200 must not make the
// event read as delivered. A 308 keeps the POST and its body.
func TestRedirectThatDropsTheBodyFails(t *testing.T) {
	rc := &receiver{}
	var gets atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/new?sig=s3cr3t", http.StatusFound) })
	mux.HandleFunc("/kept", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/new?sig=s3cr3t", http.StatusPermanentRedirect)
	})
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			gets.Add(1)
			return // 200, as a landing page would
		}
		rc.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var logs bytes.Buffer
	n, results := newNotifier(t, []Target{
		{Name: "moved", Type: "webhook", URL: srv.URL + "/old?sig=s3cr3t", On: all, Retries: 2},
		{Name: "kept", Type: "webhook", URL: srv.URL + "/kept?sig=s3cr3t", On: all},
	}, &logs)
	n.Send(ev)
	n.Close(context.Background())
	if results[0].Load() != 1 || results[1].Load() != 1 || gets.Load() != 0 {
		t.Fatalf("failed %d, sent %d, GETs %d", results[0].Load(), results[1].Load(), gets.Load())
	}
	if got := rc.got(); len(got) != 1 || !bytes.Contains(got[0], []byte(`"job":"finance"`)) {
		t.Fatalf("the 308 target received %q", got)
	}
	out := logs.String()
	if !strings.Contains(out, "redirected the POST") || !strings.Contains(out, "attempts=1") || strings.Contains(out, "s3cr3t") {
		t.Fatalf("log: %s", out)
	}
}
