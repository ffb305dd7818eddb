package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/notify"
	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/scheduler"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

// stateStore is what the daemon needs of its durable state.
type stateStore interface {
	scheduler.Journal
	Begin(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind) (int64, error)
	SetRefresh(ctx context.Context, id int64, refreshID string) error
	Finish(ctx context.Context, id int64, o store.Outcome) error
	Claimed(ctx context.Context, refreshID string) (bool, error)
	// Adopt takes over the runs in flight no live process follows: at
	// start-up, those an earlier process left; with replicas, those of
	// replicas whose lease expired.
	Adopt(ctx context.Context) ([]store.Run, error)
	scheduler.LastSlots
	// Owned lists this replica's own runs in flight.
	Owned(ctx context.Context) ([]store.Run, error)
	Replicas(ctx context.Context) ([]store.Replica, error)
	// Self is this process's replica id; Gate fails while it may not claim
	// or post (a replica without a valid lease).
	Self() string
	Gate() error
	Runs(ctx context.Context, q store.Query) ([]store.Run, error)
	RecentDurations(ctx context.Context, n int) (map[string][]time.Duration, error)
	Freshness(ctx context.Context) (map[string]store.Freshness, error)
	Prune(ctx context.Context, keep int, maxAge time.Duration) (int64, error)
	// SetChain says which jobs run after which; Finish records what an
	// end triggers (or skips) in the same transaction.
	SetChain(c *store.Chain)
	Waiting(ctx context.Context, job string, ups []string) ([]string, error)
	Triggered(ctx context.Context) ([]store.Run, error)
	Claim(ctx context.Context, job string, slot time.Time) (int64, error)
	// SetPaused and Pauses remember pauses across restarts (see journal).
	SetPaused(ctx context.Context, job string, paused bool, at time.Time) error
	Pauses(ctx context.Context) (map[string]store.Pause, error)
	// Ping fails when the database does not answer or the last write
	// failed: /readyz reports it.
	Ping(ctx context.Context) error
	Close() error
}

// laterStore records a run's refresh id without making the run wait for
// the commit (SQLite's group commit). Nothing the run does next depends on
// the record, and its outcome, written later, commits with it or after it.
type laterStore interface {
	SetRefreshLater(ctx context.Context, id int64, refreshID string, done func(error))
}

var (
	_ stateStore      = (*sqlite.Store)(nil)
	_ laterStore      = (*sqlite.Store)(nil)
	_ scheduler.Clock = refresh.SystemClock{}
)

// runCmd is `pbirefresh run`: the daemon.
type runCmd struct {
	stdout, stderr io.Writer
	logger         *slog.Logger
	config         string
	// started, if set, is closed once the daemon is scheduling (tests and
	// benchmarks measure start-up with it).
	started chan struct{}

	env      *env
	store    stateStore
	sched    *scheduler.Scheduler
	metrics  *metrics
	notifier *notify.Notifier
	host     string
	http     *httpServer

	scheduling atomic.Bool
	base       context.Context // the daemon's context, for manual runs from the API

	mu      sync.Mutex
	cfg     *configs.Config
	clients map[string]*refresh.Client
	wg      sync.WaitGroup // adopted runs

	// member is cancelled when a replica loses its lease: its runs stop
	// at once (their refreshes keep running; another replica adopts them).
	memberMu     sync.Mutex
	member       context.Context
	memberCancel context.CancelFunc

	fresh *freshness
	names *names
	// following holds the ids of the runs a goroutine here follows.
	following sync.Map
	// recording holds the refresh ids whose record has not committed yet
	// (SetRefreshLater): they are claimed already.
	recording sync.Map
	// gateNotes carries what a job's upstream gate decided (job, slot) to
	// its run; chainBackoff holds, per job, when the dispatcher may try
	// its triggered runs again (busy elsewhere); strangers, when a
	// triggered run of a job this replica does not know was first seen.
	gateNotes, chainBackoff, strangers sync.Map
	// builtinChecked: the start-up check of built-in schedules has run.
	builtinChecked bool

	// chain is the configuration's after links; chainPoke wakes the
	// dispatcher; changed is closed (and replaced) at every recorded end.
	chain     *store.Chain
	chainPoke chan struct{}
	changedMu sync.Mutex
	changed   chan struct{}

	// durations holds each job's recent completed durations (newest
	// first), read from the store once and kept up to date as runs end.
	durMu     sync.Mutex
	durations map[string][]time.Duration
}

// recentRuns is how many completed durations guide a job's polling.
const recentRuns = 5

func (c *runCmd) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.config, "config", "", "configuration file")
	return parseFlags(fs, args)
}

