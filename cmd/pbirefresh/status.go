package main

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
)

// statusTmpl is the status page: server-rendered, no external assets,
// readable on a phone. html/template escapes every value for its context
// (text, attribute, the chart's SVG).
var statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"when": func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return t.Format("2006-01-02 15:04:05 MST")
	},
	"ts":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"dur":   runDuration,
	"chart": chart,
	"class": statusClass,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pbirefresh</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:1rem;background:#f6f7f9;color:#1d2430}
h1{font-size:1.3rem;margin:.2rem 0 1rem}
.job{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:.8rem 1rem;margin:0 0 1rem}
.job h2{font-size:1.05rem;margin:0 0 .3rem}
.meta{color:#5b6574;font-size:.9rem}
.s{display:inline-block;padding:0 .45rem;border-radius:9px;font-size:.8rem;color:#fff;background:#8a94a3}
.s-completed{background:#1f8a4c}.s-failed,.s-error,.s-cancelled,.s-lost,.s-quota_exceeded{background:#c62f2f}
.s-timed_out{background:#d67a00}.s-running,.s-pending{background:#2f6fc6}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin-top:.5rem}
td,th{text-align:left;padding:.2rem .4rem;border-top:1px solid #eef0f3;white-space:nowrap;vertical-align:top}
td.detail{white-space:normal;min-width:14rem;color:#5b6574}
.hint{color:#1d2430}
.scroll{overflow-x:auto}
svg{max-width:100%;height:auto;display:block;margin-top:.5rem}
</style></head><body>
<h1>pbirefresh <span class="meta">{{.Now}}</span></h1>
{{if .Replicas}}<section class="job" id="replicas"><h2>replicas</h2><div class="meta">every replica schedules; the state database decides who runs each slot</div>
<div class="scroll"><table><tr><th>replica</th><th>state</th><th>heartbeat (UTC)</th><th>runs</th></tr>
{{range .Replicas}}<tr><td>{{.ID}}{{if .Self}} (this one){{end}}</td><td>{{if .Alive}}<span class="s s-completed">alive</span>{{else}}<span class="s">dead</span>{{end}}</td><td>{{ts .Heartbeat}}</td><td>{{.Runs}}</td></tr>
{{end}}</table></div></section>{{end}}
{{range .Jobs}}<section class="job" id="job-{{.Name}}">
<h2>{{.Name}} {{if .LastStatus}}<span class="s s-{{class .LastStatus}}">{{.LastStatus}}</span>{{end}}{{if not .Enabled}} <span class="s">paused</span>{{end}}</h2>
<div class="meta">{{if .Schedule}}<code>{{.Schedule}}</code> ({{.Timezone}}) · next run {{when .NextRun}}{{if .NextNote}} ({{.NextNote}}){{end}}{{else}}on demand only{{end}} · {{.Refresh}} refresh</div>
{{chart .Recent}}
{{if .Recent}}<div class="scroll"><table><tr><th>slot (UTC)</th><th>kind</th><th>status</th><th>duration</th><th>detail</th></tr>
{{range .Recent}}<tr><td>{{ts .Slot}}</td><td>{{.Kind}}</td><td><span class="s s-{{class .Status}}">{{.Status}}</span></td><td>{{dur .}}</td><td class="detail">{{if .Error}}{{.Error}}{{if .Code}} [{{.Code}}]{{end}}{{if .Note}}<br>{{.Note}}{{end}}{{if .Hint}}<br><span class="hint">fix: {{.Hint}}</span>{{end}}{{else}}{{.Note}}{{end}}{{if .Owner}}<br><span class="meta">on {{.Owner}}</span>{{end}}</td></tr>
{{end}}</table></div>{{else}}<p class="meta">no runs yet</p>{{end}}
</section>
{{else}}<p>No jobs configured.</p>{{end}}
</body></html>`))

// statusClass is a status as a CSS class name: only the vocabulary's
// words, anything else is "other".
func statusClass(s pbirefresh.Status) string {
	if pbirefresh.Valid(s, pbirefresh.Statuses()) {
		return string(s)
	}
	return "other"
}

func runDuration(r store.Run) string {
	if r.Posted.IsZero() || r.Ended.IsZero() {
		return ""
	}
	return r.Ended.Sub(r.Posted).Round(time.Second).String()
}

var statusColors = map[pbirefresh.Status]string{
	pbirefresh.Completed: "#1f8a4c", pbirefresh.Failed: "#c62f2f", pbirefresh.Error: "#c62f2f", pbirefresh.Cancelled: "#c62f2f", pbirefresh.Lost: "#c62f2f",
	pbirefresh.QuotaExceeded: "#c62f2f", pbirefresh.TimedOut: "#d67a00", pbirefresh.Running: "#2f6fc6", pbirefresh.Pending: "#2f6fc6",
}

// chart draws the recent runs, oldest left: bar height is the duration,
// colour the outcome; runs without a refresh (skipped, missed) are short
// grey ticks. Every value from the database is escaped.
func chart(runs []store.Run) template.HTML {
	if len(runs) == 0 {
		return ""
	}
	const w, h, bw = 300, 60, 10
	var longest time.Duration
	for _, r := range runs {
		if d := r.Ended.Sub(r.Posted); !r.Posted.IsZero() && !r.Ended.IsZero() && d > longest {
			longest = d
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" role="img" aria-label="durations and outcomes of the last %d runs" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`, len(runs), w, h+2, w, h+2)
	for i := range runs {
		r := runs[len(runs)-1-i]
		x := i * (bw + 2)
		if x+bw > w {
			break
		}
		bar := 4
		if d := r.Ended.Sub(r.Posted); longest > 0 && !r.Posted.IsZero() && !r.Ended.IsZero() {
			bar = max(4, int(float64(h)*float64(d)/float64(longest)))
		}
		color, ok := statusColors[r.Status]
		if !ok {
			color = "#8a94a3"
		}
		title := r.Slot.UTC().Format("2006-01-02 15:04:05") + " " + string(r.Status) + " " + runDuration(r)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s</title></rect>`,
			x, h-bar+1, bw, bar, color, template.HTMLEscapeString(title))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func (c *runCmd) statusPage(w http.ResponseWriter, r *http.Request) {
	views, err := c.jobViews(r.Context(), 10)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	var reps []store.Replica
	c.mu.Lock()
	shared := c.cfg.State.Postgres != nil
	c.mu.Unlock()
	if shared {
		reps, _ = c.store.Replicas(r.Context())
	}
	statusTmpl.Execute(w, map[string]any{"Jobs": views, "Replicas": reps, "Now": time.Now().UTC().Format("2006-01-02 15:04:05 UTC")})
}
