package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/internal/strictyaml"
	"github.com/pbirefresh/pbirefresh/refresh"
)

// importCmd is `pbirefresh import`: one job per dataset of the given
// workspaces that has a built-in refresh schedule, at the same times, added
// to a configuration; then, on request, those built-in schedules turned off.
//
// Decisions:
//   - A job has one cron expression; a schedule whose times are not a
//     product of minutes and hours becomes one job per minute group,
//     named after the minutes: sales-model-00, sales-model-30 (CronOf).
//   - The output goes to stdout, or to --out: a new file, or the --config
//     file itself, rewritten in place (atomically). Any other existing file
//     is refused: an import never clobbers a file it did not read.
//   - A dataset is "imported" when the written configuration holds the jobs
//     that reproduce its schedule: written now, or found already there with
//     the same expressions and zone (an earlier import). Running the same
//     import again on its output therefore adds nothing, and with
//     --disable-builtin turns off exactly those schedules. A dataset that
//     already has jobs with another schedule is left alone.
//   - --disable-builtin acts only after the configuration was written, and
//     only on imported datasets whose schedule is on.
type importCmd struct {
	stdout, stderr io.Writer
	logger         *slog.Logger

	config, credential, out string
	workspaces              []string
	disable                 bool
	env                     *env
}

// manyFlag is a flag that may be given more than once.
type manyFlag struct{ values *[]string }

func (m manyFlag) String() string {
	if m.values == nil {
		return ""
	}
	return strings.Join(*m.values, ", ")
}

func (m manyFlag) Set(v string) error {
	*m.values = append(*m.values, v)
	return nil
}

func (c *importCmd) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.config, "config", "", "configuration file with the credential (jobs are optional)")
	fs.StringVar(&c.credential, "credential", "", "the credential (a name under credentials) to read the workspaces with and to write into the jobs")
	fs.Var(manyFlag{&c.workspaces}, "workspace", "workspace name or id (repeatable)")
	fs.StringVar(&c.out, "out", "", "write the configuration here (a new file, or the --config file itself) instead of stdout")
	fs.BoolVar(&c.disable, "disable-builtin", false, "after writing, turn off the built-in schedules of the imported datasets")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case c.config == "":
		return usageError("import: --config is required")
	case c.credential == "":
		return usageError("import: --credential is required")
	case len(c.workspaces) == 0:
		return usageError("import: give at least one --workspace NAME or ID")
	}
	return nil
}

// importedDataset is one dataset of an imported workspace and what the
// import made of it.
type importedDataset struct {
	ws    refresh.Workspace
	ds    refresh.DatasetInfo
	sched refresh.BuiltinSchedule
	exprs []string
	zone  string
	// jobs are the names of the jobs that reproduce the schedule; empty
	// when the dataset was not imported, and why says why.
	jobs    []string
	present bool // the jobs were in the input already
	why     string
	// twin: another dataset of the workspace has the same name, so the
	// dataset is named with its id.
	twin bool
}

func (d *importedDataset) imported() bool { return len(d.jobs) > 0 }

func (d *importedDataset) label() string {
	return fmt.Sprintf("%s in %q", d.name(), d.ws.Name)
}

// name is the dataset's name, quoted, and its id if the name is shared.
func (d *importedDataset) name() string {
	if d.twin {
		return fmt.Sprintf("%q (%s)", d.ds.Name, d.ds.ID)
	}
	return fmt.Sprintf("%q", d.ds.Name)
}