func (c *runCmd) Run(ctx context.Context) error {
	cfg, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	c.host, _ = os.Hostname()
	c.base = ctx
	c.newMember()
	clock := refresh.SystemClock{}
	// SQLite: the file is taken first, so a foreign, unwritable or busy
	// file stops the start before anything else happens. PostgreSQL needs
	// the secrets (its password) first.
	var st stateStore
	hooks := stateHooks{logger: c.logger, onLeaseLost: c.leaseLost, onJoin: c.rejoined}
	if cfg.State.Postgres == nil {
		if st, err = openState(ctx, cfg, nil, c.host, hooks); err != nil {
			return err
		}
	}
	c.env, err = newEnv(cfg, c.logger, clock)
	if err != nil {
		if st != nil {
			st.Close()
		}
		return err
	}
	if st == nil {
		if st, err = openState(ctx, cfg, c.env, c.host, hooks); err != nil {
			return err
		}
	}
	c.store = st
	if c.durations, err = st.RecentDurations(ctx, recentRuns); err != nil {
		return err
	}
	health, err := st.Freshness(ctx)
	if err != nil {
		return err
	}
	c.fresh = newFreshness(time.Now, health)
	c.names = newNames(c.logger, time.Now)
	c.chainPoke, c.changed = make(chan struct{}, 1), make(chan struct{})
	c.base = ctx
	c.metrics = newMetrics(func() *scheduler.Scheduler { return c.sched }, c.jobNames, c.replicaState,
		newHealthGauges(c.fresh.all, func() bool { return len(c.notReady(context.Background())) == 0 }))
	c.env.secrets.OnRead = c.metrics.vaultRead
	c.sched = scheduler.New(clock, &journal{stateStore: c.store, m: c.metrics, logger: c.logger}, c.logger)
	c.sched.Idle = func(string) { c.chainEnded() }
	if err := c.apply(ctx, cfg); err != nil {
		return err
	}
	if err := c.startHTTP(cfg); err != nil {
		return err
	}
	if err := c.startNotifier(ctx, cfg); err != nil {
		return err
	}
	c.adoptOrphans(ctx)
	go c.dispatchLoop(ctx)
	if cfg.State.Postgres != nil {
		go c.takeovers(ctx, cfg.State.Postgres.LeaseTTL.D()/3)
	}
	c.prune(ctx)
	// Loading a large config leaves garbage behind; hand it back to the OS
	// before settling in for months.
	runtime.GC()
	debug.FreeOSMemory()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		tick := time.NewTicker(time.Hour)
		defer tick.Stop()
		stale := time.NewTicker(15 * time.Second)
		defer stale.Stop()
		// With replicas, freshness is read from the store every 5 minutes
		// (and before telling a crossing): other replicas' runs end too.
		var syncTick <-chan time.Time
		if cfg.State.Postgres != nil {
			t := time.NewTicker(5 * time.Minute)
			defer t.Stop()
			syncTick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				c.reload(ctx)
			case <-tick.C:
				c.prune(ctx)
			case <-stale.C:
				c.checkStale()
			case <-syncTick:
				c.syncFreshness()
			}
		}
	}()
	state := cfg.State.Path
	if cfg.State.Postgres != nil {
		state = "postgres (replica " + c.store.Self() + ")"
	}
	c.logger.Info("pbirefresh started", "jobs", len(cfg.Jobs), "state", state, "version", versionString())
	if c.started != nil {
		close(c.started)
	}
	c.scheduling.Store(true)
	c.chainEnded() // runs triggered before a restart resume now
	notifySystemd(daemon.SdNotifyReady)
	go c.watchdog(ctx)
	c.sched.Run(ctx)
	c.scheduling.Store(false)
	notifySystemd(daemon.SdNotifyStopping)
	c.shutdown()
	return nil
}

// shutdown is the one place that owns the order of the stop, after
// SIGTERM/SIGINT ended scheduling: runs in flight stop following (their
// refreshes keep running in Power BI, nothing is cancelled) and persist;
// then the notifier delivers what they queued; then the HTTP server
// stops; Close shuts the state database last.
func (c *runCmd) shutdown() {
	c.mu.Lock()
	timeout := c.cfg.ShutdownTimeout.D()
	c.mu.Unlock()
	c.logger.Info("stopping: no new runs; persisting runs in flight", "timeout", timeout)
	wctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan struct{})
	go func() { c.sched.Wait(wctx); c.wg.Wait(); close(done) }()
	runsEnded := true
	select {
	case <-done:
	case <-wctx.Done():
		runsEnded = false
		c.logger.Warn("shutdown timeout passed with runs still persisting; they are resolved at the next start")
	}
	if c.notifier != nil {
		// Runs that outlived the timeout may still try to notify: Send
		// after Close drops and logs the event.
		nctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.notifier.Close(nctx)
		cancel()
	}
	if c.http != nil {
		c.http.shutdown(time.Second)
	}
	if runsEnded {
		c.logger.Info("stopped")
	}
}

// startNotifier resolves the targets' URLs (secret references) and starts
// delivery.
func (c *runCmd) startNotifier(ctx context.Context, cfg *configs.Config) error {
	if len(cfg.Notify) == 0 {
		return nil
	}
	var targets []notify.Target
	for _, n := range cfg.Notify {
		u, err := c.env.secrets.Secret(ctx, c.env.ref(n.URL))
		if err != nil {
			return fmt.Errorf("notify target %s: %w", n.Name, err)
		}
		on := map[notify.Kind]bool{}
		for _, e := range n.On {
			on[e] = true
		}
		targets = append(targets, notify.Target{Name: n.Name, Type: n.Type, URL: u, On: on, Timeout: n.Timeout.D(), Retries: *n.Retries})
	}
	c.notifier = notify.New(c.env.http, targets, c.logger)
	for _, t := range targets {
		c.metrics.notifies.WithLabelValues(t.Name, "sent")
		c.metrics.notifies.WithLabelValues(t.Name, "failed")
	}
	c.notifier.OnResult = func(target string, ok bool) {
		result := "sent"
		if !ok {
			result = "failed"
		}
		c.metrics.notifies.WithLabelValues(target, result).Inc()
	}
	return nil
}

