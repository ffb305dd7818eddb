package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/scheduler"
	"github.com/pbirefresh/pbirefresh/store"
)

// Limits of the HTTP server. Idle keep-alive connections are closed after
// idleTimeout, and beyond maxConns the oldest idle one is closed for each
// new connection, so thousands of idle clients cannot exhaust file
// descriptors or starve /healthz.
const (
	maxConns    = 256
	idleTimeout = 30 * time.Second
)

// maxReaders is how many requests may read the state database and render
// at once: half the CPUs (one on a 2-core VM). The rest wait, so readers
// hammering the API cannot take the CPU the scheduler needs
// (BenchmarkLatenessUnderAPILoad: p99 slot-to-POST lateness under 200
// clients stays within 2x of idle).
var maxReaders = max(1, runtime.GOMAXPROCS(0)/2)

// httpServer serves /metrics, /healthz, /readyz, the API and the status
// page. POSTs need the bearer token from http.token_file.
type httpServer struct {
	logger   *slog.Logger
	srv      *http.Server
	addr     string
	loopback bool
	token    atomic.Pointer[string]
	readers  chan struct{}
	conns    *connLimiter
}

// startHTTP starts the server (unless http.listen is off).
func (c *runCmd) startHTTP(cfg *configs.Config) error {
	if cfg.HTTP.Listen == "off" {
		return nil
	}
	h := &httpServer{logger: c.logger, loopback: cfg.HTTP.Loopback(), readers: make(chan struct{}, maxReaders)}
	if err := h.loadToken(cfg.HTTP.TokenFile); err != nil {
		return &exitError{exitUsage, err}
	}
	c.warnTokenMode(cfg.HTTP.TokenFile)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", c.readyz)
	mux.Handle("GET /api/jobs", h.reading(http.HandlerFunc(c.apiJobs)))
	mux.Handle("GET /api/runs", h.reading(http.HandlerFunc(c.apiRuns)))
	mux.Handle("GET /api/replicas", h.reading(http.HandlerFunc(c.apiReplicas)))
	mux.HandleFunc("POST /api/jobs/{name}/run", func(w http.ResponseWriter, r *http.Request) {
		if !h.authorized(w, r) {
			return
		}
		c.runNow(w, r)
	})
	mux.Handle("GET /{$}", h.reading(http.HandlerFunc(c.statusPage)))
	mux.Handle("GET /jobs/{name}", h.reading(http.HandlerFunc(c.jobPage)))
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return &exitError{exitCannotWork, pbirefresh.WithHint(fmt.Errorf("listen on %s: %w", cfg.HTTP.Listen, err), "another process holds the port: change http.listen, or set it to off")}
	}
	h.addr = ln.Addr().String()
	h.conns = newConnLimiter(ln, maxConns)
	h.srv = &http.Server{
		Handler:           h.checkHost(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnState:         h.conns.state,
		ErrorLog:          slog.NewLogLogger(c.logger.Handler(), slog.LevelWarn),
	}
	go h.srv.Serve(h.conns)
	c.http = h
	c.logger.Info("http server listening", "addr", h.addr, "posts", *h.token.Load() != "")
	return nil
}

// loadToken reads http.token_file (again, on reload).
func (h *httpServer) loadToken(path string) error {
	token := ""
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return pbirefresh.WithHint(fmt.Errorf("read http.token_file: %w", err), "make the file readable by the daemon's user")
		}
		token = strings.TrimSpace(string(b))
	}
	old := h.token.Swap(&token)
	if old != nil && *old != token {
		h.logger.Info("http token reloaded from http.token_file; the previous token is no longer accepted", "file", path)
	}
	return nil
}