func (c *importCmd) Run(ctx context.Context) error {
	if c.logger == nil {
		// Retries and other warnings only: the report is the output.
		c.logger = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	input, err := readInput(c.config)
	if err != nil {
		return err
	}
	cfg, err := parseImportInput(c.config, input)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if _, ok := cfg.Credentials[c.credential]; !ok {
		return usageError("import: no credential %q in %s (credentials: %s)", c.credential, c.config, strings.Join(credentialNames(cfg), ", "))
	}
	if err := c.checkOut(); err != nil {
		return err
	}
	c.env, err = newEnv(cfg, c.logger, refresh.SystemClock{})
	if err != nil {
		return err
	}
	client := c.env.client(c.credential)

	var list []*importedDataset
	seen := map[string]bool{}
	for _, arg := range c.workspaces {
		ws, err := resolveWorkspace(ctx, client, arg)
		if err != nil {
			return err
		}
		if seen[strings.ToLower(ws.ID)] {
			continue
		}
		seen[strings.ToLower(ws.ID)] = true
		found, err := readWorkspace(ctx, client, ws)
		if err != nil {
			return err
		}
		list = append(list, found...)
	}

	text, added, err := c.plan(cfg, input, list)
	if err != nil {
		return &exitError{exitUsage, fmt.Errorf("%s: %w", c.config, err)}
	}
	c.report(list)
	if added == 0 && len(cfg.Jobs) == 0 {
		return pbirefresh.WithHint(errors.New("import: nothing to import, and a configuration needs a job: nothing was written"),
			"only datasets with a refresh schedule in Power BI are imported: check the workspaces, or that the schedules have times")
	}
	out, err := configs.Parse(c.outName(), text)
	if err != nil {
		return fmt.Errorf("import: the new configuration does not validate; please report it with the input: %w", err)
	}
	if err := c.write(text, added); err != nil {
		return err
	}
	switch {
	case c.out == "":
		fmt.Fprintf(c.stderr, "%s added; the configuration is on stdout\n", jobCount(added))
	case added == 0 && c.inPlace():
		fmt.Fprintf(c.stderr, "no jobs to add; %s is unchanged\n", c.out)
	default:
		fmt.Fprintf(c.stderr, "%s added; the configuration is in %s\n", jobCount(added), c.out)
	}

	failed, tried := 0, 0
	if c.disable {
		tried = len(stillOn(list))
		failed = c.disableBuiltin(ctx, client, list)
	} else {
		c.adviseDisable(list)
	}
	c.warnQuota(out, list)
	if failed > 0 {
		written := "the configuration was written"
		if added == 0 && c.inPlace() {
			written = "the configuration is unchanged"
		}
		return &exitError{exitCannotWork, fmt.Errorf("%d of %d Power BI schedules could not be turned off; %s", failed, tried, written)}
	}
	return nil
}

func (c *importCmd) Close() error {
	if c.env != nil {
		c.env.Close()
	}
	return nil
}

// readInput reads the configuration file as configs.Load would: a regular
// file within configs.MaxSize.
func readInput(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err == nil && fi.Size() > configs.MaxSize {
		err = fmt.Errorf("%s is larger than %d MiB", path, configs.MaxSize>>20)
	}
	if err != nil {
		return nil, &exitError{exitUsage, pbirefresh.WithHint(fmt.Errorf("read config: %w", err), "point --config at the YAML file that holds the credential")}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &exitError{exitUsage, fmt.Errorf("read config: %w", err)}
	}
	return b, nil
}

// parseImportInput parses the input configuration: an import starts from
// credentials alone, so a configuration without jobs is accepted; anything
// else wrong is reported as validate would.
func parseImportInput(name string, b []byte) (*configs.Config, error) {
	cfg, err := configs.ParseWith(name, b, configs.Options{AllowNoJobs: true})
	if err != nil {
		return nil, err
	}
	if len(cfg.Credentials) == 0 {
		return nil, pbirefresh.WithHint(fmt.Errorf("%s has no credentials", name),
			"add the app registration under credentials (configs/example.yaml shows how): import reads the workspaces with it")
	}
	return cfg, nil
}

// mapValue returns the value of key in a mapping node, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func credentialNames(cfg *configs.Config) []string {
	names := make([]string, 0, len(cfg.Credentials))
	for n := range cfg.Credentials {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// checkOut refuses an --out that exists and is not the --config file.
func (c *importCmd) checkOut() error {
	if c.out == "" {
		return nil
	}
	fi, err := os.Stat(c.out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return usageError("import: --out %s: %v", c.out, err)
	}
	if in, err := os.Stat(c.config); err == nil && os.SameFile(fi, in) {
		return nil
	}
	return &exitError{exitUsage, pbirefresh.WithHint(fmt.Errorf("import: --out %s already exists", c.out),
		"give a new file, or the --config file itself to add the jobs to it")}
}

func (c *importCmd) outName() string {
	if c.out == "" {
		return "(import output)"
	}
	return c.out
}

func (c *importCmd) inPlace() bool {
	if c.out == "" {
		return false
	}
	a, err1 := os.Stat(c.out)
	b, err2 := os.Stat(c.config)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// resolveWorkspace takes a GUID as an id and anything else as a name. An
// ambiguous name is a usage error; one not found is most often a missing
// membership, so it stays exit 3.
func resolveWorkspace(ctx context.Context, client *refresh.Client, arg string) (refresh.Workspace, error) {
	if strictyaml.IsGUID(arg) {
		ws, err := client.Workspace(ctx, arg)
		if err != nil {
			return ws, fmt.Errorf("read workspace %s: %w", arg, err)
		}
		return ws, nil
	}
	ws, err := client.ResolveWorkspace(ctx, arg)
	if errors.Is(err, refresh.ErrNameAmbiguous) {
		return ws, &exitError{exitUsage, err}
	}
	return ws, err
}

// readWorkspace reads the datasets of a workspace and their schedules, in
// name order (then id), so that job names come out the same every time.
func readWorkspace(ctx context.Context, client *refresh.Client, ws refresh.Workspace) ([]*importedDataset, error) {
	list, err := client.Datasets(ctx, ws.ID)
	if err != nil {
		return nil, fmt.Errorf("list the datasets of workspace %q: %w", ws.Name, err)
	}
	slices.SortStableFunc(list, func(a, b refresh.DatasetInfo) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	count := map[string]int{}
	for _, ds := range list {
		count[ds.Name]++
	}
	var out []*importedDataset
	for _, ds := range list {
		d := &importedDataset{ws: ws, ds: ds, twin: count[ds.Name] > 1}
		out = append(out, d)
		if !ds.Refreshable {
			d.why = "not refreshable (DirectQuery or live connection)"
			continue
		}
		d.sched, err = client.Schedule(ctx, refresh.Dataset{WorkspaceID: ws.ID, DatasetID: ds.ID})
		if err != nil {
			return nil, fmt.Errorf("read the refresh schedule of dataset %q in workspace %q: %w", ds.Name, ws.Name, err)
		}
		if !d.sched.Enabled && len(d.sched.Times) == 0 {
			d.why = "no Power BI schedule"
			continue
		}
		if d.exprs, d.zone, err = CronOf(d.sched); err != nil {
			d.why = err.Error()
			if errors.Is(err, errNoTimes) {
				d.why += "; write its job by hand"
			}
		}
	}
	return out, nil
}

// plan decides the jobs and returns the configuration text with the new
// ones added, and how many were added.
func (c *importCmd) plan(cfg *configs.Config, input []byte, list []*importedDataset) ([]byte, int, error) {
	// The jobs already refreshing a dataset, however they name it: by ids,
	// by names (a job written by hand with names was not recognised, and
	// the import added a second job for its dataset), or a mix. A name is
	// resolved among the workspaces and datasets listed here by the
	// daemon's own rule (an exact match, else the only match without
	// regard to case); one the daemon could not resolve matches nothing.
	var workspaces []refresh.Workspace
	datasets := map[string][]refresh.DatasetInfo{}
	for _, d := range list {
		if _, ok := datasets[d.ws.ID]; !ok {
			workspaces = append(workspaces, d.ws)
		}
		datasets[d.ws.ID] = append(datasets[d.ws.ID], d.ds)
	}
	byDataset := map[string][]*configs.Job{}
	taken := map[string]bool{}
	for _, j := range cfg.Jobs {
		taken[j.Name] = true
		wsID, dsID := j.WorkspaceID, j.DatasetID
		if wsID == "" && j.Workspace != "" {
			ws, _ := refresh.PickByName(workspaces, j.Workspace, func(w refresh.Workspace) string { return w.Name })
			wsID = ws.ID
		}
		if dsID == "" && j.Dataset != "" && wsID != "" {
			var inWS []refresh.DatasetInfo
			for id, list := range datasets {
				if strings.EqualFold(id, wsID) {
					inWS = append(inWS, list...)
				}
			}
			ds, _ := refresh.PickByName(inWS, j.Dataset, func(d refresh.DatasetInfo) string { return d.Name })
			dsID = ds.ID
		}
		if wsID == "" || dsID == "" {
			continue // a dataflow's job, or a name not resolved here
		}
		k := strings.ToLower(wsID + "/" + dsID)
		byDataset[k] = append(byDataset[k], j)
	}
	// The jobs reproduce Power BI's DST behaviour under the default policy;
	// other defaults are overridden in each job.
	d := cfg.Defaults.DST
	ownDST := d.Gap != pbirefresh.GapShift || d.Repeat != pbirefresh.RepeatFirst
	var blocks []string
	added := 0
	for _, ds := range list {
		if ds.exprs == nil {
			continue
		}
		if have := byDataset[strings.ToLower(ds.ws.ID+"/"+ds.ds.ID)]; len(have) > 0 {
			var names []string
			for _, j := range have {
				names = append(names, j.Name)
			}
			switch {
			case sameSchedule(have, ds.exprs, ds.zone) && anyEnabled(have):
				ds.present = true
				ds.jobs = names
			case sameSchedule(have, ds.exprs, ds.zone):
				// Imported while Power BI's schedule was off, so paused:
				// not reproduced. Turning the built-in schedule off now
				// (--disable-builtin) would leave the dataset refreshed by
				// nobody.
				ds.why = "already in the configuration as paused job " + strings.Join(names, ", ") +
					" (enabled: false); set enabled: true on it before turning Power BI's schedule off"
			default:
				ds.why = "already refreshed by job " + strings.Join(names, ", ") + " on another schedule"
			}
			continue
		}
		base := jobSlug(ds.ds.Name, ds.ds.ID)
		for _, e := range ds.exprs {
			name := base
			if len(ds.exprs) > 1 {
				name += "-" + minuteSuffix(e)
			}
			ds.jobs = append(ds.jobs, unique(name, taken))
		}
		blocks = append(blocks, c.jobBlock(ds, ownDST))
		added += len(ds.jobs)
	}
	if added == 0 {
		return input, 0, nil
	}
	text, err := insertJobs(input, blocks)
	return text, added, err
}

// anyEnabled reports whether one of the jobs runs (is not paused).
func anyEnabled(jobs []*configs.Job) bool {
	return slices.ContainsFunc(jobs, func(j *configs.Job) bool { return j.Enabled == nil || *j.Enabled })
}

// sameSchedule reports whether the jobs are exactly one per expression, in
// the zone: what an earlier import wrote.
func sameSchedule(jobs []*configs.Job, exprs []string, zone string) bool {
	var have, want []string
	for _, j := range jobs {
		if j.Location == nil {
			return false
		}
		have = append(have, strings.Join(strings.Fields(j.Schedule), " ")+"|"+j.Location.String())
	}
	for _, e := range exprs {
		want = append(want, e+"|"+zone)
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

// jobSlug makes a job name from a dataset name: lower case ASCII letters
// and digits joined by '-', accented Latin letters without their accents;
// a name with none of those gives "dataset-" and the id's first group.
func jobSlug(name, id string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		s := ""
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			s = string(r)
		default:
			s = latinFold[r]
		}
		if s == "" {
			dash = b.Len() > 0
			continue
		}
		if dash {
			b.WriteByte('-')
			dash = false
		}
		b.WriteString(s)
	}
	slug := b.String()
	if len(slug) > 80 {
		slug = strings.TrimRight(slug[:80], "-")
	}
	if slug == "" {
		first, _, _ := strings.Cut(id, "-")
		slug = "dataset-" + strings.ToLower(first)
	}
	return slug
}

// latinFold spells common accented Latin letters (lower case) in ASCII.
var latinFold = func() map[rune]string {
	m := map[rune]string{'ß': "ss", 'æ': "ae", 'œ': "oe", 'ø': "o", 'đ': "d", 'ð': "d", 'þ': "th", 'ł': "l", 'ı': "i"}
	for base, letters := range map[string]string{
		"a": "àáâãäåāăą", "c": "çćĉċč", "d": "ď", "e": "èéêëēĕėęě", "g": "ĝğġģ", "h": "ĥħ",
		"i": "ìíîïĩīĭį", "j": "ĵ", "k": "ķ", "l": "ĺļľŀ", "n": "ñńņňŉ", "o": "òóôõöōŏő",
		"r": "ŕŗř", "s": "śŝşšș", "t": "ţťŧț", "u": "ùúûüũūŭůűų", "w": "ŵ", "y": "ýÿŷ", "z": "źżž",
	} {
		for _, r := range letters {
			if r > 127 {
				m[r] = base
			}
		}
	}
	return m
}()

// minuteSuffix names a job of a split schedule by its minutes: "00",
// "30", "00-30".
func minuteSuffix(expr string) string {
	minutes, _, _ := strings.Cut(expr, " ")
	parts := strings.Split(minutes, ",")
	for i, p := range parts {
		if len(p) == 1 {
			parts[i] = "0" + p
		}
	}
	return strings.Join(parts, "-")
}

// unique returns name, or name-2, name-3, ... if taken, and takes it.
func unique(name string, taken map[string]bool) string {
	n := name
	for i := 2; taken[n]; i++ {
		n = fmt.Sprintf("%s-%d", name, i)
	}
	taken[n] = true
	return n
}

// jobBlock writes a dataset's jobs as YAML sequence items, indented by two
// spaces (insertJobs re-indents), after a comment naming the workspace,
// the dataset and the schedule as Power BI shows it. Names are quoted in
// the comment, so no name can end it.
func (c *importCmd) jobBlock(d *importedDataset, ownDST bool) string {
	var b strings.Builder
	zone := d.sched.LocalTimeZoneID
	if zone == "" {
		zone = "UTC"
	}
	fmt.Fprintf(&b, "# Workspace %q, dataset %s: Power BI schedule %s at %s (%s)\n",
		d.ws.Name, d.name(), describeDays(d.sched.Days), strings.Join(d.sched.Times, ", "), zone)
	if len(d.jobs) > 1 {
		fmt.Fprintf(&b, "# %d jobs: one cron expression cannot hold these times.\n", len(d.jobs))
	}
	if !d.sched.Enabled {
		b.WriteString("# The Power BI schedule is off: the job is paused too.\n")
	}
	for i, name := range d.jobs {
		fmt.Fprintf(&b, "- name: %s\n", name)
		fmt.Fprintf(&b, "  schedule: %q\n", d.exprs[i])
		fmt.Fprintf(&b, "  timezone: %s\n", yamlScalar(d.zone))
		if !d.sched.Enabled {
			b.WriteString("  enabled: false\n")
		}
		fmt.Fprintf(&b, "  credential: %s\n", yamlScalar(c.credential))
		fmt.Fprintf(&b, "  workspace_id: %s\n", yamlScalar(d.ws.ID))
		fmt.Fprintf(&b, "  dataset_id: %s\n", yamlScalar(d.ds.ID))
		if ownDST {
			b.WriteString("  dst: {gap: shift, repeat: first}   # as Power BI's own schedule\n")
		}
	}
	return b.String()
}

// yamlScalar writes s as a YAML scalar, quoted only if it must be.
func yamlScalar(s string) string {
	b, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(b), "\n")
}

// insertJobs adds the job blocks to the configuration's text, keeping
// every other line as it was: after the last item of a block jobs list
// (before the comments that lead the next top-level key), in place of an
// empty one (jobs:, jobs: [], jobs: ~), or at the end under a new jobs:
// key. A non-empty flow list (jobs: [{...}]) is refused.
func insertJobs(input []byte, blocks []string) ([]byte, error) {
	nl := "\n"
	if bytes.Contains(input, []byte("\r\n")) {
		nl = "\r\n"
	}
	text := strings.ReplaceAll(string(input), "\r\n", "\n")
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	// A document end marker (...) closes the file: the jobs go before it.
	var docEnd []string
	for i := len(lines) - 1; i >= 0; i-- {
		if t := strings.TrimSpace(lines[i]); t == "..." || strings.HasPrefix(t, "... ") || strings.HasPrefix(t, "...\t") {
			lines, docEnd = lines[:i], lines[i:]
			break
		} else if t != "" && !strings.HasPrefix(t, "#") {
			break
		}
	}
	var doc yaml.Node
	yaml.Unmarshal([]byte(text), &doc)
	var root *yaml.Node
	if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		root = doc.Content[0]
	}
	indent := func(dash int) []string {
		var out []string
		pad := strings.Repeat(" ", dash)
		for _, blk := range blocks {
			for _, l := range strings.Split(strings.TrimSuffix(blk, "\n"), "\n") {
				out = append(out, pad+l)
			}
		}
		return out
	}
	var key, val *yaml.Node
	next := 0 // line (1-based) of the top-level key after jobs, 0 for none
	if root != nil {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if key != nil && next == 0 {
				next = root.Content[i].Line
			}
			if root.Content[i].Value == "jobs" {
				key, val = root.Content[i], root.Content[i+1]
			}
		}
	}
	var out []string
	switch {
	case key == nil:
		for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
			lines = lines[:len(lines)-1]
		}
		out = append(lines, "", "jobs:")
		out = append(out, indent(2)...)
	case val.Kind == yaml.SequenceNode && val.Style&yaml.FlowStyle == 0 && len(val.Content) > 0:
		// A block sequence's column is its first dash's, also when the
		// item starts on the line after a bare "-".
		dash := val.Column - 1
		end := len(lines)
		if next > 0 {
			end = next - 1
		}
		// Blank lines and top-level comments before the next key lead it.
		for end > val.Content[len(val.Content)-1].Line && (strings.TrimSpace(lines[end-1]) == "" || strings.HasPrefix(lines[end-1], "#")) {
			end--
		}
		out = append(out, lines[:end]...)
		out = append(out, indent(dash)...)
		out = append(out, lines[end:]...)
	case val.Kind == yaml.SequenceNode && len(val.Content) > 0:
		return nil, errors.New("jobs is written as a flow list ([...]); write it as a block list (- name: ...) to import into it")
	default:
		// jobs: with nothing, [] or ~: the key's line becomes "jobs:".
		comment := ""
		if key.LineComment != "" {
			comment = "  " + key.LineComment
		} else if val.LineComment != "" {
			comment = "  " + val.LineComment
		}
		out = append(out, lines[:key.Line-1]...)
		out = append(out, "jobs:"+comment)
		out = append(out, indent(2)...)
		out = append(out, lines[max(key.Line, flowEnd(lines, val)):]...)
	}
	out = append(out, docEnd...)
	return []byte(strings.Join(out, nl) + nl), nil
}