// tell sends the notification a finished run deserves: failure, timeout,
// lost, or recovery (the first success after a run that was not one).
func (c *runCmd) tell(ctx context.Context, job string, slot time.Time, id int64, res refresh.Result, wasStale bool) {
	if c.notifier == nil {
		return
	}
	var kind notify.Kind
	switch res.Outcome {
	case pbirefresh.Completed:
		if wasStale {
			kind = notify.Recovery
			break
		}
		runs, _ := c.store.Runs(ctx, store.Query{Job: job, Limit: 50})
		for _, r := range runs {
			if r.ID == id || !r.Status.Result() {
				continue
			}
			if r.Status != pbirefresh.Completed {
				kind = notify.Recovery
			}
			break
		}
	case pbirefresh.TimedOut:
		kind = notify.Timeout
	case pbirefresh.Lost:
		kind = notify.Lost
	case pbirefresh.Skipped:
	default:
		kind = notify.Failure
	}
	if kind == "" {
		return
	}
	c.notifier.Send(notify.Event{Kind: kind, Job: job, Slot: slot, Status: string(res.Outcome), RefreshID: res.RefreshID,
		Error: res.Error, Code: res.Code, Hint: res.Hint, Started: res.Start, Ended: res.End, Host: c.host})
}

// checkStale tells, once per crossing, about jobs whose last success is
// older than their stale_after.
func (c *runCmd) checkStale() {
	stale := c.fresh.newlyStale()
	if len(stale) == 0 {
		return
	}
	c.mu.Lock()
	shared := c.cfg.State.Postgres != nil
	c.mu.Unlock()
	if shared {
		// Replicas: another one's success may not be known here yet, and
		// one replica tells (the oldest alive), not all of them.
		c.syncFreshness()
		if !c.designated() {
			return
		}
	}
	for _, job := range stale {
		f := c.fresh.get(job)
		if !f.Stale {
			continue
		}
		c.logger.Warn("job stale: no successful refresh within stale_after", "job", job, "last_success", f.LastSuccess, "stale_after", f.StaleAfter,
			"hint", "see the job's recent runs on the status page or with `pbirefresh history --job "+job+"`")
		if c.notifier != nil {
			c.notifier.Send(notify.Event{Kind: notify.Stale, Job: job, Status: "stale", Ended: f.LastSuccess, Host: c.host,
				Error: fmt.Sprintf("no successful refresh for %s (stale_after %s)", f.Age.Round(time.Minute), f.StaleAfter),
				Hint:  "look at the job's recent runs: `pbirefresh history --job " + job + "`"})
		}
	}
}

// syncFreshness reads every job's last success and failures in a row from
// the store: with replicas, runs end elsewhere too.
func (c *runCmd) syncFreshness() {
	ctx, cancel := context.WithTimeout(c.base, time.Minute)
	defer cancel()
	if health, err := c.store.Freshness(ctx); err == nil {
		c.fresh.sync(health)
	}
}

// designated reports whether this replica is the one that tells about
// staleness: the oldest alive (no election; when it dies the next oldest
// takes over, and a crossing told just before may be told again).
func (c *runCmd) designated() bool {
	ctx, cancel := context.WithTimeout(c.base, 10*time.Second)
	defer cancel()
	reps, err := c.store.Replicas(ctx)
	if err != nil {
		return true // better twice than never
	}
	var oldest *store.Replica
	for i := range reps {
		r := &reps[i]
		if r.Alive && (oldest == nil || r.Started.Before(oldest.Started) || r.Started.Equal(oldest.Started) && r.ID < oldest.ID) {
			oldest = r
		}
	}
	return oldest == nil || oldest.Self
}

// jobNames lists the configured jobs, for metrics.
func (c *runCmd) jobNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg == nil {
		return nil
	}
	names := make([]string, 0, len(c.cfg.Jobs))
	for _, j := range c.cfg.Jobs {
		names = append(names, j.Name)
	}
	return names
}

// journal is the scheduler's view of the store: it counts the slots the
// scheduler decides without a run, and says loudly when a write fails.
type journal struct {
	stateStore
	m      *metrics
	logger *slog.Logger
}

// The scheduler takes up a job it does not know yet (at the start, on a
// reload that adds or enables it, after a replica rejoins) from the
// journal's last slot: with these, from the job's resume when that is
// later than its last run. A job the state still says is paused is being
// resumed now (the scheduler asks only about enabled jobs; recordPauses
// records the resume once the scheduler has the jobs). So the slots of a
// pause are neither run nor recorded as missed, also across a restart;
// before, a restart took a resumed job up from its last run, and caught up
// a slot of its pause. The store's own LastSlot stays the runs' (the chain
// dispatcher asks it whether a slot was decided).

func (j *journal) LastSlot(ctx context.Context, job string) (time.Time, bool, error) {
	last, ok, err := j.stateStore.LastSlot(ctx, job)
	if err != nil {
		return last, ok, err
	}
	pauses, err := j.Pauses(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	if from, paused := takenUpAt(pauses[job]); paused || from.After(last) {
		return from, true, nil
	}
	return last, ok, nil
}

func (j *journal) LastSlots(ctx context.Context) (map[string]time.Time, error) {
	last, err := j.stateStore.LastSlots(ctx)
	if err != nil {
		return nil, err
	}
	pauses, err := j.Pauses(ctx)
	if err != nil {
		return nil, err
	}
	for job, p := range pauses {
		if from, paused := takenUpAt(p); paused || from.After(last[job]) {
			last[job] = from
		}
	}
	return last, nil
}

// takenUpAt is when a job with this pause record is taken up: its last
// resume, or now when it is still recorded paused.
func takenUpAt(p store.Pause) (time.Time, bool) {
	if !p.Paused.IsZero() {
		return time.Now(), true
	}
	return p.Resumed, false
}

func (j *journal) Record(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind, status pbirefresh.Status, note string) error {
	err := j.stateStore.Record(ctx, job, slot, kind, status, note)
	if err == nil {
		j.m.runs.WithLabelValues(job, string(status)).Inc()
	}
	return err
}

// notifySystemd tells systemd (Type=notify) about the daemon's state; it
// does nothing outside systemd.
func notifySystemd(state string) {
	daemon.SdNotify(false, state)
}

// watchdog pings systemd at half its WatchdogSec, but only while the
// scheduler keeps ticking: a stuck loop stops the pings and systemd
// restarts the service.
func (c *runCmd) watchdog(ctx context.Context) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if c.sched.Alive(2 * time.Minute) {
				daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}
	}
}

