package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/store"
)

// startHTTP serves /metrics, /healthz, /readyz, the API and the status
// page. POSTs need the bearer token from http.token_file.
func (c *runCmd) startHTTP(cfg *configs.Config) error {
	if cfg.HTTP.Listen == "off" {
		return nil
	}
	token := ""
	if cfg.HTTP.TokenFile != "" {
		b, err := os.ReadFile(cfg.HTTP.TokenFile)
		if err != nil {
			return &exitError{exitUsage, fmt.Errorf("read http.token_file: %w", err)}
		}
		token = strings.TrimSpace(string(b))
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", c.readyz)
	mux.HandleFunc("GET /api/jobs", c.apiJobs)
	mux.HandleFunc("GET /api/runs", c.apiRuns)
	mux.HandleFunc("POST /api/jobs/{name}/run", func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			apiError(w, http.StatusForbidden, "POSTs are disabled: set http.token_file to a file holding a bearer token")
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pbirefresh"`)
			apiError(w, http.StatusUnauthorized, "a valid bearer token (http.token_file) is required")
			return
		}
		name := r.PathValue("name")
		c.mu.Lock()
		known := c.cfg.Job(name) != nil
		c.mu.Unlock()
		if !known {
			apiError(w, http.StatusNotFound, fmt.Sprintf("no job %q", name))
			return
		}
		slot, err := c.sched.Trigger(c.base, name)
		if err != nil {
			apiError(w, http.StatusConflict, err.Error())
			return
		}
		writeJSONResponse(w, http.StatusAccepted, map[string]any{"job": name, "slot": slot, "kind": "manual"})
	})
	mux.HandleFunc("GET /{$}", c.statusPage)
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return &exitError{exitCannotWork, &hintErr{fmt.Errorf("listen on %s: %w", cfg.HTTP.Listen, err), "another process holds the port: change http.listen, or set it to off"}}
	}
	c.httpAddr = ln.Addr().String()
	c.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute}
	go c.httpSrv.Serve(ln)
	c.logger.Info("http server listening", "addr", c.httpAddr, "posts", token != "")
	return nil
}

type hintErr struct {
	err  error
	hint string
}

func (e *hintErr) Error() string { return e.err.Error() }
func (e *hintErr) Unwrap() error { return e.err }
func (e *hintErr) Hint() string  { return e.hint }

func writeJSONResponse(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSONResponse(w, status, map[string]string{"error": msg})
}

func (c *runCmd) readyz(w http.ResponseWriter, r *http.Request) {
	var problems []string
	c.mu.Lock()
	if c.cfg == nil {
		problems = append(problems, "configuration not loaded")
	}
	c.mu.Unlock()
	if err := c.store.Ping(r.Context()); err != nil {
		problems = append(problems, "state database: "+err.Error())
	}
	if !c.scheduling.Load() {
		problems = append(problems, "scheduler not running")
	}
	if len(problems) > 0 {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "problems": problems})
		return
	}
	writeJSONResponse(w, http.StatusOK, map[string]any{"ready": true})
}

// jobView is a job as the API and the status page show it.
type jobView struct {
	Name       string      `json:"name"`
	Schedule   string      `json:"schedule,omitempty"`
	Timezone   string      `json:"timezone"`
	Enabled    bool        `json:"enabled"`
	Refresh    string      `json:"refresh"` // enhanced | classic
	NextRun    *time.Time  `json:"next_run,omitempty"`
	NextNote   string      `json:"next_note,omitempty"`
	LastStatus string      `json:"last_status,omitempty"`
	Recent     []store.Run `json:"recent,omitempty"`
}

func (c *runCmd) jobViews(ctx context.Context, recent int) ([]jobView, error) {
	c.mu.Lock()
	cfg := c.cfg
	c.mu.Unlock()
	var out []jobView
	for _, j := range cfg.Jobs {
		v := jobView{Name: j.Name, Schedule: j.Schedule, Timezone: j.Effective.Timezone, Enabled: *j.Enabled, Refresh: "classic"}
		if j.Refresh != nil {
			v.Refresh = "enhanced"
		}
		if slot, at, ok := c.sched.Next(j.Name); ok {
			t := at.In(j.Location)
			v.NextRun, v.NextNote = &t, slot.Note
		}
		runs, err := c.store.Runs(ctx, j.Name, recent)
		if err != nil {
			return nil, err
		}
		v.Recent = runs
		// The last result is the last run that ran: skipped and missed
		// slots are decisions, not results.
		for _, r := range runs {
			if r.Status != store.Pending && r.Status != store.Running && r.Status != store.Skipped && r.Status != store.Missed {
				v.LastStatus = r.Status
				break
			}
		}
		out = append(out, v)
	}
	return out, nil
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

func (c *runCmd) apiRuns(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			apiError(w, http.StatusBadRequest, "limit must be an integer from 1 to 10000")
			return
		}
		limit = n
	}
	runs, err := c.store.Runs(r.Context(), r.URL.Query().Get("job"), limit)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if runs == nil {
		runs = []store.Run{}
	}
	writeJSONResponse(w, http.StatusOK, runs)
}
