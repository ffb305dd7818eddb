package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
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
	warn := func(what, fix string) {
		fmt.Fprintf(c.stdout, "[warn] %s\n", what)
		if fix != "" {
			fmt.Fprintf(c.stdout, "       fix: %s\n", fix)
		}
	}
	d := &doctorJobs{cfg: cfg, links: map[string][]refresh.DataflowLink{}, spaces: map[string]refresh.Workspace{}, shared: map[string]*sharedDataset{}}
	for _, j := range jobs {
		if !tokenOK[j.Credential] {
			fmt.Fprintf(c.stdout, "[skip] job %s: needs a token for credential %s\n", j.Name, j.Credential)
			continue
		}
		client := c.env.client(j.Credential)
		t, err := newNames(slog.New(slog.DiscardHandler), time.Now).of(ctx, j, client, false)
		if usesNames(j) && !check(fmt.Sprintf("job %s: %s", j.Name, describeNames(j, t)), err) {
			continue
		}
		if t.dataflow != nil {
			if !check(fmt.Sprintf("job %s: workspace %s visible", j.Name, t.dataflow.WorkspaceID), client.CheckWorkspace(ctx, t.dataflow.WorkspaceID, deadline)) {
				continue
			}
			_, err := client.Transactions(ctx, *t.dataflow, deadline)
			check(fmt.Sprintf("job %s: dataflow %s visible, its transactions readable", j.Name, j.DataflowID), err)
			continue
		}
		ds := t.dataset
		if !check(fmt.Sprintf("job %s: workspace %s visible", j.Name, ds.WorkspaceID), client.CheckWorkspace(ctx, ds.WorkspaceID, deadline)) {
			continue
		}
		if !check(fmt.Sprintf("job %s: dataset %s visible and refreshable", j.Name, ds.DatasetID), client.CheckDataset(ctx, ds, deadline)) {
			continue
		}
		_, err = client.History(ctx, ds, 1, deadline)
		check(fmt.Sprintf("job %s: refresh history readable", j.Name), err)
		for _, w := range d.warnings(ctx, client, j, ds) {
			warn(w.what, w.fix)
		}
		for _, line := range d.upstreams(ctx, client, j, ds) {
			fmt.Fprintf(c.stdout, "[info] %s\n", line)
		}
		for _, w := range d.linkErrs {
			warn(w.what, w.fix)
		}
		d.linkErrs = nil
		for _, w := range d.ordering(j, ds) {
			warn(w.what, w.fix)
		}
	}
	for _, w := range d.quota(time.Now()) {
		warn(w.what, w.fix)
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

// describeNames says what a job's names resolved to.
func describeNames(j *configs.Job, t target) string {
	var parts []string
	ws := t.dataset.WorkspaceID
	if t.dataflow != nil {
		ws = t.dataflow.WorkspaceID
	}
	if j.Workspace != "" {
		parts = append(parts, fmt.Sprintf("workspace %q is %s", j.Workspace, orUnresolved(ws)))
	}
	if j.Dataset != "" {
		parts = append(parts, fmt.Sprintf("dataset %q is %s", j.Dataset, orUnresolved(t.dataset.DatasetID)))
	}
	return strings.Join(parts, ", ")
}

func orUnresolved(id string) string {
	if id == "" {
		return "not resolved"
	}
	return id
}

// doctorJobs holds what doctor reads once per workspace.
type doctorJobs struct {
	cfg      *configs.Config
	links    map[string][]refresh.DataflowLink // by workspace id
	spaces   map[string]refresh.Workspace
	linkErrs []finding
	// shared: the datasets on shared capacity, by workspace/dataset id,
	// in the order first seen.
	shared      map[string]*sharedDataset
	sharedOrder []string
}

type finding struct{ what, fix string }

// warnings: a built-in schedule still on (every slot would refresh twice),
// and more slots in a day than shared capacity allows.
func (d *doctorJobs) warnings(ctx context.Context, client *refresh.Client, j *configs.Job, ds refresh.Dataset) []finding {
	var out []finding
	sched, err := client.Schedule(ctx, ds)
	if err != nil {
		out = append(out, finding{fmt.Sprintf("job %s: the dataset's own Power BI schedule could not be read: %v", j.Name, err), ""})
	} else if builtinOn(sched) && *j.Enabled && j.Parsed != nil {
		out = append(out, finding{
			fmt.Sprintf("job %s: the dataset also refreshes on its own Power BI schedule (%s, %s), so it is refreshed by both", j.Name, describeBuiltin(sched), sched.LocalTimeZoneID),
			fmt.Sprintf("turn the built-in schedule off: pbirefresh import --config FILE --credential %s --workspace %s --out FILE --disable-builtin, or, as the dataset's owner, in its settings", j.Credential, ds.WorkspaceID),
		})
	}
	ws, ok := d.spaces[ds.WorkspaceID]
	if !ok {
		if ws, err = client.Workspace(ctx, ds.WorkspaceID); err != nil {
			return out
		}
		d.spaces[ds.WorkspaceID] = ws
	}
	if ws.Dedicated || !*j.Enabled || j.Parsed == nil {
		return out
	}
	// Shared capacity's quota counts a dataset's refreshes, whichever job
	// starts them: it is checked per dataset once every job is seen.
	k := strings.ToLower(ds.WorkspaceID + "/" + ds.DatasetID)
	q := d.shared[k]
	if q == nil {
		q = &sharedDataset{ds: ds, builtin: sched}
		d.shared[k] = q
		d.sharedOrder = append(d.sharedOrder, k)
	}
	q.jobs = append(q.jobs, j)
	return out
}

// sharedDataset is a dataset on shared capacity and the enabled jobs
// that refresh it.
type sharedDataset struct {
	ds      refresh.Dataset
	builtin refresh.BuiltinSchedule
	jobs    []*configs.Job
}

// quota warns about the datasets on shared capacity that their jobs and
// their own Power BI schedule together refresh more often than the
// service allows in 24 hours.
func (d *doctorJobs) quota(now time.Time) []finding {
	var out []finding
	for _, k := range d.sharedOrder {
		q := d.shared[k]
		var names []string
		for _, j := range q.jobs {
			names = append(names, j.Name)
		}
		jobs, total := datasetDaily(now, q.jobs, q.builtin)
		if total <= sharedDaily {
			continue
		}
		who, from := "job "+names[0], "this job"
		if len(names) > 1 {
			who, from = "jobs "+strings.Join(names, ", ")+" (dataset "+q.ds.DatasetID+")", "these jobs"
		}
		count := fmt.Sprintf("up to %d can start within 24 hours (%d from %s, %d from Power BI's own schedule)", total, jobs, from, total-jobs)
		if jobs > perDayLimit {
			verb := "start"
			if len(names) == 1 {
				verb = "starts"
			}
			count = fmt.Sprintf("%s alone %s more than %d within 24 hours", from, verb, perDayLimit)
		}
		out = append(out, finding{
			fmt.Sprintf("%s: workspace %s is on shared capacity, which allows %d refreshes of a dataset a day; %s: the service refuses the rest (quota_exceeded)",
				who, q.ds.WorkspaceID, sharedDaily, count),
			"refresh at most 8 times a day, or move the workspace to a Premium, Embedded or Fabric capacity",
		})
	}
	return out
}

// linksOf reads a workspace's dataset-to-dataflow links once.
func (d *doctorJobs) linksOf(ctx context.Context, client *refresh.Client, workspaceID string) []refresh.DataflowLink {
	if l, ok := d.links[workspaceID]; ok {
		return l
	}
	l, err := client.UpstreamDataflows(ctx, workspaceID)
	if err != nil {
		d.linkErrs = append(d.linkErrs, finding{fmt.Sprintf("workspace %s: its datasets' upstream dataflows could not be read, so the ordering check is skipped there: %v", workspaceID, err), pbirefresh.Hint(err)})
	}
	d.links[workspaceID] = l
	return l
}

// upstreams lists the dataflows a dataset job's dataset reads.
func (d *doctorJobs) upstreams(ctx context.Context, client *refresh.Client, j *configs.Job, ds refresh.Dataset) []string {
	var out []string
	for _, l := range d.linksOf(ctx, client, ds.WorkspaceID) {
		if !strings.EqualFold(l.DatasetID, ds.DatasetID) {
			continue
		}
		line := fmt.Sprintf("job %s: the dataset reads dataflow %s (workspace %s)", j.Name, l.DataflowID, l.WorkspaceID)
		if by := d.refreshedBy(l.DataflowID); len(by) > 0 {
			line += ", refreshed by job " + strings.Join(by, ", ")
		}
		out = append(out, line)
	}
	return out
}

// refreshedBy names the jobs that refresh a dataflow.
func (d *doctorJobs) refreshedBy(dataflowID string) []string {
	var out []string
	for _, k := range d.cfg.Jobs {
		if k.IsDataflow() && strings.EqualFold(k.DataflowID, dataflowID) {
			out = append(out, k.Name)
		}
	}
	return out
}

// ordering flags a dataset job whose upstream dataflow a pbirefresh job
// refreshes without an after link between them (directly or through other
// jobs): the dataset may refresh before the dataflow has, and load
// yesterday's data.
func (d *doctorJobs) ordering(j *configs.Job, ds refresh.Dataset) []finding {
	ups := map[string]bool{}
	var walk func(name string, depth int)
	walk = func(name string, depth int) {
		k := d.cfg.Job(name)
		if k == nil || depth > len(d.cfg.Jobs) {
			return
		}
		for _, u := range k.After {
			if !ups[u] {
				ups[u] = true
				walk(u, depth+1)
			}
		}
	}
	walk(j.Name, 0)
	var out []finding
	for _, l := range d.links[ds.WorkspaceID] {
		if !strings.EqualFold(l.DatasetID, ds.DatasetID) {
			continue
		}
		for _, by := range d.refreshedBy(l.DataflowID) {
			if ups[by] {
				continue
			}
			out = append(out, finding{
				fmt.Sprintf("job %s: its dataset reads dataflow %s, which job %s refreshes, but job %s does not run after it: it may refresh before the dataflow has, and load old data", j.Name, l.DataflowID, by, j.Name),
				fmt.Sprintf("add after: [%s] to job %s (and drop its schedule to run as soon as the dataflow completes)", by, j.Name),
			})
		}
	}
	return out
}
