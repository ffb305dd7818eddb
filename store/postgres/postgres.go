package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/internal/pgurl"
	"github.com/pbirefresh/pbirefresh/store"
)

// migrations[i] brings the schema from version i to i+1. Tables carry a
// pbirefresh_ prefix: the database may be shared.
var migrations = []string{
	`CREATE TABLE pbirefresh_replicas (
		id         text        PRIMARY KEY,
		host       text        NOT NULL,
		pid        integer     NOT NULL,
		version    text        NOT NULL,
		started    timestamptz NOT NULL DEFAULT now(),
		heartbeat  timestamptz NOT NULL DEFAULT now(),
		expires_at timestamptz NOT NULL
	);
	CREATE TABLE pbirefresh_runs (
		id            bigserial PRIMARY KEY,
		job           text    NOT NULL,
		slot          bigint  NOT NULL, -- Unix nanoseconds, UTC
		kind          text    NOT NULL,
		status        text    NOT NULL,
		refresh_id    text    NOT NULL DEFAULT '',
		posted        bigint  NOT NULL DEFAULT 0,
		ended         bigint  NOT NULL DEFAULT 0,
		polls         integer NOT NULL DEFAULT 0,
		error         text    NOT NULL DEFAULT '',
		hint          text    NOT NULL DEFAULT '',
		note          text    NOT NULL DEFAULT '',
		code          text    NOT NULL DEFAULT '',
		service_start bigint  NOT NULL DEFAULT 0,
		service_end   bigint  NOT NULL DEFAULT 0,
		owner         text    NOT NULL DEFAULT '',
		CONSTRAINT pbirefresh_runs_slot UNIQUE (job, slot)
	);
	CREATE UNIQUE INDEX pbirefresh_runs_one_in_flight ON pbirefresh_runs (job) WHERE status IN ('pending', 'running');
	CREATE INDEX pbirefresh_runs_owner_in_flight ON pbirefresh_runs (owner) WHERE status IN ('pending', 'running');
	CREATE INDEX pbirefresh_runs_by_slot ON pbirefresh_runs (slot, id);
	CREATE INDEX pbirefresh_runs_refresh ON pbirefresh_runs (refresh_id) WHERE refresh_id <> '';`,
	// Version 2: chains. queued (when a run was decided to run) and done
	// (when it completed) are on the database's clock, so replicas with
	// skewed clocks compare them safely; upstream and upstream_run name the
	// run whose end triggered or skipped a run.
	`ALTER TABLE pbirefresh_runs ADD COLUMN queued bigint NOT NULL DEFAULT 0,
		ADD COLUMN done bigint NOT NULL DEFAULT 0,
		ADD COLUMN upstream text NOT NULL DEFAULT '',
		ADD COLUMN upstream_run bigint NOT NULL DEFAULT 0;
	UPDATE pbirefresh_runs SET queued = posted, done = CASE WHEN status = 'completed' THEN ended ELSE 0 END;
	CREATE INDEX pbirefresh_runs_triggered ON pbirefresh_runs (id) WHERE status = 'triggered';`,
	// Version 3: pauses. paused is when a job was paused (0: it is not);
	// resumed, when it was last taken up again: the daemon takes a job up
	// from there, never from before its pause.
	`CREATE TABLE pbirefresh_pauses (
		job     text   PRIMARY KEY,
		paused  bigint NOT NULL DEFAULT 0,
		resumed bigint NOT NULL DEFAULT 0
	);`,
}

// dbNow is the database's clock in Unix nanoseconds (microsecond
// precision), read when the statement runs, not when its transaction began.
const dbNow = `((extract(epoch FROM clock_timestamp()) * 1000000)::bigint * 1000)`

// Replica names this process when it joins as a replica.
type Replica struct {
	Host    string
	PID     int
	Version string
}

