package emulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxBody bounds every request body; larger ones get 413.
const maxBody = 1 << 20

// Emulator serves Entra ID, Key Vault and Power BI over HTTPS on one
// loopback listener. Create it with New, adjust the exported fields, then
// Start it.
type Emulator struct {
	// Addr is the listen address (default 127.0.0.1:0, a free port).
	Addr string
	// Clock is the emulator's time (default the wall clock).
	Clock Clock
	// Logger receives start-up and error events (default: discarded).
	Logger *slog.Logger

	sc       *Scenario
	auth     *authority
	tokenKey []byte
	srv      *http.Server
	ln       net.Listener
	base     string
	reqLog   *requestLog

	mu        sync.Mutex // guards everything below
	rng       *mrand.Rand
	tenants   map[string]*Tenant // by lower-case id and domain
	apps      map[string]*App    // by lower-case client id
	users     map[string]*User   // by lower-case UPN
	workspace map[string]*wsState
	datasets  map[string]*dsState
	dataflows map[string]*dfState
	refreshes map[string]*refresh // by lower-case request id
	vault     map[string]*secretState
	nextID    int64
	faults    []*Fault
	throttle  *Throttle
	windows   map[string]*window
	stormEnd  time.Time
}

type window struct {
	start time.Time
	count int
}

// New returns an emulator for the scenario (nil: the built-in demo). The
// scenario must have passed Validate (LoadScenario and ParseScenario do
// that).
func New(sc *Scenario) *Emulator {
	if sc == nil {
		sc = DemoScenario()
	}
	return &Emulator{sc: sc}
}

// prepare validates the scenario and builds the runtime state, without
// touching the network.
func (e *Emulator) prepare() error {
	if err := e.sc.Validate(); err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	if e.Addr == "" {
		e.Addr = "127.0.0.1:0"
	}
	if e.Clock == nil {
		e.Clock = realClock{}
	}
	if e.Logger == nil {
		e.Logger = slog.New(slog.DiscardHandler)
	}
	e.tokenKey = make([]byte, 32)
	if _, err := rand.Read(e.tokenKey); err != nil {
		return fmt.Errorf("make token key: %w", err)
	}
	e.rng = mrand.New(mrand.NewPCG(e.sc.Settings.Seed, 0x9e3779b97f4a7c15))
	e.reqLog = newRequestLog(e.sc.Settings.RequestLogSize)
	e.load()
	return nil
}

// Start generates the CA, opens the listener and serves until Close.
func (e *Emulator) Start() error {
	if err := e.prepare(); err != nil {
		return err
	}
	auth, err := newAuthority(nil)
	if err != nil {
		return err
	}
	e.auth = auth

	ln, err := net.Listen("tcp", e.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", e.Addr, err)
	}
	e.ln = ln
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	e.base = "https://" + net.JoinHostPort(host, port)
	e.srv = &http.Server{
		Handler:           e.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(e.Logger.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{auth.server},
			MinVersion:   tls.VersionTLS12,
		},
	}
	go func() {
		if err := e.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.Logger.Error("emulator stopped", "err", err)
		}
	}()
	e.Logger.Info("emulator listening", "url", e.base)
	return nil
}

// Close stops the server at once.
func (e *Emulator) Close() error {
	if e.srv == nil {
		return nil
	}
	return e.srv.Close()
}

// Shutdown stops the server gracefully.
func (e *Emulator) Shutdown(ctx context.Context) error {
	if e.srv == nil {
		return nil
	}
	return e.srv.Shutdown(ctx)
}

// URL is the base URL of every service: the authority host, the Power BI
// API root and the Key Vault URL are all this one address.
func (e *Emulator) URL() string { return e.base }

// AuthorityHost is the Entra ID authority host (MSAL authority is
// AuthorityHost()+"/"+tenant).
func (e *Emulator) AuthorityHost() string { return e.base }

// PowerBIURL is the REST root; prepend it to /v1.0/myorg/....
func (e *Emulator) PowerBIURL() string { return e.base }

// VaultURL is the URL of the emulated Key Vault.
func (e *Emulator) VaultURL() string { return e.base }

// CAPEM returns the CA certificate in PEM form.
func (e *Emulator) CAPEM() []byte { return bytes.Clone(e.auth.caPEM) }

// CertPool returns a pool holding only the emulator's CA.
func (e *Emulator) CertPool() *x509.CertPool { return e.auth.pool.Clone() }

// Client returns an HTTP client that trusts the emulator's CA (and nothing
// else), for tests.
func (e *Emulator) Client() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: e.CertPool(), MinVersion: tls.VersionTLS12}
	tr.ForceAttemptHTTP2 = true
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Scenario returns the scenario the emulator was built from. Runtime
// changes (behaviours, rotations) are not written back to it.
func (e *Emulator) Scenario() *Scenario { return e.sc }