// warnTokenMode warns when the token file can be read by the file's
// group, unless that group is the daemon's own (a Kubernetes secret
// volume with the pod's fsGroup is 0440, group fsGroup). A world-readable
// one is refused by validation.
func (c *runCmd) warnTokenMode(path string) {
	if path == "" {
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o070 != 0 && !ownGroup(fi) {
		c.logger.Warn("http.token_file is readable by its group: anyone in it can trigger runs", "file", path, "mode", fmt.Sprintf("%#o", fi.Mode().Perm()), "hint", "chmod 600 "+path)
	}
}

// authorized checks a POST's bearer token in constant time.
func (h *httpServer) authorized(w http.ResponseWriter, r *http.Request) bool {
	token := *h.token.Load()
	if token == "" {
		apiError(w, http.StatusForbidden, "POSTs are disabled: set http.token_file to a file holding a bearer token")
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pbirefresh"`)
		apiError(w, http.StatusUnauthorized, "a valid bearer token (http.token_file) is required")
		return false
	}
	return true
}

// checkHost refuses, on a loopback listener, requests whose Host is not a
// loopback name or the listen address: a web page the operator opens
// cannot reach the daemon through DNS rebinding.
func (h *httpServer) checkHost(next http.Handler) http.Handler {
	if !h.loopback {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		host = strings.Trim(host, "[]")
		ip := net.ParseIP(host)
		if !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
			apiError(w, http.StatusMisdirectedRequest, "this daemon listens on loopback and answers only requests for localhost, 127.0.0.1 or ::1")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// reading lets at most maxReaders handlers read the state database at
// once; the others wait (or give up when the client does).
func (h *httpServer) reading(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case h.readers <- struct{}{}:
			defer func() { <-h.readers }()
			next.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	})
}

func (h *httpServer) shutdown(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if h.srv.Shutdown(ctx) != nil {
		h.srv.Close()
	}
}

// connLimiter is the listener: it counts connections and, at the cap,
// closes the connection idle for longest (or still silent, not having
// sent a request) to make room for a new one.
type connLimiter struct {
	net.Listener
	max int

	mu    sync.Mutex
	open  map[net.Conn]time.Time // connection → when it became idle or new; zero while active
	order []net.Conn
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, open: map[net.Conn]time.Time{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	var victim net.Conn
	if len(l.open) >= l.max {
		var oldest time.Time
		for conn, since := range l.open {
			if !since.IsZero() && (victim == nil || since.Before(oldest)) {
				victim, oldest = conn, since
			}
		}
		if victim != nil {
			delete(l.open, victim)
		}
	}
	l.mu.Unlock()
	if victim != nil {
		victim.Close()
	}
	return c, nil
}

// state is the server's ConnState hook.
func (l *connLimiter) state(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateNew, http.StateIdle:
		l.open[c] = time.Now()
	case http.StateActive:
		l.open[c] = time.Time{}
	case http.StateClosed, http.StateHijacked:
		delete(l.open, c)
	}
}

func (l *connLimiter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open)
}

func writeJSONResponse(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSONResponse(w, status, map[string]string{"error": msg})
}

func (c *runCmd) readyz(w http.ResponseWriter, r *http.Request) {
	problems := c.notReady(r.Context())
	if len(problems) > 0 {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "problems": problems})
		return
	}
	writeJSONResponse(w, http.StatusOK, map[string]any{"ready": true})
}

// notReady lists what keeps the daemon from doing its work.
func (c *runCmd) notReady(ctx context.Context) []string {
	var problems []string
	c.mu.Lock()
	if c.cfg == nil {
		problems = append(problems, "configuration not loaded")
	}
	c.mu.Unlock()
	if err := c.store.Ping(ctx); err != nil {
		p := "state database: " + err.Error()
		if h := pbirefresh.Hint(err); h != "" {
			p += " (" + h + ")"
		}
		problems = append(problems, p)
	}
	if !c.scheduling.Load() {
		problems = append(problems, "scheduler not running")
	}
	return problems
}