// Options say how to open the state database.
type Options struct {
	// ReadOnly: no migration, no membership (history, state copy's source).
	ReadOnly bool
	// Replica joins this process as a replica with a lease (the daemon).
	Replica *Replica
	// LeaseTTL: a replica whose lease is not renewed within it is dead
	// (default 15s). Renewals run every third of it.
	LeaseTTL time.Duration
	// Password, if set, gives the password of each new connection: a
	// secret, or an Entra ID token for Azure Database for PostgreSQL.
	Password func(ctx context.Context) (string, error)
	// Logger receives membership events.
	Logger *slog.Logger
	// OnLeaseLost is called when the replica stops being allowed to work
	// (its lease expired on the database's clock, or could not be renewed
	// within its trust window); OnRejoin when it joined again under a new
	// id. Both run on the membership goroutine.
	OnLeaseLost func()
	OnRejoin    func()
}

// Store is the state in PostgreSQL. It is safe for concurrent use.
type Store struct {
	// Now is the clock of run timestamps (default time.Now). Leases use
	// the database's clock, never this one.
	Now func() time.Time

	pool *pgxpool.Pool
	opts Options
	url  string

	member *membership // nil when read-only
	chain  atomic.Pointer[store.Chain]

	writeMu  sync.Mutex
	writeErr error // the last run write's failure, nil after a success (Ping)
	closed   chan struct{}
	wg       sync.WaitGroup
}

// Open connects, migrates (unless read-only) and, with Options.Replica,
// joins as a replica.
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, pbirefresh.WithHint(fmt.Errorf("state.postgres.url: %w", err), "write a libpq URL: postgres://user@host:5432/database?sslmode=verify-full&sslrootcert=/path/ca.pem")
	}
	// No session state of any kind: no server-side prepared statements
	// (PgBouncer in transaction mode cannot carry them), no advisory
	// locks held across statements, no LISTEN. Leases are rows, so a
	// recycled connection never drops one.
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.MaxConns = 8
	if o.Password != nil {
		pw := o.Password
		cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
			p, err := pw(ctx)
			if err != nil {
				return fmt.Errorf("the state database's password: %w", err)
			}
			cc.Password = p
			return nil
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, connectErr(url, err)
	}
	s := &Store{pool: pool, opts: o, url: pgurl.Redact(url), closed: make(chan struct{})}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, connectErr(s.url, err)
	}
	if o.ReadOnly {
		if v, err := s.version(pctx); err != nil || v == 0 {
			pool.Close()
			if err == nil {
				err = errors.New("no pbirefresh tables in it")
			}
			return nil, pbirefresh.WithHint(fmt.Errorf("state database %s: %w", s.url, err), "the daemon creates the tables at its first start; check state.postgres.url")
		}
		return s, nil
	}
	if err := s.migrate(pctx); err != nil {
		pool.Close()
		return nil, err
	}
	if o.Replica != nil {
		s.member = newMembership(s, *o.Replica)
		if err := s.member.join(pctx); err != nil {
			pool.Close()
			return nil, err
		}
		s.wg.Add(1)
		go s.member.run()
	}
	return s, nil
}

func connectErr(url string, err error) error {
	return pbirefresh.WithHint(fmt.Errorf("connect to the state database %s: %w", pgurl.Redact(url), err),
		"check state.postgres.url (host, port, database, user), that the server accepts this host, and the password or Entra ID token")
}

func (s *Store) version(ctx context.Context) (int, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('pbirefresh_schema') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := s.pool.QueryRow(ctx, `SELECT version FROM pbirefresh_schema`).Scan(&v)
	return v, err
}

// migrationLock is the key of the advisory lock that serialises migrations.
const migrationLock int64 = 5045424952

