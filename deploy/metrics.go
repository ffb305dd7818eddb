package deploy

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// The files that the packages install under /usr/share/pbirefresh.
var (
	//go:embed prometheus/pbirefresh.rules.yml
	rulesFile []byte
	//go:embed grafana/pbirefresh-dashboard.json
	dashboardFile []byte
)

// daemonPrefix starts the name of every metric that pbirefresh exposes.
const daemonPrefix = "pbirefresh_"

// MetricNames returns, sorted and once each, the names of the daemon's metrics
// (those starting with "pbirefresh_") that the alerting rules and the Grafana
// dashboard query. A histogram appears under the series name queried
// (pbirefresh_run_duration_seconds_bucket). Series that Prometheus makes
// itself, such as up, are left out.
func MetricNames() ([]string, error) {
	qs, err := queries()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, q := range qs {
		for _, n := range q.Metrics {
			if strings.HasPrefix(n, daemonPrefix) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// query is one PromQL expression of the rules or the dashboard.
type query struct {
	Where   string   // "rules: alert PbirefreshDown", "dashboard: panel "Ready" target A"
	Expr    string   // as written, Grafana variables included
	Metrics []string // metric names it selects, in order of appearance
}

// queries returns the expressions of both embedded files.
func queries() ([]query, error) {
	rq, err := ruleQueries(rulesFile)
	if err != nil {
		return nil, fmt.Errorf("prometheus/pbirefresh.rules.yml: %w", err)
	}
	dq, err := dashboardQueries(dashboardFile)
	if err != nil {
		return nil, fmt.Errorf("grafana/pbirefresh-dashboard.json: %w", err)
	}
	return append(rq, dq...), nil
}

// ruleQueries returns the expr of every alerting and recording rule.
func ruleQueries(b []byte) ([]query, error) {
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	var qs []query
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			where := "rules: alert " + r.Alert
			if r.Record != "" {
				where = "rules: record " + r.Record
			}
			q, err := newQuery(where, r.Expr)
			if err != nil {
				return nil, err
			}
			qs = append(qs, q)
		}
	}
	return qs, nil
}

// dashboardPanel is the part of a Grafana panel that holds queries; rows
// keep their panels inside when collapsed.
type dashboardPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"`
}

