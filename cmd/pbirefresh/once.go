package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/refresh"
)

// onceCmd is `pbirefresh once`: start one refresh now and follow it to its
// end. Exit 0 completed (or skipped by when_busy: skip), 1 ended
// unsuccessfully, 2 usage or config, 3 could not start or follow.
type onceCmd struct {
	stdout io.Writer
	stderr io.Writer
	logger *slog.Logger
	clock  refresh.Clock // nil: the wall clock (tests inject a fake)

	config, job, output string
	env                 *env
}

func (c *onceCmd) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("once", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.config, "config", "", "configuration file")
	fs.StringVar(&c.job, "job", "", "job name")
	fs.StringVar(&c.output, "output", "text", "text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if c.job == "" {
		return usageError("once: --job is required")
	}
	if c.output != "text" && c.output != "json" {
		return usageError("once: --output must be text or json")
	}
	return nil
}

// onceResult is the JSON of --output json.
type onceResult struct {
	Job string `json:"job"`
	refresh.Result
}

func (c *onceCmd) Run(ctx context.Context) error {
	cfg, err := loadConfigNoHTTP(c.config)
	if err != nil {
		return err
	}
	job := cfg.Job(c.job)
	if job == nil {
		return usageError("no job %q in %s (jobs: %s)", c.job, c.config, cfg.JobNames())
	}
	if c.clock == nil {
		c.clock = refresh.SystemClock{}
	}
	c.env, err = newEnv(cfg, c.logger, c.clock)
	if err != nil {
		return err
	}
	_, _, pol := jobRequest(job)
	pol.QuotaHint = quotaHint(job, c.clock.Now)
	client := c.env.client(job.Credential)
	t, err := newNames(c.logger, c.clock.Now).of(ctx, job, client, false)
	if err != nil {
		// Reported like any run's end, so that --output json still prints
		// its one object.
		return c.report(job.Name, failed(fmt.Errorf("job %s: %w", job.Name, err)))
	}
	var progress refresh.Progress
	if c.output == "text" && isTerminal(c.stdout) {
		start := c.clock.Now()
		progress = func(rf refresh.Refresh, st refresh.Status, polls int) {
			state := st.State
			if st.Extended != "" {
				state += "/" + st.Extended
			}
			if !st.Found {
				state = "waiting for it to appear"
			}
			fmt.Fprintf(c.stdout, "\r%-40s elapsed %-10s polls %d ", state, c.clock.Now().Sub(start).Round(time.Second), polls)
		}
	}
	var res refresh.Result
	if t.dataflow != nil {
		res = client.RunDataflow(ctx, *t.dataflow, refresh.DataflowOptions{NotifyOption: job.NotifyOption}, pol, progress)
	} else {
		res = client.Run(ctx, t.dataset, t.opts, pol, progress)
	}
	if progress != nil {
		fmt.Fprintln(c.stdout)
	}
	return c.report(job.Name, res)
}

// report prints a run's result and returns the exit it calls for.
func (c *onceCmd) report(job string, res refresh.Result) error {
	if c.output == "json" {
		b, _ := json.MarshalIndent(onceResult{Job: job, Result: res}, "", "  ")
		fmt.Fprintln(c.stdout, string(b))
	} else {
		printResult(c.stdout, job, res)
	}
	switch res.Outcome {
	case pbirefresh.Completed, pbirefresh.Skipped:
		return nil
	case pbirefresh.Error, pbirefresh.QuotaExceeded:
		return &exitError{exitCannotWork, &silent{res.Err}}
	}
	return &exitError{exitUnsuccess, &silent{res.Err}}
}

// silent errors were printed with the result already.
type silent struct{ err error }

func (s *silent) Error() string {
	if s.err == nil {
		return "refresh unsuccessful"
	}
	return s.err.Error()
}
func (s *silent) Unwrap() error { return s.err }

func printResult(w io.Writer, job string, r refresh.Result) {
	fmt.Fprintf(w, "job %s: %s", job, r.Outcome)
	if r.RefreshID != "" {
		fmt.Fprintf(w, " (refresh %s)", r.RefreshID)
	}
	fmt.Fprintf(w, " after %s, %d polls\n", r.End.Sub(r.Start).Round(time.Second), r.Polls)
	if r.Note != "" {
		fmt.Fprintf(w, "  note: %s\n", r.Note)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
	if r.Code != "" {
		fmt.Fprintf(w, "  code: %s\n", r.Code)
	}
	for _, m := range r.Messages {
		fmt.Fprintf(w, "  service: %s\n", m)
	}
	if r.ServiceException != "" {
		fmt.Fprintf(w, "  service error: %s\n", r.ServiceException)
	}
	if r.Hint != "" {
		fmt.Fprintf(w, "  hint: %s\n", r.Hint)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (c *onceCmd) Close() error {
	if c.env != nil {
		c.env.Close()
	}
	return nil
}
