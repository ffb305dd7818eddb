package main

import (
	"cmp"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
)

// The status pages: an overview of every job (GET /), light enough for a
// tenant's hundreds of jobs, and one page per job (GET /jobs/{name}) with
// its chart and history. Server-rendered, no script, no external asset,
// readable on a phone: below 600 px the tables stack, one labelled block
// per row. html/template escapes every value for its context.

// How many runs the pages read per job: the overview (and a job's
// summary) few, enough to find the last failure's message behind a run in
// flight or a skipped slot; a job's page its history.
const (
	summaryRuns = 3
	historyRuns = 50
)

var statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"when": func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return t.Format("2006-01-02 15:04:05 MST")
	},
	"ts":        func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"dur":       runDuration,
	"chart":     chart,
	"class":     statusClass,
	"badges":    badges,
	"fresh":     freshnessText,
	"lastError": lastError,
	"path":      url.PathEscape,
}).Parse(`{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:1rem;background:#f6f7f9;color:#1d2430}
h1{font-size:1.3rem;margin:.2rem 0 1rem}
h1 a{color:inherit}
a{color:#1f5fb4}
.job{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:.8rem 1rem;margin:0 0 1rem}
.job h2{font-size:1.05rem;margin:0 0 .3rem}
.meta{color:#5b6574;font-size:.9rem}
.sum span{margin-right:1rem}
.s{display:inline-block;padding:0 .45rem;border-radius:9px;font-size:.8rem;color:#fff;background:#8a94a3;white-space:nowrap}
.s-completed,.s-ok{background:#1f8a4c}
.s-failed,.s-error,.s-cancelled,.s-disabled,.s-lost,.s-quota_exceeded,.s-failing,.s-stale{background:#c62f2f}
.s-timed_out{background:#d67a00}.s-running,.s-pending{background:#2f6fc6}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin-top:.5rem}
td,th{text-align:left;padding:.2rem .4rem;border-top:1px solid #eef0f3;vertical-align:top}
th,td.n{white-space:nowrap}
td.d{color:#5b6574;overflow-wrap:anywhere}
.hint{color:#1d2430}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .8rem;margin:.4rem 0}
dt{color:#5b6574}dd{margin:0;overflow-wrap:anywhere}
svg{max-width:100%;height:auto;display:block;margin-top:.5rem}
@media (min-width:601px){.jobs td:nth-child(-n+4){white-space:nowrap}}
@media (max-width:600px){
body{padding:.5rem}
.job{padding:.6rem}
thead{display:none}
table,tbody,tr,td{display:block}
tr{border-top:1px solid #dde1e6;padding:.3rem 0}
td,td.n{border:0;padding:.05rem 0 .05rem 6.2rem;position:relative;white-space:normal;overflow-wrap:anywhere}
td:empty{display:none}
td::before{position:absolute;left:0;width:5.8rem;color:#5b6574}
.jobs td:nth-child(-n+2){display:inline-block;padding-left:0;margin-right:.4rem}
.jobs td:nth-child(3)::before{content:"last success"}
.jobs td:nth-child(4)::before{content:"next run"}
.jobs td:nth-child(5)::before{content:"last error"}
.runs td:nth-child(1)::before{content:"slot (UTC)"}
.runs td:nth-child(2)::before{content:"kind"}
.runs td:nth-child(3)::before{content:"status"}
.runs td:nth-child(4)::before{content:"duration"}
.runs td:nth-child(5)::before{content:"detail"}
.reps td:nth-child(1)::before{content:"replica"}
.reps td:nth-child(2)::before{content:"state"}
.reps td:nth-child(3)::before{content:"heartbeat"}
.reps td:nth-child(4)::before{content:"runs"}
}
</style></head><body>
{{end}}

{{define "overview"}}{{template "head" "pbirefresh"}}<h1>pbirefresh <span class="meta">{{.Now}}</span></h1>
<p class="sum"><span>{{.Total}} job{{if ne .Total 1}}s{{end}}</span><span>{{.Stale}} stale</span><span>{{.Failing}} failing</span><span>{{.Paused}} paused</span></p>
{{if .Replicas}}<section class="job" id="replicas"><h2>replicas</h2><div class="meta">every replica schedules; the state database decides who runs each slot</div>
<table class="reps"><thead><tr><th>replica</th><th>state</th><th>heartbeat (UTC)</th><th>runs</th></tr></thead><tbody>
{{range .Replicas}}<tr><td>{{.ID}}{{if .Self}} (this one){{end}}</td><td>{{if .Alive}}<span class="s s-completed">alive</span>{{else}}<span class="s">dead</span>{{end}}</td><td>{{ts .Heartbeat}}</td><td>{{.Runs}}</td></tr>
{{end}}</tbody></table></section>{{end}}
{{if .Jobs}}<section class="job"><table class="jobs"><thead><tr><th>job</th><th>state</th><th>last success</th><th>next run</th><th>last error</th></tr></thead><tbody>
{{range .Jobs}}<tr id="job-{{.Name}}"><td><a href="/jobs/{{path .Name}}">{{.Name}}</a></td><td>{{range badges .}}<span class="s s-{{.Class}}">{{.Text}}</span> {{end}}</td><td>{{fresh .}}</td><td>{{if .NextRun}}{{when .NextRun}}{{if .NextNote}} ({{.NextNote}}){{end}}{{else if not .Enabled}}paused{{else if not .Schedule}}on demand{{end}}</td><td class="d">{{lastError .}}</td></tr>
{{end}}</tbody></table></section>{{else}}<p>No jobs configured.</p>{{end}}
</body></html>
{{end}}

{{define "job"}}{{template "head" (printf "%s · pbirefresh" .Job.Name)}}{{with .Job}}<h1><a href="/">pbirefresh</a> › {{.Name}}</h1>
<section class="job" id="job-{{.Name}}">
<h2>{{.Name}} {{range badges .}}<span class="s s-{{.Class}}">{{.Text}}</span> {{end}}</h2>
<dl>
<dt>schedule</dt><dd>{{if .Schedule}}<code>{{.Schedule}}</code>{{else}}on demand only{{end}}</dd>
<dt>time zone</dt><dd>{{.Timezone}}</dd>
<dt>next run</dt><dd>{{if .NextRun}}{{when .NextRun}}{{if .NextNote}} ({{.NextNote}}){{end}}{{else if not .Enabled}}paused{{else}}none scheduled{{end}}</dd>
<dt>last success</dt><dd>{{fresh .}}{{if .LastSuccess}}, {{when .LastSuccess}}{{end}}</dd>
<dt>failures in a row</dt><dd>{{.Failures}}</dd>
{{with lastError .}}<dt>last error</dt><dd>{{.}}</dd>
{{end}}<dt>refresh</dt><dd>{{.Refresh}}</dd>
<dt>workspace</dt><dd>{{with .Workspace}}“{{.}}” {{end}}<code>{{or .WorkspaceID "not resolved yet"}}</code></dd>
{{if .DataflowID}}<dt>dataflow</dt><dd><code>{{.DataflowID}}</code></dd>
{{else}}<dt>dataset</dt><dd>{{with .Dataset}}“{{.}}” {{end}}<code>{{or .DatasetID "not resolved yet"}}</code></dd>
{{end}}{{with .NameError}}<dt>names</dt><dd>{{.}}</dd>
{{end}}{{with .After}}<dt>runs after</dt><dd>{{range $i, $u := .}}{{if $i}}, {{end}}<a href="/jobs/{{path $u}}">{{$u}}</a>{{end}}{{with $.Job.OnUpstream}} (on its schedule if they completed since its last run, else {{.}}){{else}} (when they have all completed since its last run){{end}}</dd>
{{end}}{{with .Dependents}}<dt>then runs</dt><dd>{{range $i, $d := .}}{{if $i}}, {{end}}<a href="/jobs/{{path $d}}">{{$d}}</a>{{end}}</dd>
{{end}}</dl>
{{chart .Recent}}
{{if .Recent}}<table class="runs"><thead><tr><th>slot (UTC)</th><th>kind</th><th>status</th><th>duration</th><th>detail</th></tr></thead><tbody>
{{range .Recent}}<tr><td class="n">{{ts .Slot}}</td><td>{{.Kind}}{{if .Upstream}} (<a href="/jobs/{{path .Upstream}}">{{.Upstream}}</a> #{{.UpstreamRun}}){{end}}</td><td><span class="s s-{{class .Status}}">{{.Status}}</span></td><td class="n">{{dur .}}</td><td class="d">{{if or .Error .Code}}<div>{{.Error}}{{with .Code}} [{{.}}]{{end}}</div>{{end}}{{with .Hint}}<div class="hint">fix: {{.}}</div>{{end}}{{with .Note}}<div>{{.}}</div>{{end}}{{with .Owner}}<div>on {{.}}</div>{{end}}</td></tr>
{{end}}</tbody></table>{{else}}<p class="meta">no runs yet</p>{{end}}
</section>{{end}}
</body></html>
{{end}}

{{define "missing"}}{{template "head" "no such job · pbirefresh"}}<h1><a href="/">pbirefresh</a></h1>
<p>No job named “{{.}}” is configured.</p>
</body></html>
{{end}}`))