// dashboardQueries returns the expr of every panel target (rows included)
// and the metric selectors of the template variables' queries.
func dashboardQueries(b []byte) ([]query, error) {
	var d struct {
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	var qs []query
	var walk func([]dashboardPanel) error
	walk = func(ps []dashboardPanel) error {
		for _, p := range ps {
			for _, t := range p.Targets {
				q, err := newQuery(fmt.Sprintf("dashboard: panel %q target %s", p.Title, t.RefID), t.Expr)
				if err != nil {
					return err
				}
				qs = append(qs, q)
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		where := fmt.Sprintf("dashboard: variable %q", v.Name)
		// Grafana stores the query as a string or, since 9, as {"query": ...}.
		var text string
		if json.Unmarshal(v.Query, &text) != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				return nil, fmt.Errorf("%s: query: %w", where, err)
			}
			text = obj.Query
		}
		expr, err := templateSelector(text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		q, err := newQuery(where, expr)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q)
	}
	return qs, nil
}

func newQuery(where, expr string) (query, error) {
	if strings.TrimSpace(expr) == "" {
		return query{}, fmt.Errorf("%s: empty expression", where)
	}
	names, err := exprMetricNames(expr)
	if err != nil {
		return query{}, fmt.Errorf("%s: %w", where, err)
	}
	return query{Where: where, Expr: expr, Metrics: names}, nil
}

// templateSelector returns the PromQL inside a Grafana Prometheus variable
// query: label_values(selector, label), label_values(label) (none),
// query_result(expr).
func templateSelector(q string) (string, error) {
	q = strings.TrimSpace(q)
	inner := func(fn string) (string, bool) {
		rest, ok := strings.CutPrefix(q, fn+"(")
		if !ok || !strings.HasSuffix(rest, ")") {
			return "", false
		}
		return rest[:len(rest)-1], true
	}
	if args, ok := inner("label_values"); ok {
		i := strings.LastIndexByte(args, ',')
		if i < 0 {
			return "", nil // label_values(label): every series
		}
		return args[:i], nil
	}
	if expr, ok := inner("query_result"); ok {
		return expr, nil
	}
	return "", fmt.Errorf("template query %q: only label_values(...) and query_result(...) are understood", q)
}

// Words of PromQL that are never metric names: operators, modifiers and
// aggregations (which may be followed by "by (...)" before their parenthesis).
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"inf": true, "nan": true, "atan2": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// Words followed by a list of label names in parentheses.
var promqlLabelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// exprMetricNames returns the metric names that a PromQL expression selects,
// in order of appearance. Grafana's $variables are skipped wherever they
// stand. A selector that matches __name__ by regular expression is refused:
// its names cannot be listed.
func exprMetricNames(expr string) ([]string, error) {
	var names []string
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '#': // a comment runs to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '{':
			end, name, err := matchers(s, i)
			if err != nil {
				return nil, err
			}
			if name != "" {
				names = append(names, name)
			}
			i = end
		case c == '[': // a range or subquery: durations and $variables
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed [ at offset %d", i)
			}
			i += end + 1
		case c == '$': // $var, ${var}, ${var:format}
			i++
			if i < len(s) && s[i] == '{' {
				end := strings.IndexByte(s[i:], '}')
				if end < 0 {
					return nil, fmt.Errorf("unclosed ${ at offset %d", i)
				}
				i += end + 1
				continue
			}
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			// numbers (1e3, 0x1f) and durations (5m, 1h30m)
			for i < len(s) && (isIdentChar(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
			word := s[start:i]
			next := i
			for next < len(s) && (s[next] == ' ' || s[next] == '\t' || s[next] == '\n' || s[next] == '\r') {
				next++
			}
			followedByParen := next < len(s) && s[next] == '('
			switch {
			case promqlLabelLists[strings.ToLower(word)]:
				if followedByParen { // group_left may stand without a list
					end := strings.IndexByte(s[next:], ')')
					if end < 0 {
						return nil, fmt.Errorf("unclosed ( after %s at offset %d", word, next)
					}
					i = next + end + 1
				}
			case promqlKeywords[strings.ToLower(word)], followedByParen: // operators, functions, aggregations
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	return names, nil
}

// skipString returns the offset after the string literal starting at i.
func skipString(s string, i int) (int, error) {
	quote := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && quote != '`':
			j++
		case s[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at offset %d", i)
}

// matchers reads the label matchers from the { at i and returns the offset
// after the closing }, with the metric name if one is given as __name__="x".
func matchers(s string, i int) (end int, name string, err error) {
	j := i + 1
	for {
		for j < len(s) && strings.IndexByte(" \t\r\n,", s[j]) >= 0 {
			j++
		}
		if j >= len(s) {
			return 0, "", fmt.Errorf("unclosed { at offset %d", i)
		}
		if s[j] == '}' {
			return j + 1, name, nil
		}
		start := j
		for j < len(s) && isIdentChar(s[j]) {
			j++
		}
		label := s[start:j]
		if label == "" {
			return 0, "", fmt.Errorf("label name expected at offset %d", j)
		}
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		opStart := j
		for j < len(s) && strings.IndexByte("=!~", s[j]) >= 0 {
			j++
		}
		op := s[opStart:j]
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if j >= len(s) || strings.IndexByte("\"'`", s[j]) < 0 {
			return 0, "", fmt.Errorf("string expected after %s%s at offset %d", label, op, j)
		}
		valueEnd, err := skipString(s, j)
		if err != nil {
			return 0, "", err
		}
		if label == "__name__" {
			if op != "=" {
				return 0, "", fmt.Errorf("__name__%s: a metric name matched by %s cannot be listed", op, op)
			}
			name = s[j+1 : valueEnd-1]
		}
		j = valueEnd
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) }