// apply installs a configuration: clients per credential, jobs into the
// scheduler.
func (c *runCmd) apply(ctx context.Context, cfg *configs.Config) error {
	clients := map[string]*refresh.Client{}
	for name, cred := range c.env.creds {
		cl := c.env.client(name)
		cl.Observe = c.metrics.observe
		clients[name] = cl
		name := name
		cred.OnToken = func() { c.metrics.tokens.WithLabelValues(name).Inc() }
		cred.OnTokenError = func(error) { c.metrics.tokenErrors.WithLabelValues(name).Inc() }
		// Known label values start at 0, so increase() and alerts see the
		// first failure.
		c.metrics.tokens.WithLabelValues(name)
		c.metrics.tokenErrors.WithLabelValues(name)
	}
	var jobs []scheduler.Job
	for _, j := range cfg.Jobs {
		// A job without a schedule (Parsed nil) runs only on demand. Its
		// version is a hash of its definition: 10,000 jobs keep 32 bytes
		// each, not their JSON.
		def, _ := json.Marshal(struct {
			Job       *configs.Job
			Effective configs.JobSettings
		}{j, j.Effective})
		version := sha256.Sum256(def)
		var before func(context.Context, time.Time, pbirefresh.Kind) bool
		if len(j.After) > 0 && j.Parsed != nil {
			before = c.upstreamBefore(j)
		}
		jobs = append(jobs, scheduler.Job{
			Name: j.Name, Schedule: j.Parsed, Enabled: *j.Enabled, Overlap: j.Effective.Overlap, Before: before,
			CatchUp: j.Effective.CatchUp.D(), Jitter: j.Effective.Jitter.D(), JitterMode: j.Effective.JitterMode,
			LimitKey: j.Credential, Run: c.runFunc(j, clients[j.Credential]), Version: string(version[:]),
		})
	}
	if err := c.sched.Set(ctx, jobs); err != nil {
		return err
	}
	c.recordPauses(ctx, cfg)
	// Limits apply at once on a reload too (they were read only at the
	// start, though the README said a reload applied them): runs in
	// flight keep their places and count against the new caps.
	c.sched.SetLimits(cfg.Limits.MaxInFlight, cfg.Limits.PerCredential)
	staleAfter := map[string]time.Duration{}
	for _, j := range cfg.Jobs {
		staleAfter[j.Name] = 0
		if j.Effective.StaleAfter != nil {
			staleAfter[j.Name] = j.Effective.StaleAfter.D()
		}
	}
	c.fresh.configure(staleAfter)
	chain := buildChain(cfg)
	c.store.SetChain(chain)
	keep := map[string]bool{}
	for _, j := range cfg.Jobs {
		keep[j.Name] = true
	}
	c.names.forget(keep)
	c.mu.Lock()
	var removed []string
	if c.cfg != nil {
		for _, j := range c.cfg.Jobs {
			if !keep[j.Name] {
				removed = append(removed, j.Name)
			}
		}
	}
	c.cfg, c.clients, c.chain = cfg, clients, chain
	c.mu.Unlock()
	c.metrics.forget(removed)
	go c.names.resolveAll(c.base, cfg.Jobs, clients)
	if !c.builtinChecked {
		c.builtinChecked = true
		go c.checkBuiltin(c.base, cfg, clients)
	}
	c.chainEnded() // a reload may have made triggered runs startable, or not
	return nil
}

// reload is SIGHUP: validate first; a bad config leaves the old one.
func (c *runCmd) reload(ctx context.Context) {
	cfg, err := configs.Load(c.config)
	if err != nil {
		c.logger.Error("reload refused; keeping the running configuration", "error", err)
		return
	}
	c.mu.Lock()
	old := c.cfg
	c.mu.Unlock()
	for _, msg := range keepStartOnly(old, cfg) {
		c.logger.Warn(msg)
	}
	// The daemon's Azure identity is made at its start, when its config
	// needs one. A reload that brings the first Key Vault reference was
	// taken, and every run of that credential then failed to read its
	// secret until a restart.
	if what := usesAzure(cfg); what != "" && c.env.azure == nil {
		c.logger.Error("reload refused; keeping the running configuration",
			"error", what+" needs an Azure identity to read Key Vault with, and this daemon started without one (its configuration had no Key Vault reference)",
			"hint", "restart the daemon to take this configuration")
		return
	}
	if c.http != nil {
		if err := c.http.loadToken(cfg.HTTP.TokenFile); err != nil {
			c.logger.Error("reload refused; keeping the running configuration", "error", err)
			return
		}
	}
	notifySystemd(daemon.SdNotifyReloading)
	defer notifySystemd(daemon.SdNotifyReady)
	c.env.setCredentials(cfg)
	if err := c.apply(ctx, cfg); err != nil {
		c.logger.Error("reload failed", "error", err)
		return
	}
	c.logger.Info("configuration reloaded", "jobs", len(cfg.Jobs))
}

