package main

import (
	"runtime"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/scheduler"
)

// metrics are the daemon's Prometheus metrics, on its own registry (no
// globals). Names end in _total or a unit.
type metrics struct {
	reg         *prometheus.Registry
	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	inFlight    prometheus.Gauge
	requests    *prometheus.CounterVec
	throttled   prometheus.Counter
	tokens      *prometheus.CounterVec
	tokenErrors *prometheus.CounterVec
	vaultReads  *prometheus.CounterVec
	notifies    *prometheus.CounterVec
	takeovers   prometheus.Counter
	leasesLost  prometheus.Counter
}

// nextRuns reports each job's next run at scrape time.
type nextRuns struct {
	desc  *prometheus.Desc
	sched func() *scheduler.Scheduler
	jobs  func() []string
}

func (n *nextRuns) Describe(ch chan<- *prometheus.Desc) { ch <- n.desc }
func (n *nextRuns) Collect(ch chan<- prometheus.Metric) {
	s := n.sched()
	if s == nil {
		return
	}
	for _, job := range n.jobs() {
		if _, at, ok := s.Next(job); ok {
			ch <- prometheus.MustNewConstMetric(n.desc, prometheus.GaugeValue, float64(at.UnixNano())/1e9, job)
		}
	}
}

// replicaGauges reports, at scrape time, the replicas alive and whether
// this one holds its lease.
type replicaGauges struct {
	alive, held *prometheus.Desc
	state       func() (alive int, held bool, ok bool)
}

func (r *replicaGauges) Describe(ch chan<- *prometheus.Desc) { ch <- r.alive; ch <- r.held }
func (r *replicaGauges) Collect(ch chan<- prometheus.Metric) {
	alive, held, ok := r.state()
	if !ok {
		return
	}
	h := 0.0
	if held {
		h = 1
	}
	ch <- prometheus.MustNewConstMetric(r.alive, prometheus.GaugeValue, float64(alive))
	ch <- prometheus.MustNewConstMetric(r.held, prometheus.GaugeValue, h)
}

// healthGauges reports, at scrape time, each job's freshness and whether
// the daemon is ready.
type healthGauges struct {
	lastSuccess, age, staleAfter, stale, failures, ready *prometheus.Desc
	jobs                                                 func() map[string]fresh
	isReady                                              func() bool
}

func newHealthGauges(jobs func() map[string]fresh, ready func() bool) *healthGauges {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &healthGauges{
		lastSuccess: d("pbirefresh_last_success_timestamp_seconds", "When the job's last completed refresh ended (Unix time).", "job"),
		age:         d("pbirefresh_last_success_age_seconds", "Seconds since the job's last completed refresh ended (since the daemon first knew the job, if it never succeeded).", "job"),
		staleAfter:  d("pbirefresh_stale_after_seconds", "The job's stale_after threshold (jobs with one only).", "job"),
		stale:       d("pbirefresh_job_stale", "1 while the job's last success is older than its stale_after.", "job"),
		failures:    d("pbirefresh_consecutive_failures", "Runs in a row that ended without success since the last completed one (skipped and missed slots do not count).", "job"),
		ready:       d("pbirefresh_ready", "1 when /readyz answers 200: config loaded, state database answering and writable, lease held, scheduler running."),
		jobs:        jobs, isReady: ready,
	}
}

func (h *healthGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{h.lastSuccess, h.age, h.staleAfter, h.stale, h.failures, h.ready} {
		ch <- d
	}
}

func (h *healthGauges) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for job, f := range h.jobs() {
		if !f.LastSuccess.IsZero() {
			gauge(h.lastSuccess, float64(f.LastSuccess.UnixNano())/1e9, job)
		}
		gauge(h.age, f.Age.Seconds(), job)
		if f.StaleAfter > 0 {
			gauge(h.staleAfter, f.StaleAfter.Seconds(), job)
		}
		stale := 0.0
		if f.Stale {
			stale = 1
		}
		gauge(h.stale, stale, job)
		gauge(h.failures, float64(f.Failures), job)
	}
	ready := 0.0
	if h.isReady() {
		ready = 1
	}
	gauge(h.ready, ready)
}

