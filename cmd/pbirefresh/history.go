package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

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
	return nil
}

func (c *historyCmd) Run(ctx context.Context) error {
	cfg, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.State.Path); err != nil {
		return &exitError{exitCannotWork, fmt.Errorf("no state database at %s: %w", cfg.State.Path, err)}
	}
	st, err := store.Open(cfg.State.Path)
	if err != nil {
		return err
	}
	defer st.Close()
	runs, err := st.Runs(ctx, c.job, c.limit)
	if err != nil {
		return err
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
	fmt.Fprintln(w, "SLOT (UTC)\tJOB\tKIND\tSTATUS\tDURATION\tREFRESH ID\tDETAIL")
	for _, r := range runs {
		dur := ""
		if !r.Posted.IsZero() && !r.Ended.IsZero() {
			dur = r.Ended.Sub(r.Posted).Round(time.Second).String()
		}
		detail := r.Error
		if detail == "" {
			detail = r.Note
		}
		if len(detail) > 80 {
			detail = detail[:77] + "..."
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Slot.Format("2006-01-02 15:04:05"), r.Job, r.Kind, r.Status, dur, r.RefreshID, detail)
	}
	return w.Flush()
}

func (c *historyCmd) Close() error { return nil }
