package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pbirefresh/pbirefresh/internal/retryafter"
)

// Kind is what happened to a job.
type Kind string

// Kinds of event.
const (
	// Failure: a run ended unsuccessfully (failed, cancelled, disabled,
	// quota, error).
	Failure Kind = "failure"
	// Timeout: a run passed its deadline.
	Timeout Kind = "timeout"
	// Lost: Power BI accepted a refresh and never ran it.
	Lost Kind = "lost"
	// Recovery: the first success after a run that was not one, or after
	// the job went stale.
	Recovery Kind = "recovery"
	// Stale: the job's last success is older than its stale_after.
	Stale Kind = "stale"
)

// Kinds lists every kind of event.
func Kinds() []Kind { return []Kind{Failure, Timeout, Lost, Recovery, Stale} }

// Event is one thing worth telling.
type Event struct {
	Kind      Kind      `json:"event"`
	Job       string    `json:"job"`
	Slot      time.Time `json:"slot"`
	Status    string    `json:"status"`
	RefreshID string    `json:"refresh_id,omitempty"`
	Error     string    `json:"error,omitempty"`
	// Code is the service's error code (Power BI's, the refresh's
	// serviceExceptionJson errorCode, or AADSTS<n>).
	Code    string    `json:"code,omitempty"`
	Hint    string    `json:"hint,omitempty"`
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
	Host    string    `json:"host,omitempty"`
}

// Target is one destination.
type Target struct {
	Name    string
	Type    string // webhook | teams | slack
	URL     string // holds credentials: never logged
	On      map[Kind]bool
	Timeout time.Duration // per attempt (default 10s)
	Retries int           // after the first attempt (default 3)
}

// Notifier delivers events in the background. Create it with New.
type Notifier struct {
	// OnResult, if set, learns each delivery's result (for metrics).
	OnResult func(target string, ok bool)

	targets []Target
	http    *http.Client
	logger  *slog.Logger
	queue   chan delivery
	closeMu sync.RWMutex // Send holds it to read, Close to write
	closed  bool
	wg      sync.WaitGroup
	stop    context.CancelFunc
	sleep   func(context.Context, time.Duration) error
}

type delivery struct {
	t  Target
	ev Event
}

// New starts a Notifier with workers delivering to targets.
func New(hc *http.Client, targets []Target, logger *slog.Logger) *Notifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if hc == nil {
		hc = http.DefaultClient
	}
	// A copy of the client that keeps a POST a POST across redirects.
	own := *hc
	own.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.Method != http.MethodPost {
			return errMethodChange
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	n := &Notifier{targets: targets, http: &own, logger: logger, queue: make(chan delivery, 256), stop: cancel,
		sleep: func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	for i := 0; i < 2; i++ {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for d := range n.queue {
				n.deliver(ctx, d.t, d.ev)
			}
		}()
	}
	return n
}

// Send queues an event for every target that wants its kind. It never
// blocks: with the queue full, the event is dropped, logged and counted.
// After Close it drops the event and logs it.
func (n *Notifier) Send(ev Event) {
	n.closeMu.RLock()
	defer n.closeMu.RUnlock()
	if n.closed {
		n.logger.Error("notification dropped: the notifier is closed (shutdown)", "job", ev.Job, "event", ev.Kind)
		return
	}
	for _, t := range n.targets {
		if !t.On[ev.Kind] {
			continue
		}
		select {
		case n.queue <- delivery{t, ev}:
		default:
			n.logger.Error("notification dropped: queue full", "target", t.Name, "job", ev.Job, "event", ev.Kind)
			if n.OnResult != nil {
				n.OnResult(t.Name, false)
			}
		}
	}
}

// Close delivers what is queued, until ctx is done.
func (n *Notifier) Close(ctx context.Context) {
	n.closeMu.Lock()
	if n.closed {
		n.closeMu.Unlock()
		return
	}
	n.closed = true
	close(n.queue)
	n.closeMu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.stop()
		<-done
	}
}