// badge is a job's state as the pages show it.
type badge struct{ Class, Text string }

// badges are a job's states: stale, failing and paused, which may come
// together; otherwise ok (it has succeeded) or never run.
func badges(v jobView) []badge {
	var out []badge
	if v.Stale {
		out = append(out, badge{"stale", "stale"})
	}
	if v.Failures > 0 {
		out = append(out, badge{"failing", fmt.Sprintf("failing ×%d", v.Failures)})
	}
	if !v.Enabled {
		out = append(out, badge{"paused", "paused"})
	}
	if len(v.Recent) > 0 && v.Recent[0].Status.InFlight() {
		out = append(out, badge{"running", string(v.Recent[0].Status)})
	}
	if v.Stale || v.Failures > 0 {
		return out
	}
	switch {
	case v.LastSuccess != nil || v.LastStatus == pbirefresh.Completed:
		out = append(out, badge{"ok", "ok"})
	case v.LastStatus == "" && len(out) == 0:
		out = append(out, badge{"never", "never run"})
	case v.LastStatus != "":
		out = append(out, badge{statusClass(v.LastStatus), string(v.LastStatus)})
	}
	return out
}

// lastError is what went wrong last, in a few words: the last failure's
// error, or, for a failing job whose last failure has no message (a lost
// refresh, a run interrupted), its status and note.
func lastError(v jobView) string {
	if v.LastError != "" || v.Failures == 0 || v.LastStatus == "" {
		return v.LastError
	}
	s := string(v.LastStatus)
	for _, r := range v.Recent {
		if r.Status.Failure() {
			if r.Note != "" {
				s += ": " + short(r.Note, 120)
			}
			break
		}
	}
	return s
}

