package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/refresh"
)

// target is what one run of a job refreshes: a dataset or a dataflow, its
// names resolved to ids.
type target struct {
	dataset  refresh.Dataset
	dataflow *refresh.Dataflow
	opts     refresh.Options
}

// usesNames reports whether the job names its workspace or dataset.
func usesNames(j *configs.Job) bool { return j.Workspace != "" || j.Dataset != "" }

// resolvedIDs is a job's names as last resolved.
type resolvedIDs struct {
	key                  string // the names it was resolved from
	workspaceID, itemID  string
	err                  error
	at                   time.Time
	workspace, itemLabel string
}

// retryFailedLookup: a failed lookup is tried again on the job's next run,
// but not more often than this (a job every minute with a typo in its
// dataset's name costs one lookup a minute, not one per poll).
const retryFailedLookup = time.Minute

// names resolves and remembers the ids of jobs that give names. A job is
// resolved at start and on reload (in the background: 10,000 jobs do not
// wait for it), again when a run finds its ids gone (a 404: the dataset
// was recreated under the same name), and, after a failure, at its next
// run.
type names struct {
	logger *slog.Logger
	now    func() time.Time
	mu     sync.Mutex
	ids    map[string]resolvedIDs
}

func newNames(logger *slog.Logger, now func() time.Time) *names {
	return &names{logger: logger, now: now, ids: map[string]resolvedIDs{}}
}

func nameKey(j *configs.Job) string {
	return j.Credential + "\x00" + j.WorkspaceID + "\x00" + j.Workspace + "\x00" + j.DatasetID + "\x00" + j.Dataset
}

// of returns the job's target; fresh forces a new lookup.
func (n *names) of(ctx context.Context, j *configs.Job, client *refresh.Client, fresh bool) (target, error) {
	_, opts, _ := jobRequest(j)
	if j.IsDataflow() && j.Workspace == "" {
		return target{dataflow: &refresh.Dataflow{WorkspaceID: j.WorkspaceID, DataflowID: j.DataflowID}, opts: opts}, nil
	}
	if !usesNames(j) {
		return target{dataset: refresh.Dataset{WorkspaceID: j.WorkspaceID, DatasetID: j.DatasetID}, opts: opts}, nil
	}
	key := nameKey(j)
	n.mu.Lock()
	r, ok := n.ids[j.Name]
	n.mu.Unlock()
	if !ok || r.key != key || fresh || r.err != nil && n.now().Sub(r.at) >= retryFailedLookup {
		r = n.resolve(ctx, j, client, key, ok && r.key == key && r.err == nil, r, nil)
	}
	if r.err != nil {
		return target{}, r.err
	}
	if j.IsDataflow() {
		return target{dataflow: &refresh.Dataflow{WorkspaceID: r.workspaceID, DataflowID: j.DataflowID}, opts: opts}, nil
	}
	return target{dataset: refresh.Dataset{WorkspaceID: r.workspaceID, DatasetID: r.itemID}, opts: opts}, nil
}

// resolve looks the job's names up and remembers the answer; before is
// the previous good answer, if any, to log a change.
func (n *names) resolve(ctx context.Context, j *configs.Job, client *refresh.Client, key string, had bool, before resolvedIDs, memo *lookups) resolvedIDs {
	r := resolvedIDs{key: key, at: n.now(), workspaceID: j.WorkspaceID, itemID: j.DatasetID}
	if j.Workspace != "" {
		ws, err := memo.workspace(ctx, client, j.Credential, j.Workspace)
		if err != nil {
			r.err = err
		}
		r.workspaceID = ws.ID
	}
	if r.err == nil && j.Dataset != "" {
		ds, err := memo.dataset(ctx, client, j.Credential, r.workspaceID, j.Dataset)
		if err != nil {
			r.err = err
		}
		r.itemID = ds.ID
	}
	if ctx.Err() != nil {
		return r // shutting down: remember nothing
	}
	if r.err != nil && had && !errors.Is(r.err, refresh.ErrNameNotFound) && !errors.Is(r.err, refresh.ErrNameAmbiguous) {
		// A passing fault (throttling, network) does not undo names that
		// resolved: keep the ids, and look again at the next reload or 404.
		n.logger.Warn("names could not be looked up again; keeping the ids they resolved to", "job", j.Name, "error", r.err)
		before.at = r.at
		return before
	}
	n.mu.Lock()
	n.ids[j.Name] = r
	n.mu.Unlock()
	attrs := []any{"job", j.Name}
	if j.Workspace != "" {
		attrs = append(attrs, "workspace", j.Workspace, "workspace_id", r.workspaceID)
	}
	if j.Dataset != "" {
		attrs = append(attrs, "dataset", j.Dataset, "dataset_id", r.itemID)
	}
	switch {
	case r.err != nil:
		n.logger.Error("names not resolved; the job's runs fail until they are", append(attrs, "error", r.err, "hint", pbirefresh.Hint(r.err))...)
	case had && (before.workspaceID != r.workspaceID || before.itemID != r.itemID):
		n.logger.Warn("names now resolve to other ids", append(attrs, "was_workspace_id", before.workspaceID, "was_dataset_id", before.itemID)...)
	case !had:
		n.logger.Info("names resolved", attrs...)
	}
	return r
}