// runNow is POST /api/jobs/{name}/run: a manual run through the overlap
// rules. A paused job is refused (409): enabled: false is a decision in
// the configuration, and a manual run does not override it silently.
func (c *runCmd) runNow(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	c.mu.Lock()
	job := c.cfg.Job(name)
	c.mu.Unlock()
	switch {
	case job == nil:
		apiError(w, http.StatusNotFound, fmt.Sprintf("no job %q", name))
		return
	case !*job.Enabled:
		apiError(w, http.StatusConflict, fmt.Sprintf("job %q is paused (enabled: false); set enabled: true and reload the daemon (SIGHUP) to run it, or refresh it once by hand with `pbirefresh once --job %s`", name, name))
		return
	}
	fired, err := c.sched.Trigger(c.base, name)
	switch {
	case errors.Is(err, scheduler.ErrNoJob):
		apiError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, scheduler.ErrSkipped):
		apiError(w, http.StatusConflict, fmt.Sprintf("manual run of %q not started (%v); it is recorded as skipped: wait for the run in progress to end, or set overlap: queue", name, err))
		return
	case err != nil:
		apiError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSONResponse(w, http.StatusAccepted, map[string]any{"job": name, "slot": fired.Slot, "kind": pbirefresh.Manual, "queued": fired.Queued})
}

// jobView is a job as the API and the status page show it.
type jobView struct {
	Name     string `json:"name"`
	Schedule string `json:"schedule,omitempty"`
	Timezone string `json:"timezone"`
	Enabled  bool   `json:"enabled"`
	Refresh  string `json:"refresh"` // enhanced | classic | dataflow
	// What it refreshes: the ids, and the names the job gives instead
	// (with the ids they resolved to; NameError while they do not).
	Workspace   string `json:"workspace,omitempty"`
	WorkspaceID string `json:"workspace_id,omitempty"`
	Dataset     string `json:"dataset,omitempty"`
	DatasetID   string `json:"dataset_id,omitempty"`
	DataflowID  string `json:"dataflow_id,omitempty"`
	NameError   string `json:"name_error,omitempty"`
	// The chain: the jobs this one runs after, and the jobs that run when
	// it completes.
	After      []string          `json:"after,omitempty"`
	OnUpstream string            `json:"on_upstream,omitempty"`
	Dependents []string          `json:"dependents,omitempty"`
	NextRun    *time.Time        `json:"next_run,omitempty"`
	NextNote   string            `json:"next_note,omitempty"`
	LastStatus pbirefresh.Status `json:"last_status,omitempty"`
	// LastSuccess is when the last completed refresh ended; Age, in
	// seconds, is since then (since the daemon first knew the job, if it
	// never succeeded); Stale compares it with StaleAfter (seconds; 0:
	// none).
	LastSuccess *time.Time `json:"last_success,omitempty"`
	Age         float64    `json:"last_success_age_seconds"`
	StaleAfter  float64    `json:"stale_after_seconds,omitempty"`
	Stale       bool       `json:"stale"`
	Failures    int        `json:"consecutive_failures"`
	// LastError is the last failed run's error in a few words.
	LastError string      `json:"last_error,omitempty"`
	Recent    []store.Run `json:"recent,omitempty"`
}

// short cuts an error to a few words for an overview.
func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