// recordPauses remembers which scheduled jobs the configuration pauses
// and resumes, once the scheduler has taken them up (see journal). A
// failed write is logged; a job whose resume was not recorded is still
// recorded paused, and the next start takes it up as resumed then.
func (c *runCmd) recordPauses(ctx context.Context, cfg *configs.Config) {
	pauses, err := c.store.Pauses(ctx)
	if err != nil {
		c.logger.Error("read the jobs' pauses", "error", err, "hint", pbirefresh.Hint(err))
		return
	}
	now := time.Now()
	for _, j := range cfg.Jobs {
		if j.Parsed == nil {
			continue // runs only when triggered: nothing to take up
		}
		was := !pauses[j.Name].Paused.IsZero()
		if was == !*j.Enabled {
			continue
		}
		if err := c.store.SetPaused(ctx, j.Name, !*j.Enabled, now); err != nil {
			c.logger.Error("record a job's pause or resume", "job", j.Name, "error", err, "hint", pbirefresh.Hint(err))
		}
	}
}

// keepStartOnly puts back into cfg, a configuration being reloaded, the
// running one's settings that take effect only at the next start, and
// says which of them changed. The state database is opened once: a new
// state.postgres used to be taken half (kept in the running
// configuration, so a daemon still on its SQLite file behaved as a
// replica, or the other way round) without a word in the log.
func keepStartOnly(old, cfg *configs.Config) (changed []string) {
	// Compared by value: a load makes a new keyvault_challenge_verification
	// pointer each time, so comparing the structs (as this did) warned at
	// every reload on any cloud but the emulator's, whose endpoints the
	// daemon fills in at its start.
	if cfg.Cloud != old.Cloud || (cfg.Cloud != "emulator" && !reflect.DeepEqual(cfg.Endpoints, old.Endpoints)) || cfg.TLS != old.TLS {
		changed = append(changed, "cloud, endpoints and TLS changes take effect at the next start")
	}
	if cfg.State.Path != old.State.Path || !reflect.DeepEqual(cfg.State.Postgres, old.State.Postgres) {
		changed = append(changed, "state.path and state.postgres changes take effect at the next start")
	}
	if cfg.HTTP.Listen != old.HTTP.Listen {
		changed = append(changed, "http.listen changes take effect at the next start")
	}
	// Read when the daemon starts its notifier, its secret cache and its
	// embedded emulator; a reload changed them in the running
	// configuration only, with no word.
	if !reflect.DeepEqual(cfg.Notify, old.Notify) {
		changed = append(changed, "notify changes take effect at the next start")
	}
	if cfg.Secrets != old.Secrets || cfg.Emulator != old.Emulator {
		changed = append(changed, "secrets.cache_ttl and emulator.scenario changes take effect at the next start")
	}
	cfg.Cloud, cfg.Endpoints, cfg.TLS, cfg.HTTP.Listen = old.Cloud, old.Endpoints, old.TLS, old.HTTP.Listen
	cfg.State.Path, cfg.State.Postgres = old.State.Path, old.State.Postgres
	cfg.Notify, cfg.Secrets, cfg.Emulator = old.Notify, old.Secrets, old.Emulator
	return changed
}

func (c *runCmd) prune(ctx context.Context) {
	c.mu.Lock()
	r := c.cfg.State.Retention
	c.mu.Unlock()
	if n, err := c.store.Prune(ctx, r.Count, r.Age.D()); err != nil {
		c.logger.Error("prune run history", "error", err)
	} else if n > 0 {
		c.logger.Info("run history pruned", "runs", n)
	}
}

// storeFailed says loudly that the state database refused a write: runs
// cannot be recorded, so /readyz fails until a write succeeds again.
func (c *runCmd) storeFailed(what, job string, err error) {
	c.logger.Error("STATE DATABASE WRITE FAILED: "+what+"; /readyz fails until a write succeeds", "job", job, "error", err, "hint", pbirefresh.Hint(err))
}

// policy is a job's refresh policy for one run, with the job's recent
// durations from the store and a logger that names the job and slot.
func (c *runCmd) policy(job *configs.Job, slot time.Time, kind pbirefresh.Kind) refresh.Policy {
	_, _, pol := jobRequest(job)
	pol.Claimed = c.claimed
	pol.Gate = c.store.Gate
	pol.Logger = c.logger.With("job", job.Name, "slot", slot, "kind", kind)
	pol.QuotaHint = quotaHint(job, time.Now)
	c.durMu.Lock()
	pol.Durations = c.durations[job.Name]
	c.durMu.Unlock()
	return pol
}

// completed adds a completed run's duration to the job's recent ones.
func (c *runCmd) completed(job string, res refresh.Result) {
	d := res.Ran()
	if res.Outcome != pbirefresh.Completed || d <= 0 {
		return
	}
	c.durMu.Lock()
	defer c.durMu.Unlock()
	ds := append([]time.Duration{d}, c.durations[job]...)
	c.durations[job] = ds[:min(len(ds), recentRuns)]
}