// route is one registered endpoint.
type route struct {
	op      string
	powerBI bool // Power BI REST: throttled, RequestId headers
	fn      func(w http.ResponseWriter, r *http.Request, c *call)
}

// call carries what the middleware learnt about a request.
type call struct {
	now    time.Time
	body   []byte
	claims *claims // set by Power BI and Key Vault auth
	entry  *Request
}

func (e *Emulator) handle(mux *http.ServeMux, pattern, op string, powerBI bool, fn func(http.ResponseWriter, *http.Request, *call)) {
	rt := route{op: op, powerBI: powerBI, fn: fn}
	mux.Handle(pattern, e.middleware(rt))
}

// statusWriter records the status and, for slow-body faults, holds the body
// back so that it can be dripped out.
type statusWriter struct {
	http.ResponseWriter
	status int
	hold   *bytes.Buffer
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
		s.ResponseWriter.WriteHeader(http.StatusOK)
	}
	if s.hold != nil {
		return s.hold.Write(b)
	}
	return s.ResponseWriter.Write(b)
}

func (e *Emulator) middleware(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{now: e.Clock.Now()}
		entry := &Request{
			Time:      c.now,
			WallTime:  time.Now(),
			Method:    r.Method,
			Path:      r.URL.Path,
			Query:     r.URL.RawQuery,
			Operation: rt.op,
			Header:    safeHeaders(r.Header),
		}
		c.entry = entry
		// Date on the emulator's clock, as a real service's Date is on its
		// own: clients compare it with timestamps in bodies.
		w.Header().Set("Date", c.now.UTC().Format(http.TimeFormat))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			entry.Status = sw.status
			e.reqLog.add(entry)
		}()

		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			sw.status = 0
			entry.Error = "read body: " + err.Error()
			return
		}
		if len(body) > maxBody {
			entry.Body = "(over 1 MiB, not logged)"
			e.writeTooLarge(sw, rt)
			return
		}
		c.body = body
		entry.Body = redactBody(rt.op, body)
		if tok := bearer(r.Header.Get("Authorization")); tok != "" {
			if cl, err := e.verifyToken(tok, c.now); cl != nil {
				entry.Caller = cl.principal()
				if err != nil {
					entry.Caller += " (expired)"
				}
			} else {
				entry.Caller = "(forged token)"
			}
		}
		if rt.powerBI {
			w.Header().Set("RequestId", newGUID())
			w.Header().Set("Access-Control-Expose-Headers", "RequestId")
			w.Header().Set("Cache-Control", "no-store, must-revalidate, no-cache")
			w.Header().Set("Pragma", "no-cache")
			w.Header().Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
			w.Header().Set("X-Frame-Options", "deny")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("home-cluster-uri", "https://wabi-emulator-redirect.analysis.windows.net/")
		}

		f := e.drawFault(rt.op)
		if f != nil && f.AfterHandler {
			// Process the request first; then drop the connection, or
			// answer late: either way the client cannot tell in time
			// whether it took effect.
			entry.Fault = describeFault(f) + ", after handling"
			rec := &discardWriter{header: http.Header{}}
			rt.fn(rec, r, c)
			entry.Status = rec.status
			if f.Reset {
				entry.Error = fmt.Sprintf("handled (status %d), then connection reset (injected)", rec.status)
				entry.Status = 0
				panic(http.ErrAbortHandler)
			}
			if !wait(r.Context(), f.Latency.D()) {
				// The client went away (killed, paused past its
				// timeout): the request took effect, no answer left.
				entry.Error = fmt.Sprintf("handled (status %d), the client left before the answer", rec.status)
				return
			}
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			sw.WriteHeader(rec.status)
			sw.Write(rec.body.Bytes())
			return
		}
		if f != nil {
			entry.Fault = describeFault(f)
			if !wait(r.Context(), f.Latency.D()) {
				return
			}
			if f.Reset {
				entry.Error = "connection reset (injected)"
				entry.Status = 0
				// ErrAbortHandler makes net/http drop the connection (HTTP/1)
				// or reset the stream (HTTP/2) without logging a panic.
				panic(http.ErrAbortHandler)
			}
			if f.Status != 0 {
				if f.RetryAfter > 0 {
					w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
				}
				e.writeFaultStatus(sw, rt, f.Status)
				return
			}
			if f.SlowBody > 0 {
				sw.hold = &bytes.Buffer{}
				defer drip(w, sw.hold, f.SlowBody.D())
			}
		}
		if rt.powerBI {
			if retry := e.throttled(r, c.now); retry > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(retry))
				entry.RetryAfter = retry
				writeThrottled(sw, retry)
				return
			}
		}
		rt.fn(sw, r, c)
	})
}