// migrate brings the schema to the current version in one transaction,
// under a transaction-scoped advisory lock (released at commit, so it
// works behind a transaction-pooling proxy): replicas starting at once
// migrate once.
func (s *Store) migrate(ctx context.Context) error {
	// A current schema needs nothing created: a role granted only the use
	// of the tables (the least privileges the README gives) starts, where
	// CREATE TABLE IF NOT EXISTS would need CREATE on the schema.
	if v, err := s.version(ctx); err == nil && v == len(migrations) {
		return nil
	}
	// READ COMMITTED whatever the database's default: the version read
	// after the lock must be what the lock's previous holder committed.
	// Under repeatable read or serializable the snapshot is taken when the
	// lock is requested, before that commit: a replica that waited would
	// migrate again (relation already exists) or fail to serialize.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return connectErr(s.url, err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("lock the schema for migration: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS pbirefresh_schema (version integer NOT NULL)`); err != nil {
		return permissionErr(s.url, err)
	}
	var v int
	if err := tx.QueryRow(ctx, `SELECT version FROM pbirefresh_schema`).Scan(&v); errors.Is(err, pgx.ErrNoRows) {
		if _, err := tx.Exec(ctx, `INSERT INTO pbirefresh_schema (version) VALUES (0)`); err != nil {
			return permissionErr(s.url, err)
		}
	} else if err != nil {
		return err
	}
	if v > len(migrations) {
		return pbirefresh.WithHint(fmt.Errorf("state database %s has schema version %d, newer than this pbirefresh supports (%d)", s.url, v, len(migrations)),
			"run the newer pbirefresh that wrote it on every replica; this one leaves it untouched")
	}
	for ; v < len(migrations); v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return permissionErr(s.url, fmt.Errorf("migrate to schema version %d: %w", v+1, err))
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE pbirefresh_schema SET version = $1`, v); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func permissionErr(url string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" {
		return pbirefresh.WithHint(fmt.Errorf("state database %s: %w", url, err),
			"the role needs CREATE on the schema for the first start, and for the first start of a version that adds a table (otherwise: SELECT, INSERT, UPDATE, DELETE on the pbirefresh_ tables and USAGE on their sequence); see README \"High availability\"")
	}
	return err
}

// Close leaves the replica set (the lease ends now, so others adopt the
// runs this process leaves in flight at once) and disconnects.
func (s *Store) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
	}
	close(s.closed)
	s.wg.Wait()
	if s.member != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.member.leave(ctx)
		cancel()
	}
	s.pool.Close()
	return nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// self is the replica id writes are made under ("" when read-only).
func (s *Store) self() string {
	if s.member == nil {
		return ""
	}
	return s.member.id()
}

// Self is this replica's id.
func (s *Store) Self() string { return s.self() }

// Gate says whether this replica may claim and post now: its lease is
// held and its trust window (measured on its own clocks from the last
// renewal) has not passed.
func (s *Store) Gate() error {
	if s.member == nil {
		return store.ErrFenced
	}
	return s.member.gate()
}

// uniqueErr maps unique violations: the (job, slot) pair taken, or a run
// of the job already in flight.
func uniqueErr(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		return err
	}
	if pe.ConstraintName == "pbirefresh_runs_slot" {
		return store.ErrDuplicate
	}
	return store.ErrBusy
}

// leaseHeld is the condition of every write a replica makes: its lease is
// valid on the database's clock.
const leaseHeld = `EXISTS (SELECT 1 FROM pbirefresh_replicas WHERE id = @owner AND expires_at > now())`

func (s *Store) insert(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind, status pbirefresh.Status, note string, posted, ended time.Time) (int64, error) {
	if err := s.Gate(); err != nil {
		return 0, err
	}
	// With replicas, every one inserts each slot and all but one lose: ON
	// CONFLICT DO NOTHING makes losing quiet (no ERROR line in the
	// server's log per slot, no aborted transaction), and only the losers
	// ask why.
	args := pgx.NamedArgs{"job": job, "slot": nanos(slot), "kind": string(kind), "status": string(status), "posted": nanos(posted),
		"ended": nanos(ended), "note": note, "owner": s.self()}
	for attempt := 0; ; attempt++ {
		// One round trip: the insert, and, for a loser, why it lost.
		var id *int64
		var taken, busy bool
		err := s.pool.QueryRow(ctx, `WITH ins AS (
				INSERT INTO pbirefresh_runs (job, slot, kind, status, posted, ended, note, owner, queued)
				SELECT @job, @slot, @kind, @status, @posted, @ended, @note, @owner, CASE WHEN @status = 'pending' THEN `+dbNow+` ELSE 0 END
				WHERE `+leaseHeld+` ON CONFLICT DO NOTHING RETURNING id)
			SELECT (SELECT id FROM ins),
				EXISTS (SELECT 1 FROM pbirefresh_runs WHERE job = @job AND slot = @slot),
				EXISTS (SELECT 1 FROM pbirefresh_runs WHERE job = @job AND status IN ('pending', 'running'))`, args).Scan(&id, &taken, &busy)
		switch {
		case err != nil:
			return 0, uniqueErr(err)
		case id != nil:
			return *id, nil
		case taken:
			return 0, store.ErrDuplicate
		case busy && status.InFlight():
			return 0, store.ErrBusy
		}
		// Neither taken nor busy as this statement saw them: the lease,
		// or a row committed while it ran; ask again.
		err = s.whyNotInserted(ctx, job, slot, status)
		if !errors.Is(err, store.ErrFenced) || attempt == 2 || s.Gate() != nil {
			return 0, err
		}
	}
}

// whyNotInserted tells a lost insert's reason: the slot taken (a taken
// slot is the answer that says "never run it", even if the job is busy
// too), a run of the job in flight, or this replica's lease.
func (s *Store) whyNotInserted(ctx context.Context, job string, slot time.Time, status pbirefresh.Status) error {
	var taken, busy bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pbirefresh_runs WHERE job = $1 AND slot = $2),
		EXISTS (SELECT 1 FROM pbirefresh_runs WHERE job = $1 AND status IN ('pending', 'running'))`, job, nanos(slot)).Scan(&taken, &busy)
	switch {
	case err != nil:
		return err
	case taken:
		return store.ErrDuplicate
	case busy && status.InFlight():
		return store.ErrBusy
	}
	return store.ErrFenced
}

