package main

import (
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/scheduler"
)

// metrics are the daemon's Prometheus metrics, on its own registry (no
// globals). Names end in _total or a unit.
type metrics struct {
	reg         *prometheus.Registry
	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	lastSuccess *prometheus.GaugeVec
	inFlight    prometheus.Gauge
	requests    *prometheus.CounterVec
	throttled   prometheus.Counter
	tokens      *prometheus.CounterVec
	vaultReads  *prometheus.CounterVec
	notifies    *prometheus.CounterVec
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

func newMetrics(sched func() *scheduler.Scheduler, jobs func() []string) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pbirefresh_runs_total",
			Help: "Runs by job and result (completed, failed, cancelled, disabled, timed_out, lost, skipped, missed, quota_exceeded, error)."}, []string{"job", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pbirefresh_run_duration_seconds",
			Help:    "Duration of runs that started a refresh, from the POST to the end.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}}, []string{"job"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pbirefresh_last_success_timestamp_seconds",
			Help: "When the job's last completed refresh ended (Unix time)."}, []string{"job"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pbirefresh_refreshes_in_flight",
			Help: "Runs started and not yet ended (including those reattached after a restart)."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pbirefresh_powerbi_requests_total",
			Help: "Power BI REST requests by endpoint and HTTP status code (0: no answer)."}, []string{"endpoint", "code"}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{Name: "pbirefresh_powerbi_throttled_total",
			Help: "Power BI answers 429 Too Many Requests."}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pbirefresh_token_requests_total",
			Help: "Access tokens obtained from Entra ID, by credential."}, []string{"credential"}),
		vaultReads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pbirefresh_keyvault_reads_total",
			Help: "Key Vault secret reads by result (ok, error)."}, []string{"result"}),
		notifies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pbirefresh_notifications_total",
			Help: "Notifications by target and result (sent, failed)."}, []string{"target", "result"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pbirefresh_build_info", Help: "Build information.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}})
	build.Set(1)
	m.reg.MustRegister(m.runs, m.duration, m.lastSuccess, m.inFlight, m.requests, m.throttled, m.tokens, m.vaultReads, m.notifies, build,
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

// ended records a finished run.
func (m *metrics) ended(job string, res refresh.Result) {
	m.runs.WithLabelValues(job, string(res.Outcome)).Inc()
	if res.RefreshID != "" && !res.End.IsZero() {
		m.duration.WithLabelValues(job).Observe(res.End.Sub(res.Start).Seconds())
	}
	if res.Outcome == pbirefresh.Completed {
		end := res.End
		if end.IsZero() {
			end = time.Now()
		}
		m.lastSuccess.WithLabelValues(job).Set(float64(end.UnixNano()) / 1e9)
	}
}