// peek returns what a job's names last resolved to, without a lookup:
// empty ids before the first one.
func (n *names) peek(j *configs.Job) (workspaceID, itemID string, err error) {
	n.mu.Lock()
	r, ok := n.ids[j.Name]
	n.mu.Unlock()
	if !ok || r.key != nameKey(j) {
		return "", "", nil
	}
	return r.workspaceID, r.itemID, r.err
}

// resolveIn resolves one job in a pass (resolveAll) unless its names are
// resolved already.
func (n *names) resolveIn(ctx context.Context, j *configs.Job, client *refresh.Client, memo *lookups) {
	key := nameKey(j)
	n.mu.Lock()
	r, ok := n.ids[j.Name]
	n.mu.Unlock()
	if ok && r.key == key && r.err == nil {
		return
	}
	n.resolve(ctx, j, client, key, false, r, memo)
}

// forget drops the jobs no longer configured.
func (n *names) forget(keep map[string]bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name := range n.ids {
		if !keep[name] {
			delete(n.ids, name)
		}
	}
}

// lookups remembers, for one pass over many jobs, each workspace name's
// answer and each workspace's dataset list: 10,000 jobs in one workspace
// cost two requests, not 20,000. A nil *lookups asks every time.
type lookups struct {
	mu         sync.Mutex
	workspaces map[string]func() (refresh.Workspace, error)
	datasets   map[string]func() ([]refresh.DatasetInfo, error)
}

func newLookups() *lookups {
	return &lookups{workspaces: map[string]func() (refresh.Workspace, error){}, datasets: map[string]func() ([]refresh.DatasetInfo, error){}}
}

func (l *lookups) workspace(ctx context.Context, client *refresh.Client, cred, name string) (refresh.Workspace, error) {
	if l == nil {
		return client.ResolveWorkspace(ctx, name)
	}
	l.mu.Lock()
	f, ok := l.workspaces[cred+"\x00"+name]
	if !ok {
		f = sync.OnceValues(func() (refresh.Workspace, error) { return client.ResolveWorkspace(ctx, name) })
		l.workspaces[cred+"\x00"+name] = f
	}
	l.mu.Unlock()
	return f()
}

func (l *lookups) dataset(ctx context.Context, client *refresh.Client, cred, workspaceID, name string) (refresh.DatasetInfo, error) {
	if l == nil {
		return client.ResolveDataset(ctx, workspaceID, name)
	}
	l.mu.Lock()
	f, ok := l.datasets[cred+"\x00"+workspaceID]
	if !ok {
		f = sync.OnceValues(func() ([]refresh.DatasetInfo, error) { return client.Datasets(ctx, workspaceID) })
		l.datasets[cred+"\x00"+workspaceID] = f
	}
	l.mu.Unlock()
	list, err := f()
	if err != nil {
		return refresh.DatasetInfo{}, err
	}
	return refresh.MatchDataset(list, workspaceID, name)
}

// resolveAll resolves the named jobs in the background, a few at a time,
// each workspace looked up once.
func (n *names) resolveAll(ctx context.Context, jobs []*configs.Job, clients map[string]*refresh.Client) {
	sem := make(chan struct{}, 4)
	memo := newLookups()
	var wg sync.WaitGroup
	for _, j := range jobs {
		if !usesNames(j) {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			n.resolveIn(ctx, j, clients[j.Credential], memo)
		}()
	}
	wg.Wait()
}

// notFound reports whether a run failed because the service answered 404
// before anything started: the ids it used are gone.
func notFound(res refresh.Result) bool {
	var ae *refresh.APIError
	return res.RefreshID == "" && res.Outcome == pbirefresh.Error && errors.As(res.Err, &ae) && ae.Status == http.StatusNotFound
}

// run starts the target's refresh and follows it.
func (t target) run(ctx context.Context, client *refresh.Client, j *configs.Job, pol refresh.Policy) refresh.Result {
	if t.dataflow != nil {
		return client.RunDataflow(ctx, *t.dataflow, refresh.DataflowOptions{NotifyOption: j.NotifyOption}, pol, nil)
	}
	return client.Run(ctx, t.dataset, t.opts, pol, nil)
}

// findStarted settles a run left pending: the refresh its POST started,
// if any, from the history (never by posting again).
func (t target) findStarted(ctx context.Context, client *refresh.Client, posted time.Time, pol refresh.Policy) (string, error) {
	if t.dataflow != nil {
		return client.FindStartedDataflow(ctx, *t.dataflow, posted, pol)
	}
	return client.FindStarted(ctx, t.dataset, t.opts, posted, pol)
}

// follow reattaches to a refresh started earlier.
func (t target) follow(ctx context.Context, client *refresh.Client, id string, posted time.Time, pol refresh.Policy) refresh.Result {
	if t.dataflow != nil {
		return client.FollowDataflow(ctx, *t.dataflow, refresh.Refresh{ID: id, Posted: posted}, pol)
	}
	return client.Follow(ctx, refresh.Refresh{Dataset: t.dataset, ID: id, Enhanced: t.opts.Enhanced, Posted: posted}, pol)
}

// ids names what the target refreshes, for logs and comparisons.
func (t target) ids() string {
	if t.dataflow != nil {
		return t.dataflow.WorkspaceID + "/dataflows/" + t.dataflow.DataflowID
	}
	return t.dataset.WorkspaceID + "/datasets/" + t.dataset.DatasetID
}
