package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/store"
)

// historyCmd is `pbirefresh history`: the runs in the state database.
type historyCmd struct {
	stdout, stderr      io.Writer
	config, job, output string
	limit               int
}

func (c *historyCmd) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.config, "config", "", "configuration file (for state.path)")
	fs.StringVar(&c.job, "job", "", "only this job")
	fs.IntVar(&c.limit, "limit", 20, "runs to show")
	fs.StringVar(&c.output, "output", "text", "text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if c.output != "text" && c.output != "json" {
		return usageError("history: --output must be text or json")
	}
	if c.limit < 1 {
		return usageError("history: --limit must be at least 1")
	}
	return nil
}

func (c *historyCmd) Run(ctx context.Context) error {
	cfg, err := loadConfigNoHTTP(c.config)
	if err != nil {
		return err
	}
	// Read-only: history never writes, never migrates, and works beside a
	// running daemon. A PostgreSQL password may be a secret reference.
	var e *env
	if pg := cfg.State.Postgres; pg != nil && (pg.Password != nil || pg.EntraToken) {
		if e, err = newEnv(cfg, slog.New(slog.DiscardHandler), refresh.SystemClock{}); err != nil {
			return err
		}
		defer e.Close()
	}
	st, err := openReadOnly(ctx, cfg, e)
	if err != nil {
		return err
	}
	defer st.Close()
	var runs []store.Run
	q := store.Query{Job: c.job, Limit: min(c.limit, store.MaxPage)}
	for len(runs) < c.limit {
		page, err := st.Runs(ctx, q)
		if err != nil {
			return err
		}
		runs = append(runs, page...)
		if len(page) < q.PageSize() {
			break
		}
		q.After = store.CursorOf(page[len(page)-1])
		q.Limit = min(c.limit-len(runs), store.MaxPage)
	}
	if c.output == "json" {
		if runs == nil {
			runs = []store.Run{}
		}
		b, _ := json.MarshalIndent(runs, "", "  ")
		fmt.Fprintln(c.stdout, string(b))
		return nil
	}
	w := tabwriter.NewWriter(c.stdout, 0, 2, 2, ' ', 0)
	replica := ""
	for _, r := range runs {
		if r.Owner != "" {
			replica = "\tREPLICA"
		}
	}
	fmt.Fprintln(w, "SLOT (UTC)\tJOB\tKIND\tSTATUS\tDURATION\tREFRESH ID"+replica+"\tDETAIL")
	for _, r := range runs {
		dur := ""
		if !r.Posted.IsZero() && !r.Ended.IsZero() {
			dur = r.Ended.Sub(r.Posted).Round(time.Second).String()
		}
		detail := r.Error
		if r.Code != "" {
			detail = "[" + r.Code + "] " + detail
		}
		if detail == "" {
			detail = r.Note
		}
		if len(detail) > 80 {
			detail = short(detail, 79) // on a character boundary
		}
		owner := ""
		if replica != "" {
			owner = "\t" + r.Owner
		}
		kind := string(r.Kind)
		if r.Upstream != "" {
			// The upstream run whose end triggered (or skipped) this one.
			kind = fmt.Sprintf("%s (%s #%d)", kind, r.Upstream, r.UpstreamRun)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s%s\t%s\n", r.Slot.Format("2006-01-02 15:04:05"), r.Job, kind, r.Status, dur, r.RefreshID, owner, detail)
	}
	return w.Flush()
}

func (c *historyCmd) Close() error { return nil }