func newMetrics(sched func() *scheduler.Scheduler, jobs func() []string, replicas func() (int, bool, bool), health *healthGauges) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pbirefresh_runs_total",
			Help: "Runs by job and result (completed, failed, cancelled, disabled, timed_out, lost, skipped, missed, quota_exceeded, error)."}, []string{"job", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pbirefresh_run_duration_seconds",
			Help:    "Duration of runs that started a refresh, from the POST to the end.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}}, []string{"job"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pbirefresh_refreshes_in_flight",
			Help: "Runs started and not yet ended (including those reattached after a restart)."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pbirefresh_powerbi_requests_total",
			Help: "Power BI REST requests by endpoint and HTTP status code (0: no answer)."}, []string{"endpoint", "code"}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{Name: "pbirefresh_powerbi_throttled_total",
			Help: "Power BI answers 429 Too Many Requests."}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pbirefresh_token_requests_total",
			Help: "Access tokens obtained from Entra ID, by credential."}, []string{"credential"}),
		tokenErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pbirefresh_token_failures_total",
			Help: "Failures to get an access token from Entra ID (or the secret for it), by credential."}, []string{"credential"}),
		vaultReads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pbirefresh_keyvault_reads_total",
			Help: "Key Vault secret reads by result (ok, error)."}, []string{"result"}),
		notifies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pbirefresh_notifications_total",
			Help: "Notifications by target and result (sent, failed)."}, []string{"target", "result"}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "pbirefresh_takeovers_total",
			Help: "Runs in flight this replica took over from replicas whose lease had expired."}),
		leasesLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "pbirefresh_leases_lost_total",
			Help: "Times this replica lost its lease (it then stops its runs and joins again)."}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pbirefresh_build_info", Help: "Build information.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}})
	build.Set(1)
	m.vaultReads.WithLabelValues("ok")
	m.vaultReads.WithLabelValues("error")
	m.reg.MustRegister(m.runs, m.duration, m.inFlight, m.requests, m.throttled, m.tokens, m.tokenErrors, m.vaultReads, m.notifies, build,
		m.takeovers, m.leasesLost, health,
		&replicaGauges{alive: prometheus.NewDesc("pbirefresh_replicas_alive", "Replicas whose lease is valid on the database's clock (1 with SQLite state).", nil, nil),
			held: prometheus.NewDesc("pbirefresh_lease_held", "1 while this replica holds its lease and may claim and post.", nil, nil), state: replicas},
		&nextRuns{desc: prometheus.NewDesc("pbirefresh_next_run_timestamp_seconds", "When the job fires next (Unix time, jitter included).", []string{"job"}, nil), sched: sched, jobs: jobs},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe is the refresh client's hook.
func (m *metrics) observe(endpoint string, status int) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	if status == 429 {
		m.throttled.Inc()
	}
}

// vaultRead is the secret store's hook: Key Vault reads only.
func (m *metrics) vaultRead(ref string, err error) {
	if !strings.HasPrefix(ref, "https://") {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.vaultReads.WithLabelValues(result).Inc()
}

// forget deletes the run series of the jobs a reload removed (or renamed):
// without it /metrics reported them until the daemon restarted. A run of
// such a job still in flight when the reload lands recreates its series
// when it ends, and they stay until the next restart.
func (m *metrics) forget(jobs []string) {
	for _, job := range jobs {
		m.runs.DeletePartialMatch(prometheus.Labels{"job": job})
		m.duration.DeleteLabelValues(job)
	}
}

// ended records a finished run.
func (m *metrics) ended(job string, res refresh.Result) {
	m.runs.WithLabelValues(job, string(res.Outcome)).Inc()
	// From the POST: not the wait for another refresh before it.
	if res.RefreshID != "" && !res.Posted.IsZero() && !res.End.Before(res.Posted) {
		m.duration.WithLabelValues(job).Observe(res.End.Sub(res.Posted).Seconds())
	}
}