// freshnessText is the age of a job's last success against its
// stale_after: "3h ago (stale after 26h)".
func freshnessText(v jobView) string {
	s := "never"
	if v.LastSuccess != nil {
		s = span(time.Duration(v.Age*float64(time.Second))) + " ago"
	}
	if v.StaleAfter > 0 {
		s += " (stale after " + span(time.Duration(v.StaleAfter*float64(time.Second))) + ")"
	}
	return s
}

// span is a duration in at most two units, as an operator says it:
// 45s, 12m 5s, 26h, 3h 20m, 4d 3h.
func span(d time.Duration) string {
	d = d.Round(time.Second)
	two := func(a int64, ua string, b int64, ub string) string {
		if b == 0 {
			return fmt.Sprintf("%d%s", a, ua)
		}
		return fmt.Sprintf("%d%s %d%s", a, ua, b, ub)
	}
	s := int64(d / time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(s, 0))
	case d < time.Hour:
		return two(s/60, "m", s%60, "s")
	case d < 72*time.Hour:
		return two(s/3600, "h", s%3600/60, "m")
	}
	return two(s/86400, "d", s%86400/3600, "h")
}

// byUrgency orders jobs for the overview: stale ones first, then failing
// ones, each by failures in a row (most first), then the rest; by name
// within each.
func byUrgency(a, b jobView) int {
	rank := func(v jobView) int {
		switch {
		case v.Stale:
			return 0
		case v.Failures > 0:
			return 1
		}
		return 2
	}
	return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(b.Failures, a.Failures), strings.Compare(a.Name, b.Name))
}

