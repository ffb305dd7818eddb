package deploy

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// daemonMetrics are the metrics pbirefresh exposes, by type. The rules and
// the dashboard may query these and Prometheus's own up, nothing else.
var daemonMetrics = map[string]string{
	"pbirefresh_runs_total":                     "counter",
	"pbirefresh_run_duration_seconds":           "histogram",
	"pbirefresh_last_success_timestamp_seconds": "gauge",
	"pbirefresh_last_success_age_seconds":       "gauge",
	"pbirefresh_stale_after_seconds":            "gauge",
	"pbirefresh_job_stale":                      "gauge",
	"pbirefresh_consecutive_failures":           "gauge",
	"pbirefresh_next_run_timestamp_seconds":     "gauge",
	"pbirefresh_refreshes_in_flight":            "gauge",
	"pbirefresh_powerbi_requests_total":         "counter",
	"pbirefresh_powerbi_throttled_total":        "counter",
	"pbirefresh_token_requests_total":           "counter",
	"pbirefresh_token_failures_total":           "counter",
	"pbirefresh_keyvault_reads_total":           "counter",
	"pbirefresh_notifications_total":            "counter",
	"pbirefresh_ready":                          "gauge",
	"pbirefresh_build_info":                     "gauge",
	"pbirefresh_replicas_alive":                 "gauge",
	"pbirefresh_lease_held":                     "gauge",
	"pbirefresh_takeovers_total":                "counter",
	"pbirefresh_leases_lost_total":              "counter",
}

// family returns the metric a series name belongs to (a histogram's _bucket,
// _sum and _count series belong to the histogram), or "" if none does.
func family(series string) string {
	if series == "up" {
		return "up"
	}
	if _, ok := daemonMetrics[series]; ok {
		return series
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok && daemonMetrics[base] == "histogram" {
			return base
		}
	}
	return ""
}

// need returns a tool's path; outside CI a missing tool skips the test, in
// CI it fails it (.ci/run installs them).
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing; .ci/run must install it", tool)
		}
		t.Skipf("%s not installed", tool)
	}
	return p
}

// TestQueriedMetricsExist: every metric that a rule, a panel or a template
// variable queries is one the daemon exposes (or up), and every metric the
// daemon exposes is alerted on or shown.
func TestQueriedMetricsExist(t *testing.T) {
	qs, err := queries()
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	var rules, panels int
	for _, q := range qs {
		if len(q.Metrics) == 0 && !strings.Contains(q.Where, "variable") {
			t.Errorf("%s: no metric in %q", q.Where, q.Expr)
		}
		for _, n := range q.Metrics {
			f := family(n)
			if f == "" {
				t.Errorf("%s: unknown metric %s in %q", q.Where, n, q.Expr)
				continue
			}
			if daemonMetrics[f] == "histogram" && n == f {
				t.Errorf("%s: histogram %s queried without _bucket, _sum or _count", q.Where, n)
			}
			used[f] = true
		}
		if strings.HasPrefix(q.Where, "rules:") {
			rules++
		} else {
			panels++
		}
	}
	t.Logf("%d rule expressions, %d dashboard queries, %d metrics used", rules, panels, len(used))
	if rules == 0 || panels == 0 {
		t.Fatalf("rules: %d queries, dashboard: %d queries", rules, panels)
	}
	for name := range daemonMetrics {
		if !used[name] {
			t.Errorf("%s is neither alerted on nor shown", name)
		}
	}
	if !used["up"] {
		t.Error("up is not queried: nothing notices a daemon that is down")
	}
}

func TestMetricNames(t *testing.T) {
	names, err := MetricNames()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("not sorted and unique: %v", names)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "pbirefresh_") || family(n) == "" {
			t.Errorf("%s is not a daemon metric", n)
		}
	}
	for _, want := range []string{"pbirefresh_run_duration_seconds_bucket", "pbirefresh_job_stale", "pbirefresh_runs_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s missing from %v", want, names)
		}
	}
	t.Logf("%d names: %s", len(names), strings.Join(names, " "))
}

func TestExprMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up{job="pbirefresh"} == 0`, []string{"up"}},
		{`pbirefresh_job_stale == 1 or on(instance, job) a > on(instance, job) b`, []string{"pbirefresh_job_stale", "a", "b"}},
		{`histogram_quantile(0.95, sum by (job, le) (rate(x_bucket{job=~"$job"}[$window])))`, []string{"x_bucket"}},
		{`sum(rate(x[5m])) by (endpoint, code) / ignoring(code) group_left sum(y)`, []string{"x", "y"}},
		{`a * on(job) group_left(version) b offset 1h`, []string{"a", "b"}},
		{`3600 * sum by (result) (increase(x{instance=~"$instance", job=~"${job:regex}"}[$__rate_interval]))`, []string{"x"}},
		{`count(x >= 3) or vector(0)`, []string{"x"}},
		{`max by(job)(x) + sum without (instance) (y) - topk(3, z)`, []string{"x", "y", "z"}},
		{`label_replace(x, "dst", "$1 by (y)", "src", "(.*)") unless z`, []string{"x", "z"}},
		{`{__name__="pbirefresh_ready", job="a"} and bool 1e3 < .5`, []string{"pbirefresh_ready"}},
		{"a # a comment with b\n+ c:rule", []string{"a", "c:rule"}},
		{`time() - x @ end()`, []string{"x"}},
		{`absent(x{a='it\'s'})`, []string{"x"}},
	} {
		got, err := exprMetricNames(tc.expr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("exprMetricNames(%q) = %q, %v; want %q", tc.expr, got, err, tc.want)
		}
	}
	for _, bad := range []string{`{__name__=~"pbirefresh_.*"}`, `x{job="a}`, `rate(x[5m`, `x{job}`} {
		if got, err := exprMetricNames(bad); err == nil {
			t.Errorf("exprMetricNames(%q) = %q, want an error", bad, got)
		}
	}
}

func TestTemplateSelector(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{`label_values(pbirefresh_build_info, instance)`, `pbirefresh_build_info`},
		{`label_values(x{instance=~"$instance", a="b,c"}, job)`, `x{instance=~"$instance", a="b,c"}`},
		{`label_values(job)`, ``},
		{`query_result(topk(5, x))`, `topk(5, x)`},
	} {
		if got, err := templateSelector(tc.query); err != nil || got != tc.want {
			t.Errorf("templateSelector(%q) = %q, %v; want %q", tc.query, got, err, tc.want)
		}
	}
	if _, err := templateSelector(`metrics(pbirefresh_.*)`); err == nil {
		t.Error("metrics(...) accepted")
	}
}