// Begin records a run about to POST, owned by this replica. ErrDuplicate:
// the slot is taken (by any replica); ErrBusy: the job has a run in
// flight; ErrFenced: this replica may not claim now.
func (s *Store) Begin(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind) (int64, error) {
	id, err := s.insert(ctx, job, slot, kind, pbirefresh.Pending, "", s.now(), time.Time{})
	return id, s.wrote(err)
}

// Record writes a slot decided without a refresh: skipped or missed.
func (s *Store) Record(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind, status pbirefresh.Status, note string) error {
	_, err := s.insert(ctx, job, slot, kind, status, note, time.Time{}, s.now())
	return s.wrote(err)
}

// Fail marks the run of a slot as an error with a note: this replica's
// run if it is still in flight, a new record otherwise.
func (s *Store) Fail(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind, note string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE pbirefresh_runs SET status = 'error', note = @note, ended = @ended
		WHERE job = @job AND slot = @slot AND status IN ('pending', 'running') AND owner = @owner AND `+leaseHeld,
		pgx.NamedArgs{"note": note, "ended": nanos(s.now()), "job": job, "slot": nanos(slot), "owner": s.self()})
	if err != nil {
		return s.wrote(err)
	}
	if tag.RowsAffected() > 0 {
		return s.wrote(nil)
	}
	err = s.Record(ctx, job, slot, kind, pbirefresh.Error, note)
	if errors.Is(err, store.ErrDuplicate) {
		return nil // already final, or another replica's
	}
	return err
}

// wroteOwned is owned, noted for Ping.
func (s *Store) wroteOwned(ctx context.Context, sql string, args pgx.NamedArgs) error {
	return s.wrote(s.owned(ctx, sql, args))
}

// wrote notes a run write's result for Ping. A refusal that lasts (the
// database's disk full or a configuration limit reached, a privilege
// missing, a read-only server, an integrity or trigger error) makes Ping
// fail, and so /readyz, until a run write succeeds again, as with SQLite
// state: the daemon's log says so when it happens. (Ping alone did not see
// it: a database that answers but refuses the runs' writes stayed ready.)
// A lost connection, a cancelled or timed-out statement, a failover, a
// serialization failure, too many connections or memory short at the
// moment does not count: the next write usually succeeds,
// and a replica kept not ready until its next run, hours later for daily
// jobs, would hold up node drains for nothing. Neither do the answers a
// replica expects (the slot taken, the run another's or busy, the lease
// gone).
func (s *Store) wrote(err error) error {
	if err != nil && !lastingErr(err) {
		return err
	}
	s.writeMu.Lock()
	s.writeErr = err
	s.writeMu.Unlock()
	return err
}

// lastingErr: a refusal by the database that the next write will likely
// meet too (SQLSTATE classes 22 data, 23 integrity, 25 transaction state,
// for example a read-only server, 42 privileges, 53 resources: a full disk
// or a configuration limit, 58 system, P0 raised by a trigger, XX
// internal). Resources short at a moment pass by themselves and do not
// count: too many connections (53300, also met when the pool opens a
// connection), out of memory (53200), insufficient resources (53000).
func lastingErr(err error) bool {
	if errors.Is(err, store.ErrDuplicate) || errors.Is(err, store.ErrBusy) || errors.Is(err, store.ErrNotOwner) || errors.Is(err, store.ErrFenced) {
		return false
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false // no answer from the server: the connection, a timeout
	}
	switch pe.Code {
	case "53000", "53200", "53300":
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "25", "42", "53", "58", "P0", "XX":
		return true
	}
	return false
}

// owned runs an update of one run that this replica owns under a valid
// lease: ErrNotOwner when another replica took it over.
func (s *Store) owned(ctx context.Context, sql string, args pgx.NamedArgs) error {
	if err := s.Gate(); err != nil {
		return err
	}
	args["owner"] = s.self()
	tag, err := s.pool.Exec(ctx, sql+` AND owner = @owner AND `+leaseHeld, args)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotOwner
	}
	return nil
}

// SetRefresh records the refresh id of a run: it is now in flight.
func (s *Store) SetRefresh(ctx context.Context, id int64, refreshID string) error {
	return s.wroteOwned(ctx, `UPDATE pbirefresh_runs SET refresh_id = @refresh, status = 'running' WHERE id = @id AND status IN ('pending', 'running')`,
		pgx.NamedArgs{"refresh": refreshID, "id": id})
}

// finishSQL writes a run's outcome if this replica owns the run.
const finishSQL = `UPDATE pbirefresh_runs SET status = @status, refresh_id = CASE WHEN @refresh = '' THEN refresh_id ELSE @refresh END,
	ended = @ended, polls = polls + @polls, error = @error, code = @code, hint = @hint, note = @note,
	service_start = @sstart, service_end = @send, done = CASE WHEN @status = 'completed' THEN ` + dbNow + ` ELSE 0 END
	WHERE id = @id AND status IN ('triggered', 'pending', 'running')`

// Finish writes a run's outcome and, in the same transaction, what it
// means for the jobs that run after this one (see SetChain).
func (s *Store) Finish(ctx context.Context, id int64, o store.Outcome) error {
	return s.wrote(s.finish(ctx, id, o))
}

func (s *Store) finish(ctx context.Context, id int64, o store.Outcome) error {
	args := pgx.NamedArgs{"status": string(o.Status), "refresh": o.RefreshID, "ended": nanos(s.now()), "polls": o.Polls, "error": o.Error,
		"code": o.Code, "hint": o.Hint, "note": o.Note, "sstart": nanos(o.ServiceStart), "send": nanos(o.ServiceEnd), "id": id}
	chain := s.chain.Load()
	if chain.Empty() {
		return s.owned(ctx, finishSQL, args)
	}
	if err := s.Gate(); err != nil {
		return err
	}
	args["owner"] = s.self()
	// READ COMMITTED whatever the database's default: after the lock, the
	// next statement must see what the lock's previous holder committed.
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		// A transaction stuck holding a dependent's lock (a paused VM)
		// must not stall every other end for ever: this one fails after
		// lock_timeout, and its writer retries it.
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
			return err
		}
		var job string
		var slot int64
		err := tx.QueryRow(ctx, finishSQL+` AND owner = @owner AND `+leaseHeld+` RETURNING job, slot`, args).Scan(&job, &slot)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotOwner
		}
		if err != nil {
			return err
		}
		return chain.Step(ctx, chainTx{tx, s.now()}, job, fromNanos(slot), id, o.Status)
	})
}

// SetPaused records that a job was paused (paused true; a pause already
// recorded keeps its time) or taken up again, at at. Replicas record the
// same pause or resume alike.
func (s *Store) SetPaused(ctx context.Context, job string, paused bool, at time.Time) error {
	var err error
	if paused {
		_, err = s.pool.Exec(ctx, `INSERT INTO pbirefresh_pauses (job, paused) VALUES ($1, $2)
			ON CONFLICT (job) DO UPDATE SET paused = excluded.paused WHERE pbirefresh_pauses.paused = 0`, job, nanos(at))
	} else {
		_, err = s.pool.Exec(ctx, `INSERT INTO pbirefresh_pauses (job, resumed) VALUES ($1, $2)
			ON CONFLICT (job) DO UPDATE SET paused = 0, resumed = excluded.resumed`, job, nanos(at))
	}
	return s.wrote(permissionErr(s.url, err))
}

// Pauses returns what the state remembers of the jobs' pauses.
func (s *Store) Pauses(ctx context.Context) (map[string]store.Pause, error) {
	rows, err := s.pool.Query(ctx, `SELECT job, paused, resumed FROM pbirefresh_pauses`)
	if err != nil {
		return nil, permissionErr(s.url, err)
	}
	defer rows.Close()
	out := map[string]store.Pause{}
	for rows.Next() {
		var job string
		var paused, resumed int64
		if err := rows.Scan(&job, &paused, &resumed); err != nil {
			return nil, err
		}
		out[job] = store.Pause{Paused: fromNanos(paused), Resumed: fromNanos(resumed)}
	}
	return out, permissionErr(s.url, rows.Err())
}

// Claimed reports whether some run records this refresh id.
func (s *Store) Claimed(ctx context.Context, refreshID string) (bool, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pbirefresh_runs WHERE refresh_id = $1`, refreshID).Scan(&n)
	return n > 0, err
}

