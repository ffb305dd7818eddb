package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/refresh"
)

// doctorCmd is `pbirefresh doctor`: walk the recipe for each credential and
// job without triggering anything, and print a checklist with fixes.
type doctorCmd struct {
	stdout, stderr io.Writer
	logger         *slog.Logger
	config, job    string
	env            *env
}

func (c *doctorCmd) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.config, "config", "", "configuration file")
	fs.StringVar(&c.job, "job", "", "check only this job (and its credential)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return nil
}

func (c *doctorCmd) Run(ctx context.Context) error {
	cfg, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	jobs := cfg.Jobs
	if c.job != "" {
		j := cfg.Job(c.job)
		if j == nil {
			return usageError("no job %q in %s (jobs: %s)", c.job, c.config, cfg.JobNames())
		}
		jobs = jobs[:0:0]
		jobs = append(jobs, j)
	}
	c.env, err = newEnv(cfg, c.logger, refresh.SystemClock{})
	if err != nil {
		return err
	}
	failed := 0
	check := func(what string, err error) bool {
		if err == nil {
			fmt.Fprintf(c.stdout, "[ok]   %s\n", what)
			return true
		}
		failed++
		fmt.Fprintf(c.stdout, "[FAIL] %s\n       %v\n", what, err)
		if h := pbirefresh.Hint(err); h != "" {
			fmt.Fprintf(c.stdout, "       fix: %s\n", h)
		}
		return false
	}
	used := map[string]bool{}
	for _, j := range jobs {
		used[j.Credential] = true
	}
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	tokenOK := map[string]bool{}
	deadline := time.Now().Add(2 * time.Minute)
	for _, name := range names {
		cr := cfg.Credentials[name]
		for _, s := range []*struct {
			label string
			ref   string
		}{{"client secret", refOrEmpty(c.env, cr.ClientSecret)}, {"password", refOrEmpty(c.env, cr.Password)}} {
			if s.ref == "" {
				continue
			}
			_, err := c.env.secrets.Secret(ctx, s.ref)
			check(fmt.Sprintf("credential %s: %s readable (%s)", name, s.label, s.ref), err)
		}
		_, err := c.env.creds[name].Token(ctx)
		tokenOK[name] = check(fmt.Sprintf("credential %s: token from %s for %s", name, cfg.Endpoints.AuthorityHost, cfg.Endpoints.PowerBIScope), err)
	}
	for _, j := range jobs {
		if !tokenOK[j.Credential] {
			fmt.Fprintf(c.stdout, "[skip] job %s: needs a token for credential %s\n", j.Name, j.Credential)
			continue
		}
		client := c.env.client(j.Credential)
		ds, _, _ := jobRequest(j)
		if !check(fmt.Sprintf("job %s: workspace %s visible", j.Name, j.WorkspaceID), client.CheckWorkspace(ctx, ds.WorkspaceID, deadline)) {
			continue
		}
		if !check(fmt.Sprintf("job %s: dataset %s visible and refreshable", j.Name, j.DatasetID), client.CheckDataset(ctx, ds, deadline)) {
			continue
		}
		_, err := client.History(ctx, ds, 1, deadline)
		check(fmt.Sprintf("job %s: refresh history readable", j.Name), err)
	}
	if failed > 0 {
		return &exitError{exitCannotWork, &silent{fmt.Errorf("%d checks failed", failed)}}
	}
	fmt.Fprintln(c.stdout, "all checks passed")
	return nil
}

func refOrEmpty(e *env, s *configs.SecretRef) string {
	if s == nil {
		return ""
	}
	return e.ref(s)
}

func (c *doctorCmd) Close() error {
	if c.env != nil {
		c.env.Close()
	}
	return nil
}