// flowEnd is the line (1-based) where an empty flow list ("[" ... "]")
// ends, for one written over several lines; a scalar's own line.
func flowEnd(lines []string, val *yaml.Node) int {
	if val.Kind != yaml.SequenceNode || val.Style&yaml.FlowStyle == 0 {
		return val.Line
	}
	col := val.Column // just past the "["
	for i := val.Line - 1; i < len(lines); i++ {
		l := lines[i]
		if i > val.Line-1 {
			col = 0
		}
		for j := col; j < len(l); j++ {
			if l[j] == '#' {
				break // a comment to the end of the line
			}
			if l[j] == ']' {
				return i + 1
			}
		}
	}
	return val.Line
}

// write puts the configuration on stdout, in a new file, or in place of
// the --config file (atomically, with its permissions).
func (c *importCmd) write(text []byte, added int) error {
	if c.out == "" {
		if _, err := c.stdout.Write(text); err != nil {
			return fmt.Errorf("write the configuration: %w", err)
		}
		return nil
	}
	perm := os.FileMode(0o600)
	if fi, err := os.Stat(c.config); err == nil {
		perm = fi.Mode().Perm()
	}
	if c.inPlace() {
		if added == 0 {
			return nil
		}
		if err := replaceFile(c.out, text, perm); err != nil {
			return fmt.Errorf("write %s: %w", c.out, err)
		}
		return nil
	}
	f, err := os.OpenFile(c.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, os.ErrExist) {
		return &exitError{exitUsage, fmt.Errorf("import: --out %s appeared while importing; nothing was written", c.out)}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", c.out, err)
	}
	_, err = f.Write(text)
	if err = errors.Join(err, f.Close()); err != nil {
		os.Remove(c.out)
		return fmt.Errorf("write %s: %w", c.out, err)
	}
	return nil
}

