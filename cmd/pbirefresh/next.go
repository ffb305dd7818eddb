package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pbirefresh/pbirefresh/configs"
)

// nextCmd is `pbirefresh next`: the upcoming slots, in each job's zone.
type nextCmd struct {
	stdout, stderr io.Writer
	config, job    string
	count          int
	from           string
	under          map[string][]string // dependents' lines, by upstream
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
	cfg, err := loadConfigNoHTTP(c.config)
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
		// A job that runs only after others is shown under their slots.
		jobs = append([]*configs.Job{j}, upstreamsOf(cfg, j)...)
	}
	deps := dependents(cfg)
	var list []upcoming
	for _, j := range jobs {
		if j.Parsed == nil || !*j.Enabled {
			continue
		}
		// The 24 hours before each slot are walked too: a slot that is the
		// ninth refresh in 24 hours is refused on shared capacity.
		var window []time.Time
		at := from.Add(-24 * time.Hour)
		for i := 0; i < c.count; {
			slot, ok := j.Parsed.Next(at)
			if !ok {
				break
			}
			at = slot.Time
			window = append(window, at)
			for at.Sub(window[0]) >= 24*time.Hour {
				window = window[1:]
			}
			if !at.After(from) {
				continue
			}
			i++
			note := slot.Note
			if n := len(window); n > sharedDaily && !j.IsDataflow() {
				note = strings.TrimSpace(note + fmt.Sprintf("  [quota] %d refreshes in the 24 hours up to here: shared capacity allows %d, and refuses the rest", n, sharedDaily))
			}
			if len(j.After) > 0 {
				note = strings.TrimSpace(note + fmt.Sprintf("  (after %s, on_upstream: %s)", strings.Join(j.After, ", "), j.OnUpstream))
			}
			list = append(list, upcoming{slot.Time.In(j.Location), j.Name, note})
		}
	}
	sort.SliceStable(list, func(a, b int) bool { return list[a].at.Before(list[b].at) })
	for _, u := range list {
		line := u.at.Format(time.RFC3339) + "  " + u.job
		if u.note != "" {
			line += "  " + u.note
		}
		fmt.Fprintln(c.stdout, line)
		c.printDependents(cfg, deps, u.job)
	}
	return nil
}

// printDependents lists, under a job's slot, the jobs that run when it
// completes, and theirs in turn: each once, indented by its distance
// from the slot's job, a job that joins several after the last of them.
func (c *nextCmd) printDependents(cfg *configs.Config, deps map[string][]string, job string) {
	if len(deps[job]) == 0 {
		return
	}
	lines, ok := c.under[job]
	if !ok {
		lines = dependentLines(cfg, deps, job)
		if c.under == nil {
			c.under = map[string][]string{}
		}
		c.under[job] = lines
	}
	for _, l := range lines {
		fmt.Fprintln(c.stdout, l)
	}
}

// dependentLines are the lines printDependents prints under job's slots.
func dependentLines(cfg *configs.Config, deps map[string][]string, job string) []string {
	depth := map[string]int{job: 0}
	// Relax depths along the after links; the graph is acyclic (validate
	// refuses cycles), so as many passes as jobs suffice.
	for range cfg.Jobs {
		changed := false
		for _, j := range cfg.Jobs {
			for _, up := range j.After {
				du, ok := depth[up]
				if !ok || !slices.Contains(deps[up], j.Name) {
					continue
				}
				if d, seen := depth[j.Name]; !seen || d < du+1 {
					depth[j.Name], changed = du+1, true
				}
			}
		}
		if !changed {
			break
		}
	}
	var list []*configs.Job
	for _, j := range cfg.Jobs {
		if d := depth[j.Name]; d > 0 {
			list = append(list, j)
		}
	}
	sort.SliceStable(list, func(a, b int) bool { return depth[list[a].Name] < depth[list[b].Name] })
	var out []string
	for _, j := range list {
		state := ""
		if !*j.Enabled {
			state = ", paused"
		}
		out = append(out, fmt.Sprintf("%s  then %s  (after %s%s)", strings.Repeat("  ", depth[j.Name]), j.Name, strings.Join(j.After, ", "), state))
	}
	return out
}

// dependents maps each job to the jobs its completion triggers: those
// with it in their after list and no schedule.
func dependents(cfg *configs.Config) map[string][]string {
	out := map[string][]string{}
	for _, j := range cfg.Jobs {
		if j.Parsed != nil {
			continue
		}
		for _, up := range j.After {
			out[up] = append(out[up], j.Name)
		}
	}
	return out
}

// upstreamsOf returns the jobs j runs after, directly or not.
func upstreamsOf(cfg *configs.Config, j *configs.Job) []*configs.Job {
	seen := map[string]bool{j.Name: true}
	var out []*configs.Job
	queue := append([]string(nil), j.After...)
	for len(queue) > 0 && len(out) <= len(cfg.Jobs) {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		if u := cfg.Job(name); u != nil {
			out = append(out, u)
			queue = append(queue, u.After...)
		}
	}
	return out
}

func (c *nextCmd) Close() error { return nil }