func (n *Notifier) deliver(ctx context.Context, t Target, ev Event) {
	body, err := Body(t.Type, ev)
	if err != nil {
		n.logger.Error("notification not sent", "target", t.Name, "error", err)
		return
	}
	timeout, retries := t.Timeout, t.Retries
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if retries < 0 {
		retries = 0
	}
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		status, wait, err := n.post(ctx, t.URL, body, timeout)
		ok := err == nil && status >= 200 && status < 300
		if ok {
			n.logger.Info("notification sent", "target", t.Name, "job", ev.Job, "event", ev.Kind)
			if n.OnResult != nil {
				n.OnResult(t.Name, true)
			}
			return
		}
		final := attempt >= retries || (err == nil && status >= 400 && status < 500 && status != 429) || errors.Is(err, errMethodChange)
		what := fmt.Sprintf("status %d", status)
		if err != nil {
			what = err.Error()
		}
		if final {
			n.logger.Error("notification failed", "target", t.Name, "job", ev.Job, "event", ev.Kind, "attempts", attempt+1, "error", what)
			if n.OnResult != nil {
				n.OnResult(t.Name, false)
			}
			return
		}
		// A receiver that throttles (Slack, a Teams workflow) says when to
		// come back; sooner would only be refused again.
		wait = min(max(wait, backoff), maxRetryAfter)
		n.logger.Warn("notification attempt failed; retrying", "target", t.Name, "attempt", attempt+1, "error", what, "retry_in", wait)
		if n.sleep(ctx, wait) != nil {
			return
		}
		backoff *= 2
	}
}

// maxRetryAfter bounds the wait a receiver's Retry-After can ask for: a
// worker waiting holds up the deliveries queued behind it.
const maxRetryAfter = time.Minute

// errMethodChange: a 301, 302 or 303 answer to a POST is followed with a
// GET without the body (as browsers do), which a receiver may well answer
// 200 (a landing page): the event would read as delivered and be lost.
// Redirects that keep the POST and its body (307, 308) are followed.
var errMethodChange = errors.New("the target redirected the POST to another URL, which would turn it into a GET without the event (an http:// URL answered with a redirect to https://, or a moved endpoint): configure the URL it redirects to")

// post sends one attempt, and returns the answer's status and the wait its
// Retry-After asks for. Errors never carry the URL (it holds credentials).
func (n *Notifier) post(ctx context.Context, u string, body []byte, timeout time.Duration) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, 0, errors.New("the target's URL is not valid")
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := n.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, 0, fmt.Errorf("no answer within %s", timeout)
		}
		return 0, 0, err
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	return res.StatusCode, retryafter.Parse(res.Header, time.Now()), nil
}

// Body renders an event for a target type.
func Body(kind string, ev Event) ([]byte, error) {
	switch kind {
	case "webhook":
		return json.Marshal(ev)
	case "slack":
		return json.Marshal(map[string]string{"text": summary(ev)})
	case "teams":
		facts := []map[string]string{{"title": "Job", "value": ev.Job}, {"title": "Status", "value": ev.Status}, {"title": "Slot", "value": ev.Slot.UTC().Format(time.RFC3339)}}
		if ev.RefreshID != "" {
			facts = append(facts, map[string]string{"title": "Refresh", "value": ev.RefreshID})
		}
		body := []any{
			map[string]any{"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true, "text": title(ev)},
			map[string]any{"type": "FactSet", "facts": facts},
		}
		if ev.Error != "" {
			body = append(body, map[string]any{"type": "TextBlock", "wrap": true, "text": ev.Error})
		}
		if ev.Code != "" {
			body = append(body, map[string]any{"type": "TextBlock", "wrap": true, "text": "Code: " + ev.Code})
		}
		if ev.Hint != "" {
			body = append(body, map[string]any{"type": "TextBlock", "wrap": true, "isSubtle": true, "text": "Fix: " + ev.Hint})
		}
		return json.Marshal(map[string]any{
			"type": "message",
			"attachments": []any{map[string]any{
				"contentType": "application/vnd.microsoft.card.adaptive",
				"content":     map[string]any{"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4", "body": body},
			}},
		})
	}
	return nil, fmt.Errorf("unknown notification type %q", kind)
}

func title(ev Event) string {
	switch ev.Kind {
	case Recovery:
		return fmt.Sprintf("pbirefresh: %s recovered", ev.Job)
	case Timeout:
		return fmt.Sprintf("pbirefresh: %s timed out", ev.Job)
	case Lost:
		return fmt.Sprintf("pbirefresh: %s: refresh lost", ev.Job)
	case Stale:
		return fmt.Sprintf("pbirefresh: %s is stale", ev.Job)
	}
	return fmt.Sprintf("pbirefresh: %s %s", ev.Job, ev.Status)
}

func summary(ev Event) string {
	var b strings.Builder
	b.WriteString(title(ev))
	fmt.Fprintf(&b, " (slot %s", ev.Slot.UTC().Format(time.RFC3339))
	if ev.RefreshID != "" {
		b.WriteString(", refresh " + ev.RefreshID)
	}
	b.WriteString(")")
	if ev.Error != "" {
		b.WriteString("\n" + ev.Error)
	}
	if ev.Code != "" {
		b.WriteString("\nCode: " + ev.Code)
	}
	if ev.Hint != "" {
		b.WriteString("\nFix: " + ev.Hint)
	}
	return b.String()
}