// LastSlot returns the newest slot decided for a job (run, skipped or
// missed; manual runs do not count).
func (s *Store) LastSlot(ctx context.Context, job string) (time.Time, bool, error) {
	var n *int64
	if err := s.pool.QueryRow(ctx, `SELECT max(slot) FROM pbirefresh_runs WHERE job = $1 AND kind <> 'manual'`, job).Scan(&n); err != nil {
		return time.Time{}, false, err
	}
	if n == nil {
		return time.Time{}, false, nil
	}
	return fromNanos(*n), true, nil
}

// LastSlots returns every job's newest slot decided (manual runs do not
// count), in one query.
func (s *Store) LastSlots(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT job, max(slot) FROM pbirefresh_runs WHERE kind <> 'manual' GROUP BY job`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var job string
		var slot int64
		if err := rows.Scan(&job, &slot); err != nil {
			return nil, err
		}
		out[job] = fromNanos(slot)
	}
	return out, rows.Err()
}

const columns = `id, job, slot, kind, status, refresh_id, posted, ended, polls, error, hint, note, code, service_start, service_end, owner, upstream, upstream_run`

func scanRuns(rows pgx.Rows) ([]store.Run, error) {
	defer rows.Close()
	var out []store.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// scanRun reads one row of columns, then extra.
func scanRun(rows pgx.Rows, extra ...any) (store.Run, error) {
	var r store.Run
	var slot, posted, ended, sstart, send int64
	var kind, status string
	dest := append([]any{&r.ID, &r.Job, &slot, &kind, &status, &r.RefreshID, &posted, &ended, &r.Polls, &r.Error, &r.Hint, &r.Note, &r.Code,
		&sstart, &send, &r.Owner, &r.Upstream, &r.UpstreamRun}, extra...)
	if err := rows.Scan(dest...); err != nil {
		return r, err
	}
	r.Kind, r.Status = pbirefresh.Kind(kind), pbirefresh.Status(status)
	r.Slot, r.Posted, r.Ended = fromNanos(slot), fromNanos(posted), fromNanos(ended)
	r.ServiceStart, r.ServiceEnd = fromNanos(sstart), fromNanos(send)
	return r, nil
}

// Adopt takes over, for this replica, the runs in flight whose owner's
// lease has expired (on the database's clock), a batch at a time; other
// replicas adopting at once take other runs (SKIP LOCKED). Each run's
// Owner is the replica it was taken from (the log names it).
func (s *Store) Adopt(ctx context.Context) ([]store.Run, error) {
	if err := s.Gate(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `WITH orphans AS (
			SELECT r.id, r.owner AS was FROM pbirefresh_runs r LEFT JOIN pbirefresh_replicas p ON p.id = r.owner
			WHERE r.status IN ('pending', 'running') AND r.owner <> @owner AND (p.id IS NULL OR p.expires_at <= now())
			ORDER BY r.id LIMIT 500 FOR UPDATE OF r SKIP LOCKED)
		UPDATE pbirefresh_runs u SET owner = @owner FROM orphans WHERE u.id = orphans.id
		AND `+leaseHeld+` RETURNING `+prefixed("u.", columns)+`, orphans.was`, pgx.NamedArgs{"owner": s.self()})
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []store.Run
	for rows.Next() {
		var was string
		r, err := scanRun(rows, &was)
		if err != nil {
			return nil, err
		}
		r.Owner = was
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// RETURNING gives the rows in no particular order: oldest first.
	slices.SortFunc(runs, func(a, b store.Run) int { return cmp.Compare(a.ID, b.ID) })
	return runs, nil
}

// Owned returns this replica's own runs in flight.
func (s *Store) Owned(ctx context.Context) ([]store.Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM pbirefresh_runs WHERE status IN ('pending', 'running') AND owner = $1 ORDER BY id`, s.self())
	if err != nil {
		return nil, err
	}
	return scanRuns(rows)
}