// begin records a run. With replicas, a late lease renewal closes this
// replica's gate before the lease counts as lost (and before the runs'
// context ends); if every replica was late alike, a slot fenced here would
// be recorded by none and never caught up. So a fenced Begin waits for the
// gate to open again, polling each second for at most a lease TTL, and
// tries once more (another replica's claim then shows as ErrDuplicate).
func (c *runCmd) begin(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind) (int64, error) {
	id, err := c.store.Begin(ctx, job, slot, kind)
	if !errors.Is(err, store.ErrFenced) {
		return id, err
	}
	c.mu.Lock()
	var ttl time.Duration
	if c.cfg != nil && c.cfg.State.Postgres != nil {
		ttl = c.cfg.State.Postgres.LeaseTTL.D()
	}
	c.mu.Unlock()
	t := time.NewTicker(gatePoll)
	defer t.Stop()
	for deadline := time.Now().Add(ttl); time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return 0, err
		case <-t.C:
		}
		if c.store.Gate() == nil {
			c.logger.Info("lease trusted again; recording the slot it fenced", "job", job, "slot", slot)
			return c.store.Begin(ctx, job, slot, kind)
		}
	}
	return 0, err
}

// gatePoll is how often a fenced Begin looks at the lease's gate.
const gatePoll = time.Second

// runFunc is one slot of a job: record it, start the refresh, record its
// id the moment it is known, follow it, record the outcome. A run its
// upstreams triggered (kind after) was recorded already: it is claimed.
func (c *runCmd) runFunc(job *configs.Job, client *refresh.Client) scheduler.RunFunc {
	return func(ctx context.Context, slot time.Time, kind pbirefresh.Kind) error {
		ctx, stop := c.memberContext(ctx)
		defer stop()
		var note string
		if n, ok := c.gateNotes.LoadAndDelete(gateKey{job.Name, slot}); ok {
			note = n.(string)
		}
		var id int64
		var err error
		if kind == pbirefresh.After {
			id, err = c.store.Claim(ctx, job.Name, slot)
		} else {
			id, err = c.begin(ctx, job.Name, slot, kind)
		}
		switch {
		case errors.Is(err, store.ErrDuplicate):
			c.logger.Debug("slot already recorded; not triggered again", "job", job.Name, "slot", slot, "kind", kind)
			return nil
		case kind == pbirefresh.After && (errors.Is(err, store.ErrBusy) || errors.Is(err, store.ErrFenced)):
			// It stays triggered, and starts when the run in flight (on
			// another replica) has ended; the dispatcher asks again at its
			// next sweep, not at once.
			c.chainBackoff.Store(job.Name, time.Now().Add(chainSweep))
			c.logger.Debug("triggered run waits for the job's run in flight", "job", job.Name, "slot", slot, "error", err)
			return nil
		case errors.Is(err, store.ErrBusy):
			// With replicas, the job's previous run may be in flight on
			// another one: the overlap rule says skip.
			if err := c.store.Record(ctx, job.Name, slot, kind, pbirefresh.Skipped, "the previous run is still in progress (on another replica)"); err == nil {
				c.metrics.runs.WithLabelValues(job.Name, string(pbirefresh.Skipped)).Inc()
				c.logger.Info("run skipped", "job", job.Name, "slot", slot, "reason", "the previous run is in progress on another replica")
			}
			return nil
		case errors.Is(err, store.ErrFenced):
			c.logger.Warn("slot not claimed: this replica has no valid lease", "job", job.Name, "slot", slot)
			return nil
		case err != nil:
			if ctx.Err() == nil {
				c.storeFailed("a run could not be recorded, so its refresh was not started", job.Name, err)
			}
			return fmt.Errorf("record run of %s: %w", job.Name, err)
		}
		if _, dup := c.following.LoadOrStore(id, true); dup {
			return nil // settled as a stray meanwhile: followed there
		}
		c.metrics.inFlight.Inc()
		defer c.metrics.inFlight.Dec()
		pol := c.policy(job, slot, kind)
		persist := context.WithoutCancel(ctx)
		pol.Started = func(rf refresh.Refresh) {
			recorded := func(err error) {
				if err != nil && !errors.Is(err, store.ErrNotOwner) && !errors.Is(err, store.ErrFenced) {
					c.storeFailed("a refresh id could not be recorded", job.Name, err)
				}
			}
			if l, ok := c.store.(laterStore); ok {
				c.recording.Store(rf.ID, true)
				l.SetRefreshLater(persist, id, rf.ID, func(err error) {
					c.recording.Delete(rf.ID)
					if err != nil {
						// Not in the committer's goroutine: an error line
						// goes to stderr at once, and a slow reader there
						// must not hold up the commits behind it.
						go recorded(err)
					}
				})
				return
			}
			recorded(c.store.SetRefresh(persist, id, rf.ID))
		}
		res := c.refresh(ctx, job, client, pol)
		if note != "" {
			res.Note = strings.TrimSuffix(note+"; "+res.Note, "; ")
		}
		c.finish(ctx, job.Name, slot, id, res)
		return nil
	}
}

// refresh resolves the job's names and runs its refresh. When names
// resolved to ids that are gone (404 before anything started: the dataset
// was deleted and published again under its name), they are resolved
// again and the refresh is tried once more.
func (c *runCmd) refresh(ctx context.Context, job *configs.Job, client *refresh.Client, pol refresh.Policy) refresh.Result {
	t, err := c.names.of(ctx, job, client, false)
	if err != nil {
		return failed(err)
	}
	res := t.run(ctx, client, job, pol)
	if !usesNames(job) || !notFound(res) || ctx.Err() != nil {
		return res
	}
	again, err := c.names.of(ctx, job, client, true)
	if err != nil {
		return failed(err)
	}
	if again.ids() == t.ids() {
		return res
	}
	pol.Logger.Info("the ids the names resolved to are gone; refreshing under the names resolved again", "was", t.ids(), "now", again.ids())
	return again.run(ctx, client, job, pol)
}