// statusClass is a status as a CSS class name: only the vocabulary's
// words, anything else is "other".
func statusClass(s pbirefresh.Status) string {
	if pbirefresh.Valid(s, pbirefresh.Statuses()) {
		return string(s)
	}
	return "other"
}

func runDuration(r store.Run) string {
	if d := r.Duration(); d > 0 {
		return d.Round(time.Second).String()
	}
	return ""
}

var statusColors = map[pbirefresh.Status]string{
	pbirefresh.Completed: "#1f8a4c", pbirefresh.Failed: "#c62f2f", pbirefresh.Error: "#c62f2f", pbirefresh.Cancelled: "#c62f2f", pbirefresh.Lost: "#c62f2f",
	pbirefresh.Disabled: "#c62f2f", pbirefresh.QuotaExceeded: "#c62f2f", pbirefresh.TimedOut: "#d67a00", pbirefresh.Running: "#2f6fc6", pbirefresh.Pending: "#2f6fc6",
}

// chart draws the newest runs that fit, oldest left: bar height is the
// duration, colour the outcome; runs without a refresh (skipped, missed)
// are short grey ticks. Every value from the database is escaped.
func chart(runs []store.Run) template.HTML {
	const w, h, bw = 300, 60, 10
	runs = runs[:min(len(runs), (w+2)/(bw+2))]
	if len(runs) == 0 {
		return ""
	}
	var longest time.Duration
	for _, r := range runs {
		longest = max(longest, r.Duration())
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" role="img" aria-label="durations and outcomes of the last %d runs" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`, len(runs), w, h+2, w, h+2)
	for i := range runs {
		r := runs[len(runs)-1-i]
		bar := 4
		if d := r.Duration(); longest > 0 && d > 0 {
			bar = max(4, int(float64(h)*float64(d)/float64(longest)))
		}
		color, ok := statusColors[r.Status]
		if !ok {
			color = "#8a94a3"
		}
		title := r.Slot.UTC().Format("2006-01-02 15:04:05") + " " + string(r.Status) + " " + runDuration(r)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s</title></rect>`,
			i*(bw+2), h-bar+1, bw, bar, color, template.HTMLEscapeString(title))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// page writes a status page: no script may run, styles only from the
// page's own style element.
func page(w http.ResponseWriter, code int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	statusTmpl.ExecuteTemplate(w, name, data)
}

// statusPage is GET /: every job in one line, those that need a look
// first. It reads summaryRuns runs per job, nothing more: charts and
// history are on the jobs' own pages.
func (c *runCmd) statusPage(w http.ResponseWriter, r *http.Request) {
	views, err := c.jobViews(r.Context(), summaryRuns)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	slices.SortStableFunc(views, byUrgency)
	var reps []store.Replica
	c.mu.Lock()
	shared := c.cfg.State.Postgres != nil
	c.mu.Unlock()
	if shared {
		reps, _ = c.store.Replicas(r.Context())
	}
	data := struct {
		Now                           string
		Total, Stale, Failing, Paused int
		Jobs                          []jobView
		Replicas                      []store.Replica
	}{Now: time.Now().UTC().Format("2006-01-02 15:04:05 UTC"), Total: len(views), Jobs: views, Replicas: reps}
	for _, v := range views {
		data.Stale += btoi(v.Stale)
		data.Failing += btoi(v.Failures > 0)
		data.Paused += btoi(!v.Enabled)
	}
	page(w, http.StatusOK, "overview", data)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// jobPage is GET /jobs/{name}: one job's settings, freshness, chart and
// last historyRuns runs, with each failure's code, message and fix. It
// takes its summary from jobViews, which reads every job's runs (one
// query each: about 50 ms for 500 jobs), then reads its own history.
func (c *runCmd) jobPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	c.mu.Lock()
	cfg := c.cfg
	c.mu.Unlock()
	j := cfg.Job(name)
	if j == nil {
		page(w, http.StatusNotFound, "missing", name)
		return
	}
	v, err := c.jobView(r.Context(), j, historyRuns, dependents(cfg)[name])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	page(w, http.StatusOK, "job", map[string]any{"Job": v})
}