// prefixed qualifies each column of a select list.
func prefixed(p, list string) string {
	cols := strings.Split(list, ", ")
	for i, c := range cols {
		cols[i] = p + c
	}
	return strings.Join(cols, ", ")
}

// Runs returns one page of runs, newest slot first.
func (s *Store) Runs(ctx context.Context, q store.Query) ([]store.Run, error) {
	where, args := []string{"true"}, pgx.NamedArgs{"limit": q.PageSize()}
	if q.Job != "" {
		where, args["job"] = append(where, "job = @job"), q.Job
	}
	if c := q.After; c != nil {
		where = append(where, "(slot, id) < (@aslot, @aid)")
		args["aslot"], args["aid"] = nanos(c.Slot), c.ID
	}
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM pbirefresh_runs WHERE `+strings.Join(where, " AND ")+` ORDER BY slot DESC, id DESC LIMIT @limit`, args)
	if err != nil {
		return nil, err
	}
	return scanRuns(rows)
}

// RecentDurations returns, for every job, how long its last n completed
// refreshes ran, newest first.
func (s *Store) RecentDurations(ctx context.Context, n int) (map[string][]time.Duration, error) {
	rows, err := s.pool.Query(ctx, `SELECT job, posted, ended, service_start, service_end FROM (
		SELECT job, slot, posted, ended, service_start, service_end, row_number() OVER (PARTITION BY job ORDER BY slot DESC) AS rn
		FROM pbirefresh_runs WHERE status = 'completed') recent WHERE rn <= $1 ORDER BY job, slot DESC`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]time.Duration{}
	for rows.Next() {
		var job string
		var posted, ended, sstart, send int64
		if err := rows.Scan(&job, &posted, &ended, &sstart, &send); err != nil {
			return nil, err
		}
		r := store.Run{Posted: fromNanos(posted), Ended: fromNanos(ended), ServiceStart: fromNanos(sstart), ServiceEnd: fromNanos(send)}
		if d := r.Duration(); d > 0 {
			out[job] = append(out[job], d)
		}
	}
	return out, rows.Err()
}

// Prune keeps, per job, the newest keep runs and none older than maxAge
// (runs in flight are always kept).
func (s *Store) Prune(ctx context.Context, keep int, maxAge time.Duration) (int64, error) {
	if err := s.Gate(); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM pbirefresh_runs WHERE status NOT IN ('triggered', 'pending', 'running')
		AND id NOT IN (SELECT max(id) FROM pbirefresh_runs WHERE status = 'completed' GROUP BY job)
		AND id NOT IN (SELECT max(id) FROM pbirefresh_runs WHERE refresh_id <> '' GROUP BY job) AND id IN (
		SELECT id FROM (SELECT id, slot, row_number() OVER (PARTITION BY job ORDER BY slot DESC) AS rn FROM pbirefresh_runs) ranked
		WHERE rn > $1 OR slot < $2)`, keep, nanos(s.now().Add(-maxAge)))
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// Ping checks that the database answers, that this replica holds its
// lease (a replica without one does no work, and says so on /readyz), and
// that the last run write succeeded.
func (s *Store) Ping(ctx context.Context) error {
	if s.member != nil {
		if err := s.member.gate(); err != nil {
			return err
		}
	}
	s.writeMu.Lock()
	werr := s.writeErr
	s.writeMu.Unlock()
	if werr != nil {
		return fmt.Errorf("the last write of a run failed: %w", werr)
	}
	return s.pool.Ping(ctx)
}