// failed is the result of a run that could not start.
func failed(err error) refresh.Result {
	now := time.Now()
	return refresh.Result{Outcome: pbirefresh.Error, Start: now, End: now, Err: err, Error: err.Error(), Hint: pbirefresh.Hint(err)}
}

// finish records an outcome, unless shutdown interrupted the run: then the
// record stays pending or running for the next start to resolve.
func (c *runCmd) finish(ctx context.Context, job string, slot time.Time, id int64, res refresh.Result) {
	defer c.following.Delete(id)
	if ctx.Err() != nil && res.Outcome == pbirefresh.Error {
		c.logger.Info("run interrupted by shutdown; the next start reattaches", "job", job, "slot", slot, "refresh_id", res.RefreshID)
		return
	}
	o := store.Outcome{Status: res.Outcome, RefreshID: res.RefreshID, Polls: res.Polls, Error: res.Error, Code: res.Code, Hint: res.Hint,
		Note: res.Note, ServiceStart: res.ServiceStart, ServiceEnd: res.ServiceEnd}
	persist := context.WithoutCancel(ctx)
	switch err := c.retryWrite(persist, func() error { return c.store.Finish(persist, id, o) }); {
	case errors.Is(err, store.ErrNotOwner), errors.Is(err, store.ErrFenced):
		c.logger.Warn("outcome not recorded: another replica owns the run now and records it", "job", job, "slot", slot, "refresh_id", res.RefreshID)
		return
	case err != nil:
		c.storeFailed("a run's outcome could not be recorded", job, err)
	}
	c.chainEnded()
	c.skippedAfter(job, slot, res.Outcome)
	c.completed(job, res)
	c.metrics.ended(job, res)
	wasStale := c.fresh.ended(job, res.Outcome, res.End)
	c.tell(context.WithoutCancel(ctx), job, slot, id, res, wasStale)
}

// adoptOrphans takes over the runs in flight that no live process follows
// (after a restart, those the earlier process left; with replicas, those
// of dead ones) and follows them: running ones by their refresh id;
// pending ones (the POST may or may not have reached Power BI) by looking
// for their refresh in the history, never by posting again.
func (c *runCmd) adoptOrphans(ctx context.Context) {
	runs, err := c.store.Adopt(ctx)
	if err != nil {
		if !errors.Is(err, store.ErrFenced) {
			c.logger.Error("adopt runs in flight", "error", err, "hint", pbirefresh.Hint(err))
		}
		return
	}
	if len(runs) > 0 && c.cfg.State.Postgres != nil {
		c.metrics.takeovers.Add(float64(len(runs)))
	}
	c.follow(ctx, runs)
}

// strayAge: a run of this replica's in flight that no goroutine here has
// followed for this long was left by a write whose answer was lost (a
// Begin that committed though the connection broke, a Finish that never
// landed).
const strayAge = time.Minute

// settleStrays follows this replica's own runs in flight that nothing
// here follows: Adopt takes only dead replicas' runs, and without this
// such a run would block its job on every replica until a restart.
func (c *runCmd) settleStrays(ctx context.Context) {
	runs, err := c.store.Owned(ctx)
	if err != nil {
		return
	}
	var strays []store.Run
	for _, r := range runs {
		if _, busy := c.following.Load(r.ID); !busy && time.Since(r.Posted) > strayAge {
			strays = append(strays, r)
		}
	}
	if len(strays) > 0 {
		c.logger.Warn("settling runs of this replica that nothing followed (a database write's answer was lost)", "runs", len(strays))
		c.follow(ctx, strays)
	}
}

// follow settles and follows runs in flight that no goroutine here
// follows: running ones by their refresh id; pending ones by looking for
// their refresh in the history, never by posting again.
func (c *runCmd) follow(ctx context.Context, runs []store.Run) {
	c.mu.Lock()
	cfg, clients := c.cfg, c.clients
	c.mu.Unlock()
	persist := context.WithoutCancel(ctx)
	for _, r := range runs {
		if _, busy := c.following.LoadOrStore(r.ID, true); busy {
			continue
		}
		job := cfg.Job(r.Job)
		if job == nil {
			c.settle(persist, r, store.Outcome{Status: pbirefresh.Error, Error: "the job is no longer in the configuration", Hint: "its refresh, if any, was not followed"})
			continue
		}
		if r.Owner != "" && r.Owner != c.store.Self() {
			c.logger.Info("took over a run", "job", r.Job, "slot", r.Slot, "from", r.Owner, "refresh_id", r.RefreshID)
		}
		client := clients[job.Credential]
		pol := c.policy(job, r.Slot, r.Kind)
		release := c.sched.Hold(r.Job)
		c.wg.Add(1)
		c.metrics.inFlight.Inc()
		go func(r store.Run) {
			defer c.wg.Done()
			defer release()
			defer c.metrics.inFlight.Dec()
			ctx, stop := c.memberContext(ctx)
			defer stop()
			// A job that gives names is followed under the ids they resolve
			// to now: a dataset recreated under its name while the daemon
			// was down is not followed (its refresh ends as lost).
			t, err := c.names.of(ctx, job, client, false)
			if err != nil {
				if ctx.Err() == nil {
					c.finish(ctx, r.Job, r.Slot, r.ID, failed(fmt.Errorf("could not resolve the names to settle an interrupted run: %w", err)))
				} else {
					c.following.Delete(r.ID)
				}
				return
			}
			refreshID := r.RefreshID
			if r.Status == pbirefresh.Pending {
				found, err := t.findStarted(ctx, client, r.Posted, pol)
				if err != nil {
					if ctx.Err() == nil {
						c.settle(persist, r, store.Outcome{Status: pbirefresh.Error, Error: "could not settle an interrupted run: " + err.Error(), Hint: pbirefresh.Hint(err)})
					} else {
						c.following.Delete(r.ID)
					}
					return
				}
				if found == "" {
					c.settle(persist, r, store.Outcome{Status: pbirefresh.Error, Error: "interrupted before Power BI started a refresh", Hint: "nothing to do: the next slot runs as usual"})
					c.logger.Info("interrupted run had not started a refresh", "job", r.Job, "slot", r.Slot)
					return
				}
				if err := c.retryWrite(persist, func() error { return c.store.SetRefresh(persist, r.ID, found) }); err != nil {
					c.logger.Warn("record the refresh of an interrupted run", "job", r.Job, "error", err)
					c.following.Delete(r.ID)
					return
				}
				refreshID = found
				c.logger.Info("interrupted run's refresh found in the history", "job", r.Job, "slot", r.Slot, "refresh_id", found)
			}
			res := t.follow(ctx, client, refreshID, r.Posted, pol)
			c.finish(ctx, r.Job, r.Slot, r.ID, res)
		}(r)
	}
}