// replaceFile replaces a file (the target of a symbolic link) by a new
// one with text, through a rename: a crash leaves the old file or the new.
func replaceFile(path string, text []byte, perm os.FileMode) error {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pbirefresh-import-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone already after the rename
	_, err = tmp.Write(text)
	if err = errors.Join(err, tmp.Chmod(perm), tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func jobCount(n int) string {
	if n == 1 {
		return "1 job"
	}
	return fmt.Sprintf("%d jobs", n)
}

// report tells, on stderr, what became of each dataset.
func (c *importCmd) report(list []*importedDataset) {
	var ws refresh.Workspace
	for _, d := range list {
		if d.ws.ID != ws.ID {
			ws = d.ws
			capacity := "shared capacity"
			if ws.Dedicated {
				capacity = "dedicated capacity"
			}
			fmt.Fprintf(c.stderr, "workspace %q (%s, %s):\n", ws.Name, ws.ID, capacity)
		}
		switch {
		case d.present:
			fmt.Fprintf(c.stderr, "  present   %s: already in the configuration as %s\n", d.name(), strings.Join(d.jobs, ", "))
		case d.imported():
			state := ""
			if !d.sched.Enabled {
				state = ", paused: the Power BI schedule is off"
			}
			var jobs []string
			for i, name := range d.jobs {
				jobs = append(jobs, fmt.Sprintf("%s %q", name, d.exprs[i]))
			}
			fmt.Fprintf(c.stderr, "  imported  %s: %s (%s)%s\n", d.name(), strings.Join(jobs, ", "), d.zone, state)
		default:
			fmt.Fprintf(c.stderr, "  skipped   %s: %s\n", d.name(), d.why)
		}
	}
}

// stillOn lists the imported datasets whose built-in schedule is on.
func stillOn(list []*importedDataset) []*importedDataset {
	var on []*importedDataset
	for _, d := range list {
		if d.imported() && d.sched.Enabled {
			on = append(on, d)
		}
	}
	return on
}

// adviseDisable names the built-in schedules still on and the command
// that turns them off.
func (c *importCmd) adviseDisable(list []*importedDataset) {
	on := stillOn(list)
	if len(on) == 0 {
		return
	}
	fmt.Fprintln(c.stderr, "\nPower BI's own schedules are still on for these datasets, so each would be refreshed twice:")
	for _, d := range on {
		fmt.Fprintf(c.stderr, "  %s\n", d.label())
	}
	file := c.out
	if file == "" {
		file = "FILE"
		fmt.Fprintln(c.stderr, "Save the configuration as FILE; once pbirefresh runs it, turn them off with:")
	} else {
		fmt.Fprintln(c.stderr, "Once pbirefresh runs this configuration, turn them off with:")
	}
	args := []string{"pbirefresh", "import", "--config", file, "--credential", c.credential}
	seen := map[string]bool{}
	for _, d := range on {
		if !seen[d.ws.ID] {
			seen[d.ws.ID] = true
			args = append(args, "--workspace", d.ws.ID)
		}
	}
	args = append(args, "--out", file, "--disable-builtin")
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	fmt.Fprintf(c.stderr, "  %s\n(or, as each dataset's owner, in its settings: Scheduled refresh, off)\n", strings.Join(args, " "))
}

// shellQuote quotes an argument for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// disableBuiltin turns off the built-in schedules of the imported
// datasets, one by one, and returns how many could not be.
func (c *importCmd) disableBuiltin(ctx context.Context, client *refresh.Client, list []*importedDataset) int {
	on := stillOn(list)
	if len(on) == 0 {
		fmt.Fprintln(c.stderr, "\nno imported dataset has its Power BI schedule on")
		return 0
	}
	fmt.Fprintln(c.stderr, "\nturning off Power BI's own schedules of the imported datasets:")
	failed := 0
	for _, d := range on {
		err := client.DisableSchedule(ctx, refresh.Dataset{WorkspaceID: d.ws.ID, DatasetID: d.ds.ID})
		if err == nil {
			d.sched.Enabled = false
			fmt.Fprintf(c.stderr, "  [ok]   %s\n", d.label())
			continue
		}
		failed++
		fmt.Fprintf(c.stderr, "  [FAIL] %s: %v\n", d.label(), err)
		if h := pbirefresh.Hint(err); h != "" {
			if d.ds.ConfiguredBy != "" {
				h += "; the owner is " + d.ds.ConfiguredBy
			}
			fmt.Fprintf(c.stderr, "         fix: %s\n", h)
		}
	}
	return failed
}

// sharedDaily is shared capacity's limit: 8 refreshes a day per dataset,
// API and scheduled together (docs/powerbi.md, "Limits and quotas").
const sharedDaily = 8

// warnQuota warns, for each imported dataset on shared capacity, when its
// enabled jobs and its built-in schedule, if still on, can start more than
// 8 refreshes in some 24 hours.
func (c *importCmd) warnQuota(cfg *configs.Config, list []*importedDataset) {
	now := time.Now()
	for _, d := range list {
		if !d.imported() || d.ws.Dedicated {
			continue
		}
		var names []string
		var jobsOf []*configs.Job
		for _, j := range cfg.Jobs {
			if strings.EqualFold(j.WorkspaceID, d.ws.ID) && strings.EqualFold(j.DatasetID, d.ds.ID) && *j.Enabled && j.Parsed != nil {
				names = append(names, j.Name)
				jobsOf = append(jobsOf, j)
			}
		}
		jobs, total := datasetDaily(now, jobsOf, d.sched)
		if total <= sharedDaily {
			continue
		}
		fmt.Fprintf(c.stderr, "warning: %s is on shared capacity, which allows %d refreshes a day, API and scheduled together; up to %d can start within 24 hours (a night the clocks change included): %d from %s, %d from Power BI's own schedule, still on. Turn that off (--disable-builtin) or refresh less often\n",
			d.label(), sharedDaily, total, jobs, strings.Join(names, ", "), total-jobs)
	}
}