// Replicas lists the replicas seen in the last hour, with the runs each
// owns in flight.
func (s *Store) Replicas(ctx context.Context) ([]store.Replica, error) {
	rows, err := s.pool.Query(ctx, `SELECT p.id, p.host, p.pid, p.version, p.started, p.heartbeat, p.expires_at, p.expires_at > now(),
		(SELECT count(*) FROM pbirefresh_runs r WHERE r.owner = p.id AND r.status IN ('pending', 'running'))
		FROM pbirefresh_replicas p WHERE p.expires_at > now() - interval '1 hour' ORDER BY p.started`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Replica
	self := s.self()
	for rows.Next() {
		var r store.Replica
		var runs int64
		if err := rows.Scan(&r.ID, &r.Host, &r.PID, &r.Version, &r.Started, &r.Heartbeat, &r.Expires, &r.Alive, &runs); err != nil {
			return nil, err
		}
		r.Runs, r.Self = int(runs), r.ID == self
		out = append(out, r)
	}
	return out, rows.Err()
}

// Copy inserts runs (from another store: `pbirefresh state copy`) that
// are not here yet, keeping their (job, slot) identity; it returns how many
// it added. Running it twice adds nothing the second time.
func (s *Store) Copy(ctx context.Context, runs []store.Run) (int, error) {
	added := 0
	batch := &pgx.Batch{}
	for _, r := range runs {
		// queued and done come from the other store's clock: close enough
		// for history, and only compared with runs recorded later.
		done := int64(0)
		if r.Status == pbirefresh.Completed {
			done = nanos(r.Ended)
		}
		batch.Queue(`INSERT INTO pbirefresh_runs (job, slot, kind, status, refresh_id, posted, ended, polls, error, hint, note, code, service_start, service_end, owner,
				upstream, upstream_run, queued, done)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, '', $15, $16, $6, $17) ON CONFLICT DO NOTHING`,
			r.Job, nanos(r.Slot), string(r.Kind), string(r.Status), r.RefreshID, nanos(r.Posted), nanos(r.Ended), r.Polls, r.Error, r.Hint, r.Note, r.Code,
			nanos(r.ServiceStart), nanos(r.ServiceEnd), r.Upstream, r.UpstreamRun, done)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	br := tx.SendBatch(ctx, batch)
	for range runs {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return 0, err
		}
		added += int(tag.RowsAffected())
	}
	if err := br.Close(); err != nil {
		return 0, err
	}
	return added, tx.Commit(ctx)
}

// Freshness returns, per job, when its last completed refresh ended and
// how many runs in a row have failed since (skipped and missed slots do not
// count), read once at start-up.
func (s *Store) Freshness(ctx context.Context) (map[string]store.Freshness, error) {
	out := map[string]store.Freshness{}
	rows, err := s.pool.Query(ctx, `SELECT job, max(ended) FROM pbirefresh_runs WHERE status = 'completed' GROUP BY job`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var job string
		var ended int64
		if err := rows.Scan(&job, &ended); err != nil {
			rows.Close()
			return nil, err
		}
		out[job] = store.Freshness{LastSuccess: fromNanos(ended)}
	}
	rows.Close()
	rows, err = s.pool.Query(ctx, `SELECT r.job, count(*) FROM pbirefresh_runs r
		LEFT JOIN (SELECT job, max(slot) AS slot FROM pbirefresh_runs WHERE status = 'completed' GROUP BY job) last ON last.job = r.job
		WHERE r.status NOT IN ('triggered', 'pending', 'running', 'skipped', 'missed', 'completed') AND r.slot > COALESCE(last.slot, -1)
		GROUP BY r.job`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var job string
		var n int64
		if err := rows.Scan(&job, &n); err != nil {
			return nil, err
		}
		f := out[job]
		f.Failures = int(n)
		out[job] = f
	}
	return out, rows.Err()
}