// settle writes the outcome of a run that started no refresh it follows.
func (c *runCmd) settle(ctx context.Context, r store.Run, o store.Outcome) {
	defer c.following.Delete(r.ID)
	if err := c.retryWrite(ctx, func() error { return c.store.Finish(ctx, r.ID, o) }); err != nil {
		if !errors.Is(err, store.ErrNotOwner) && !errors.Is(err, store.ErrFenced) {
			c.storeFailed("a run's outcome could not be recorded", r.Job, err)
		}
		return
	}
	c.chainEnded()
	c.skippedAfter(r.Job, r.Slot, o.Status)
}

// retryWrite runs a write of a run's state (keyed by the run's id and
// owner, so safe to repeat) until it succeeds, the answer is final (the
// run is another replica's, or this one lost its lease), or a minute has
// passed: a database blip must not leave a run in flight for ever.
func (c *runCmd) retryWrite(ctx context.Context, write func() error) error {
	deadline := time.Now().Add(time.Minute)
	wait := 200 * time.Millisecond
	for {
		err := write()
		if err == nil || errors.Is(err, store.ErrNotOwner) || errors.Is(err, store.ErrFenced) || errors.Is(err, store.ErrDuplicate) ||
			time.Now().Add(wait).After(deadline) || c.store.Gate() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-c.base.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// takeovers adopts the runs of dead replicas every third of the lease TTL.
func (c *runCmd) takeovers(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.adoptOrphans(ctx)
			c.settleStrays(ctx)
		}
	}
}

// replicaState is what the replica gauges report.
func (c *runCmd) replicaState() (alive int, held bool, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reps, err := c.store.Replicas(ctx)
	if err != nil {
		return 0, false, false
	}
	for _, r := range reps {
		if r.Alive {
			alive++
		}
	}
	return alive, c.store.Gate() == nil, true
}

// newMember starts the context the runs of this membership run under.
func (c *runCmd) newMember() {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	c.member, c.memberCancel = context.WithCancel(c.base)
}

// memberContext is ctx, also cancelled when this replica loses its lease.
func (c *runCmd) memberContext(ctx context.Context) (context.Context, func()) {
	c.memberMu.Lock()
	m := c.member
	c.memberMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(m, cancel)
	return ctx, func() { stop(); cancel() }
}

// leaseLost: stop every run of this membership now; another replica
// adopts them. (PostgreSQL state only.)
func (c *runCmd) leaseLost() {
	c.memberMu.Lock()
	cancel := c.memberCancel
	c.memberMu.Unlock()
	cancel()
	if c.metrics != nil {
		c.metrics.leasesLost.Inc()
	}
}

// rejoined: a new membership; the schedule is taken again from the
// database (slots others ran are not run again; slots nobody ran follow
// the catch-up rules), and orphans are adopted.
func (c *runCmd) rejoined() {
	c.newMember()
	c.logger.Info("rejoined the replica set", "replica", c.store.Self())
	// Not in the caller's goroutine, which renews the lease: a database
	// slow to answer the resync's reads must not hold up the renewals.
	go func() {
		if c.sched != nil {
			ctx, cancel := context.WithTimeout(c.base, resyncTimeout)
			err := c.sched.Resync(ctx)
			cancel()
			if err != nil {
				c.logger.Error("resync the schedule after rejoining", "error", err, "hint", "slots missed while cut off are caught up at the next restart or rejoin")
			}
		}
		c.adoptOrphans(c.base)
	}()
}

// resyncTimeout bounds the schedule's resync after a rejoin.
const resyncTimeout = time.Minute

// claimed: a refresh id some recorded run already owns, or a run here is
// recording.
func (c *runCmd) claimed(id string) bool {
	if _, ok := c.recording.Load(id); ok {
		return true
	}
	ok, err := c.store.Claimed(context.Background(), id)
	return err != nil || ok // on a read error, adopt nothing
}

func (c *runCmd) Close() error {
	if c.env != nil {
		c.env.Close()
	}
	if c.store != nil {
		return c.store.Close()
	}
	return nil
}