func (c *runCmd) jobViews(ctx context.Context, recent int) ([]jobView, error) {
	c.mu.Lock()
	cfg := c.cfg
	c.mu.Unlock()
	out := make([]jobView, 0, len(cfg.Jobs))
	deps := dependents(cfg)
	for _, j := range cfg.Jobs {
		v, err := c.jobView(ctx, j, recent, deps[j.Name])
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// jobView is one job as the API and the pages show it, with its recent
// runs, newest first.
func (c *runCmd) jobView(ctx context.Context, j *configs.Job, recent int, deps []string) (jobView, error) {
	v := jobView{Name: j.Name, Schedule: j.Schedule, Timezone: j.Effective.Timezone, Enabled: *j.Enabled, Refresh: "classic",
		Workspace: j.Workspace, WorkspaceID: j.WorkspaceID, Dataset: j.Dataset, DatasetID: j.DatasetID, DataflowID: j.DataflowID,
		After: j.After, Dependents: deps}
	switch {
	case j.IsDataflow():
		v.Refresh = "dataflow"
	case j.Refresh != nil:
		v.Refresh = "enhanced"
	}
	if len(j.After) > 0 && j.Parsed != nil {
		v.OnUpstream = string(j.OnUpstream)
	}
	if usesNames(j) {
		ws, item, err := c.names.peek(j)
		v.WorkspaceID, v.DatasetID = ws, item
		if j.Dataset == "" {
			v.DatasetID = j.DatasetID
		}
		if err != nil {
			v.NameError = err.Error()
		}
	}
	if slot, at, ok := c.sched.Next(j.Name); ok {
		t := at.In(j.Location)
		v.NextRun, v.NextNote = &t, slot.Note
	}
	runs, err := c.store.Runs(ctx, store.Query{Job: j.Name, Limit: recent})
	if err != nil {
		return v, err
	}
	v.Recent = runs
	// The last result is the last run that tried: skipped and missed
	// slots are decisions, not results.
	for _, r := range runs {
		if r.Status.Result() {
			v.LastStatus = r.Status
			break
		}
	}
	for _, r := range runs {
		if r.Status.Failure() {
			msg := r.Error
			if r.Code != "" {
				msg = r.Code + ": " + msg
			}
			v.LastError = short(msg, 120)
			break
		}
	}
	v.setFreshness(c.fresh.get(j.Name))
	return v, nil
}

// setFreshness fills in a job's health: last success, its age against
// stale_after, failures in a row.
func (v *jobView) setFreshness(f fresh) {
	if !f.LastSuccess.IsZero() {
		t := f.LastSuccess
		v.LastSuccess = &t
	}
	v.Age, v.StaleAfter, v.Stale, v.Failures = f.Age.Seconds(), f.StaleAfter.Seconds(), f.Stale, f.Failures
}

func (c *runCmd) apiJobs(w http.ResponseWriter, r *http.Request) {
	views, err := c.jobViews(r.Context(), 10)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if views == nil {
		views = []jobView{}
	}
	writeJSONResponse(w, http.StatusOK, views)
}

// apiRuns is GET /api/runs?job=&limit=&after=: one page of runs, newest
// first. limit is capped at store.MaxPage; when there may be more, the
// Link header (rel="next") gives the next page's URL, whose after cursor
// is the last run of this page ("slot-unix-nanoseconds.id").
func (c *runCmd) apiRuns(w http.ResponseWriter, r *http.Request) {
	q := store.Query{Job: r.URL.Query().Get("job"), Limit: 100}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a positive integer (at most %d per page)", store.MaxPage))
			return
		}
		q.Limit = min(n, store.MaxPage)
	}
	if a := r.URL.Query().Get("after"); a != "" {
		cur, err := parseCursor(a)
		if err != nil {
			apiError(w, http.StatusBadRequest, "after must be the cursor from a Link header: SLOT.ID")
			return
		}
		q.After = cur
	}
	runs, err := c.store.Runs(r.Context(), q)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if runs == nil {
		runs = []store.Run{}
	}
	if len(runs) == q.PageSize() {
		next := *r.URL
		v := next.Query()
		v.Set("limit", strconv.Itoa(q.PageSize()))
		v.Set("after", formatCursor(store.CursorOf(runs[len(runs)-1])))
		next.RawQuery = v.Encode()
		w.Header().Set("Link", fmt.Sprintf("<%s>; rel=\"next\"", next.RequestURI()))
	}
	writeJSONResponse(w, http.StatusOK, runs)
}

func formatCursor(c *store.Cursor) string {
	return strconv.FormatInt(c.Slot.UnixNano(), 10) + "." + strconv.FormatInt(c.ID, 10)
}

func parseCursor(s string) (*store.Cursor, error) {
	a, b, ok := strings.Cut(s, ".")
	slot, err1 := strconv.ParseInt(a, 10, 64)
	id, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("bad cursor %q", s)
	}
	return &store.Cursor{Slot: time.Unix(0, slot).UTC(), ID: id}, nil
}

// apiReplicas is GET /api/replicas: the replicas sharing the state (one
// with SQLite): id, host, version, last heartbeat, lease expiry, runs owned
// in flight. Every replica schedules and the database decides each slot,
// so there is no leader.
func (c *runCmd) apiReplicas(w http.ResponseWriter, r *http.Request) {
	reps, err := c.store.Replicas(r.Context())
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if reps == nil {
		reps = []store.Replica{}
	}
	writeJSONResponse(w, http.StatusOK, map[string]any{"leader": nil, "replicas": reps})
}

// ownGroup: the file's group is this process's primary group.
func ownGroup(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Gid) == os.Getgid()
}
