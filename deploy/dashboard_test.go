package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The data source every panel and target must use: the dashboard's
// datasource variable, so that it imports and provisions without edits.
const wantDatasource = `{"type":"prometheus","uid":"${datasource}"}`

// perJobMetrics carry the job label, so their panels follow the job variable.
var perJobMetrics = map[string]bool{
	"pbirefresh_runs_total": true, "pbirefresh_run_duration_seconds_bucket": true,
	"pbirefresh_last_success_timestamp_seconds": true, "pbirefresh_last_success_age_seconds": true,
	"pbirefresh_stale_after_seconds": true, "pbirefresh_job_stale": true,
	"pbirefresh_consecutive_failures": true, "pbirefresh_next_run_timestamp_seconds": true,
}

type gPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []gPanel `json:"panels"`
}

type gDashboard struct {
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	SchemaVersion int      `json:"schemaVersion"`
	Panels        []gPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Multi      bool            `json:"multi"`
			IncludeAll bool            `json:"includeAll"`
			Datasource json.RawMessage `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

func readDashboard(t *testing.T) ([]gPanel, gDashboard) {
	t.Helper()
	var d gDashboard
	if err := json.Unmarshal(dashboardFile, &d); err != nil {
		t.Fatalf("grafana/pbirefresh-dashboard.json: %v", err)
	}
	var all []gPanel
	var walk func([]gPanel)
	walk = func(ps []gPanel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return all, d
}

func compact(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestDashboardLayout: variables, data sources, ids and grid positions.
func TestDashboardLayout(t *testing.T) {
	panels, d := readDashboard(t)
	if d.UID != "pbirefresh" || d.Title != "pbirefresh" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		switch v.Name {
		case "datasource":
			if v.Type != "datasource" || compact(v.Query) != `"prometheus"` {
				t.Errorf("variable datasource: type %q, query %s", v.Type, v.Query)
			}
		case "job", "instance":
			if v.Type != "query" || !v.Multi || !v.IncludeAll || compact(v.Datasource) != wantDatasource {
				t.Errorf("variable %s: type %q multi %v includeAll %v datasource %s", v.Name, v.Type, v.Multi, v.IncludeAll, v.Datasource)
			}
		}
	}
	for _, name := range []string{"datasource", "instance", "job", "window"} {
		if _, ok := vars[name]; !ok {
			t.Errorf("no %s variable", name)
		}
	}
	ids := map[int]string{}
	for _, p := range panels {
		if other, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if got := compact(p.Datasource); got != wantDatasource {
			t.Errorf("panel %q: datasource %s, want %s", p.Title, got, wantDatasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no targets", p.Title)
		}
		for _, tg := range p.Targets {
			if got := compact(tg.Datasource); got != wantDatasource {
				t.Errorf("panel %q target %s: datasource %s", p.Title, tg.RefID, got)
			}
		}
	}
}

// TestDashboardQueries: each panel follows the instance and job variables,
// and the panels the operators asked for are there.
func TestDashboardQueries(t *testing.T) {
	qs, err := dashboardQueries(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, q := range qs {
		if strings.Contains(q.Where, "variable") {
			continue
		}
		exprs = append(exprs, q.Expr)
		if !strings.Contains(q.Expr, `instance=~"$instance"`) {
			t.Errorf("%s ignores the instance variable: %s", q.Where, q.Expr)
		}
		for _, m := range q.Metrics {
			if perJobMetrics[m] && !strings.Contains(q.Expr, `job=~"$job"`) {
				t.Errorf("%s: %s without the job variable: %s", q.Where, m, q.Expr)
			}
		}
	}
	all := strings.Join(exprs, "\n")
	for what, re := range map[string]string{
		"runs by result (rate)":           `sum by \(result\) \(rate\(pbirefresh_runs_total\{`,
		"duration p50 by job":             `histogram_quantile\(0\.5, sum by \(job, le\) \(rate\(pbirefresh_run_duration_seconds_bucket\{`,
		"duration p95 by job":             `histogram_quantile\(0\.95, sum by \(job, le\) \(rate\(pbirefresh_run_duration_seconds_bucket\{`,
		"freshness: age vs stale_after":   `pbirefresh_last_success_age_seconds\{[^}]*\} / on\(instance, job\) pbirefresh_stale_after_seconds`,
		"in flight":                       `pbirefresh_refreshes_in_flight\{`,
		"throttling":                      `rate\(pbirefresh_powerbi_throttled_total\{`,
		"requests by endpoint and code":   `sum by \(endpoint, code\) \(rate\(pbirefresh_powerbi_requests_total\{`,
		"token failures":                  `pbirefresh_token_failures_total\{`,
		"Key Vault reads by result":       `sum by \(result\) \(increase\(pbirefresh_keyvault_reads_total\{`,
		"stale jobs":                      `pbirefresh_job_stale\{`,
		"notifications by target, result": `sum by \(target, result\) \(increase\(pbirefresh_notifications_total\{`,
	} {
		if !regexp.MustCompile(re).MatchString(all) {
			t.Errorf("no panel shows %s (/%s/)", what, re)
		}
	}
}

// TestDashboardPromQL: with Grafana's variables replaced by values, each
// query is PromQL that promtool accepts (as a recording rule).
func TestDashboardPromQL(t *testing.T) {
	promtool := need(t, "promtool")
	qs, err := dashboardQueries(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{
		"instance": ".*", "job": ".*", "window": "1d",
		"__rate_interval": "4m", "__interval": "1m", "__range": "1d",
	}
	vars := regexp.MustCompile(`\$\{?(\w+)(:\w+)?\}?`)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, q := range qs {
		expr := vars.ReplaceAllStringFunc(q.Expr, func(v string) string {
			name := vars.FindStringSubmatch(v)[1]
			val, ok := values[name]
			if !ok {
				t.Errorf("%s: variable $%s has no test value", q.Where, name)
			}
			return val
		})
		if expr == "" { // label_values(label) selects no series
			continue
		}
		e, _ := json.Marshal(expr) // JSON strings are YAML strings
		fmt.Fprintf(&rules, "      - record: dashboard:query_%d # %s\n        expr: %s\n", i, strings.ReplaceAll(q.Where, "\n", " "), e)
	}
	file := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s\n%s", err, out, rules.String())
	}
	t.Logf("%d dashboard queries parse: %s", len(qs), strings.Join(strings.Fields(string(out)), " "))
}
