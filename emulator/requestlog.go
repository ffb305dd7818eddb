package emulator

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Request is one entry of the request log. It never holds a credential:
// Authorization and identity headers are dropped, and secrets, passwords,
// assertions and refresh tokens in token-endpoint bodies are replaced by
// REDACTED. Response bodies are not kept (they carry tokens and secrets).
type Request struct {
	Seq        int64       `json:"seq"`
	Time       time.Time   `json:"time"`      // emulator clock
	WallTime   time.Time   `json:"wall_time"` // real time
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	Query      string      `json:"query,omitempty"`
	Operation  string      `json:"operation"`
	Header     http.Header `json:"header,omitempty"`
	Body       string      `json:"body,omitempty"`
	Caller     string      `json:"caller,omitempty"` // principal of a valid bearer token
	Status     int         `json:"status"`           // 0: no answer (reset)
	RetryAfter int         `json:"retry_after,omitempty"`
	RefreshID  string      `json:"refresh_id,omitempty"` // the refresh a POST created or a GET/DELETE named
	Fault      string      `json:"fault,omitempty"`
	Error      string      `json:"error,omitempty"`
}

// requestLog is a ring buffer: memory stays bounded however long the
// emulator runs.
type requestLog struct {
	mu   sync.Mutex
	size int64      // capacity
	buf  []*Request // grows up to size, then wraps
	next int64      // sequence number of the next entry
}

func newRequestLog(size int) *requestLog {
	return &requestLog{size: int64(size)}
}

func (l *requestLog) add(r *Request) {
	l.mu.Lock()
	r.Seq = l.next
	if int64(len(l.buf)) < l.size {
		l.buf = append(l.buf, r)
	} else {
		l.buf[l.next%l.size] = r
	}
	l.next++
	l.mu.Unlock()
}

// since returns the entries with Seq >= seq still held, oldest first.
func (l *requestLog) since(seq int64) []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := max(seq, l.next-int64(len(l.buf)), 0)
	out := make([]Request, 0, max(0, l.next-first))
	for s := first; s < l.next; s++ {
		out = append(out, *l.buf[s%l.size])
	}
	return out
}

func (l *requestLog) reset() {
	l.mu.Lock()
	l.buf = nil
	l.next = 0
	l.mu.Unlock()
}

// Requests returns the logged requests, oldest first (at most the log's
// size; see Settings.RequestLogSize).
func (e *Emulator) Requests() []Request { return e.reqLog.since(0) }

// RequestsSince returns the requests with a sequence number >= seq.
func (e *Emulator) RequestsSince(seq int64) []Request { return e.reqLog.since(seq) }

// ResetRequests empties the request log.
func (e *Emulator) ResetRequests() { e.reqLog.reset() }

var droppedHeaders = map[string]bool{
	"Authorization":       true,
	"Cookie":              true,
	"X-Identity-Header":   true,
	"Proxy-Authorization": true,
}

func safeHeaders(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, v := range h {
		if droppedHeaders[http.CanonicalHeaderKey(k)] {
			continue
		}
		out[k] = v
	}
	if a := h.Get("Authorization"); a != "" {
		scheme, _, _ := strings.Cut(a, " ")
		out.Set("Authorization", scheme+" REDACTED")
	}
	return out
}

var secretFormFields = []string{"client_secret", "password", "client_assertion", "refresh_token", "assertion", "code"}

// redactBody keeps request bodies for the log, minus credentials.
func redactBody(op string, body []byte) string {
	if len(body) == 0 {
		return ""
	}
	switch op {
	case "token", "msi":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return "(unparseable form, not logged)"
		}
		for _, k := range secretFormFields {
			if form.Has(k) {
				form.Set(k, "REDACTED")
			}
		}
		keys := make([]string, 0, len(form))
		for k := range form {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			for _, v := range form[k] {
				if b.Len() > 0 {
					b.WriteByte('&')
				}
				b.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(v))
			}
		}
		return b.String()
	}
	if len(body) > 64<<10 {
		return string(body[:64<<10]) + "…(truncated)"
	}
	return string(body)
}