// drip writes the held body in ten pieces spread over d.
func drip(w http.ResponseWriter, body *bytes.Buffer, d time.Duration) {
	b := body.Bytes()
	fl, _ := w.(http.Flusher)
	step := max(1, (len(b)+9)/10)
	for i := 0; i < len(b); i += step {
		w.Write(b[i:min(len(b), i+step)])
		if fl != nil {
			fl.Flush()
		}
		time.Sleep(d / 10)
	}
}

func describeFault(f *Fault) string {
	var parts []string
	if f.Latency > 0 {
		parts = append(parts, "latency "+f.Latency.D().String())
	}
	if f.Reset {
		parts = append(parts, "reset")
	}
	if f.Status != 0 {
		parts = append(parts, "status "+strconv.Itoa(f.Status))
	}
	if f.SlowBody > 0 {
		parts = append(parts, "slow body "+f.SlowBody.D().String())
	}
	return strings.Join(parts, ", ")
}

// drawFault picks the first fault rule for op that fires on this request.
func (e *Emulator) drawFault(op string) *Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, f := range e.faults {
		if f.Endpoint != "*" && f.Endpoint != op {
			continue
		}
		if f.Rate < 1 && e.rng.Float64() >= f.Rate {
			continue
		}
		fired := *f
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				e.faults = append(e.faults[:i:i], e.faults[i+1:]...)
			}
		}
		return &fired
	}
	return nil
}

// throttled applies the storm and the per-caller window; it returns the
// Retry-After seconds when the request must be refused.
func (e *Emulator) throttled(r *http.Request, now time.Time) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now.Before(e.stormEnd) {
		return ceilSeconds(e.stormEnd.Sub(now))
	}
	if e.throttle == nil {
		return 0
	}
	key := r.RemoteAddr
	if cl, _ := e.verifyToken(bearer(r.Header.Get("Authorization")), now); cl != nil {
		key = strings.ToLower(cl.Tid) + "/" + cl.principal()
	}
	win := e.windows[key]
	if win == nil || !now.Before(win.start.Add(e.throttle.Window.D())) {
		if len(e.windows) > 10000 { // bound memory under fuzzing: forget old windows
			clear(e.windows)
		}
		win = &window{start: now}
		e.windows[key] = win
	}
	win.count++
	if win.count > e.throttle.Limit {
		return ceilSeconds(win.start.Add(e.throttle.Window.D()).Sub(now))
	}
	return 0
}

func ceilSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

func (e *Emulator) writeTooLarge(w http.ResponseWriter, rt route) {
	switch {
	case rt.powerBI:
		// Status and code for oversized bodies are not documented; 413 with
		// the service's error shape is the safe guess.
		pbiError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body is too large.")
	case rt.op == "token":
		tokenError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body is too large.")
	default:
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": map[string]string{"code": "RequestEntityTooLarge", "message": "The request body is too large."}})
	}
}

func (e *Emulator) writeFaultStatus(w http.ResponseWriter, rt route, status int) {
	switch {
	case rt.op == "token" || rt.op == "openid" || rt.op == "msi":
		tokenError(w, status, "temporarily_unavailable", 50001, "The service is temporarily unavailable. (injected fault)")
	case rt.op == "keyvault.get":
		writeJSON(w, status, map[string]any{"error": map[string]string{"code": "ServiceUnavailable", "message": "The service is temporarily unavailable. (injected fault)"}})
	case rt.powerBI && status == http.StatusTooManyRequests:
		retry, _ := strconv.Atoi(w.Header().Get("Retry-After"))
		writeThrottled(w, retry)
	default:
		pbiError(w, status, http.StatusText(status), "")
	}
}

// writeThrottled writes Power BI's 429 body: a top-level message, with no
// error wrapper (retry 0: the fault set no Retry-After).
func writeThrottled(w http.ResponseWriter, retry int) {
	msg := "You have exceeded the amount of requests allowed in the current time frame and further requests will fail."
	if retry > 0 {
		msg += fmt.Sprintf(" Retry in %d seconds.", retry)
	}
	writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// pbiError writes the Power BI error shape: with a message, the simple
// {"error":{"code","message"}} form seen for refresh conflicts and limits;
// without one, the pbi.error form of the spec's error examples.
func pbiError(w http.ResponseWriter, status int, code, message string) {
	if message != "" {
		writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
		return
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code,
		"pbi.error": map[string]any{
			"code": code, "parameters": map[string]any{}, "details": []any{}, "exceptionCulprit": 1,
		},
	}})
}

func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func jsonUnmarshalStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// discardWriter holds a handler's answer back (after_handler faults).
type discardWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (d *discardWriter) Header() http.Header { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return d.body.Write(b)
}
func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}

// wait sleeps for d (wall time) unless the request goes away first; it
// reports whether the full time passed.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
