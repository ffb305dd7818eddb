package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/pbirefresh/pbirefresh/configs"
)

// nextCmd is `pbirefresh next`: the upcoming slots, in each job's zone.
type nextCmd struct {
	stdout, stderr io.Writer
	config, job    string
	count          int
	from           string
}

func (c *nextCmd) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("next", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.config, "config", "", "configuration file")
	fs.StringVar(&c.job, "job", "", "only this job")
	fs.IntVar(&c.count, "count", 5, "slots per job")
	fs.StringVar(&c.from, "from", "", "start from this instant (RFC 3339; default now)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if c.count < 1 || c.count > 100000 {
		return usageError("next: --count must be between 1 and 100000")
	}
	return nil
}

type upcoming struct {
	at   time.Time
	job  string
	note string
}

func (c *nextCmd) Run(context.Context) error {
	cfg, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	from := time.Now()
	if c.from != "" {
		if from, err = time.Parse(time.RFC3339, c.from); err != nil {
			return usageError("next: --from %q is not RFC 3339 (e.g. 2026-03-08T00:00:00-05:00)", c.from)
		}
	}
	jobs := cfg.Jobs
	if c.job != "" {
		j := cfg.Job(c.job)
		if j == nil {
			return usageError("no job %q in %s (jobs: %s)", c.job, c.config, cfg.JobNames())
		}
		jobs = []*configs.Job{j}
	}
	var list []upcoming
	for _, j := range jobs {
		if j.Parsed == nil || !*j.Enabled {
			continue
		}
		at := from
		for i := 0; i < c.count; i++ {
			slot, ok := j.Parsed.Next(at)
			if !ok {
				break
			}
			list = append(list, upcoming{slot.Time.In(j.Location), j.Name, slot.Note})
			at = slot.Time
		}
	}
	sort.SliceStable(list, func(a, b int) bool { return list[a].at.Before(list[b].at) })
	for _, u := range list {
		line := u.at.Format(time.RFC3339) + "  " + u.job
		if u.note != "" {
			line += "  " + u.note
		}
		fmt.Fprintln(c.stdout, line)
	}
	return nil
}

func (c *nextCmd) Close() error { return nil }
