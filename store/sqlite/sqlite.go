package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
)

// migrations[i] brings the schema from version i to i+1.
var migrations = []string{
	`CREATE TABLE runs (
		id         INTEGER PRIMARY KEY,
		job        TEXT    NOT NULL,
		slot       INTEGER NOT NULL,   -- Unix nanoseconds, UTC
		kind       TEXT    NOT NULL,
		status     TEXT    NOT NULL,
		refresh_id TEXT    NOT NULL DEFAULT '',
		posted     INTEGER NOT NULL DEFAULT 0,
		ended      INTEGER NOT NULL DEFAULT 0,
		polls      INTEGER NOT NULL DEFAULT 0,
		error      TEXT    NOT NULL DEFAULT '',
		hint       TEXT    NOT NULL DEFAULT '',
		note       TEXT    NOT NULL DEFAULT '',
		UNIQUE (job, slot)
	);
	CREATE INDEX runs_status ON runs (status);`,
	// Version 2: the service's error code and times, indexes for paging and
	// for refresh ids, the daemon holding the file, and our application id.
	`ALTER TABLE runs ADD COLUMN code TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN service_start INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE runs ADD COLUMN service_end INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX runs_slot ON runs (slot, id);
	CREATE INDEX runs_refresh ON runs (refresh_id) WHERE refresh_id != '';
	DROP INDEX runs_status;
	UPDATE runs SET status = 'error', note = 'superseded by a later run of the job left in flight'
		WHERE status IN ('pending', 'running') AND id NOT IN (SELECT max(id) FROM runs WHERE status IN ('pending', 'running') GROUP BY job);
	CREATE UNIQUE INDEX runs_one_in_flight ON runs (job) WHERE status IN ('pending', 'running');
	CREATE TABLE daemon (
		id      INTEGER PRIMARY KEY CHECK (id = 1),
		host    TEXT    NOT NULL,
		pid     INTEGER NOT NULL,
		version TEXT    NOT NULL,
		started INTEGER NOT NULL
	);
	PRAGMA application_id = ` + fmt.Sprint(applicationID) + `;`,
	// Version 3: chains. queued is when a run was decided to run (its
	// upstreams are compared with it); upstream and upstream_run name the
	// run whose end triggered or skipped it.
	`ALTER TABLE runs ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE runs ADD COLUMN upstream TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN upstream_run INTEGER NOT NULL DEFAULT 0;
	UPDATE runs SET queued = posted;
	CREATE INDEX runs_triggered ON runs (id) WHERE status = 'triggered';`,
	// Version 4: pauses. paused is when a job was paused (0: it is not);
	// resumed, when it was last taken up again: the daemon takes a job up
	// from there, never from before its pause.
	`CREATE TABLE pauses (
		job     TEXT    PRIMARY KEY,
		paused  INTEGER NOT NULL DEFAULT 0,
		resumed INTEGER NOT NULL DEFAULT 0
	);`,
}

// beginSQL records a run; setRefreshSQL its refresh id, while it is in
// flight.
const (
	beginSQL      = `INSERT INTO runs (job, slot, kind, status, posted, ended, note, queued) VALUES (?, ?, ?, ?, ?, ?, ?, ?5)`
	setRefreshSQL = `UPDATE runs SET refresh_id = ?, status = ? WHERE id = ? AND status IN ('pending', 'running')`
)

// finishSQL records a run's end, unless it has ended already. The statuses
// are compared one by one, not with IN: SQLite builds a list of three or
// more constants into a temporary b-tree at every execution (EXPLAIN shows
// an OpenEphemeral), about 15% of this statement's cost (8.3 against 7.1
// µs, executed alone in a loop).
const finishSQL = `UPDATE runs SET status = ?, refresh_id = CASE WHEN ? = '' THEN refresh_id ELSE ? END,
	ended = ?, polls = polls + ?, error = ?, code = ?, hint = ?, note = ?, service_start = ?, service_end = ?
	WHERE id = ? AND (status = 'pending' OR status = 'running' OR status = 'triggered')`

// Holder names the daemon that writes a state file; another daemon
// refuses to start on it and names this one.
type Holder struct {
	Host    string
	PID     int
	Version string
}

// Options say how to open a state file.
type Options struct {
	// ReadOnly opens without writing a byte: no migration, no lock
	// (history, next). It works beside a running daemon.
	ReadOnly bool
	// Daemon, when set, takes the file for this process: a second daemon
	// on the same file refuses to start. Read-write opens need it.
	Daemon *Holder
}

// Store is an open state database. It is safe for concurrent use.
type Store struct {
	// Now is the clock (default time.Now).
	Now func() time.Time

	path    string
	version int       // schema version of the file
	w       *sql.DB   // the writer (nil when read-only): one connection...
	conn    *sql.Conn // ...held by the committer
	r       *sql.DB   // readers, never waiting behind the writer (WAL)
	lock    *os.File
	// Statements on the hot path, prepared once.
	begin, setRefresh, finish, finishPlain *sql.Stmt
	txBegin, txCommit                      *sql.Stmt   // the committer's BEGIN IMMEDIATE and COMMIT
	stmts                                  []*sql.Stmt // all of them, to close

	mu       sync.Mutex
	writeErr error // the last write's error, nil after a success

	opsMu     sync.RWMutex // submit holds it to send, Close to close ops
	opsClosed bool
	ops       chan op // writes for the committer
	adopted   atomic.Bool
	chain     atomic.Pointer[store.Chain]
	daemon    *Holder
	stopped   chan struct{} // closed when the committer has ended
	closeOnce sync.Once
	commits   atomic.Int64 // transactions the committer has run
}

// Open opens the state database at path. Nothing is written to a file that
// is not a pbirefresh database (it is recognised by its application id,
// or, for the first schema, by its tables) or that a newer pbirefresh
// wrote; a read-only open writes nothing at all.
func Open(ctx context.Context, path string, o Options) (*Store, error) {
	exists, err := inspect(path)
	if err != nil {
		return nil, err
	}
	version := 0
	switch {
	case !exists && o.ReadOnly:
		return nil, pbirefresh.WithHint(fmt.Errorf("no state database at %s", path), "the daemon creates it at its first start: check state.path, or run `pbirefresh run` once")
	case exists:
		var ours bool
		if ours, version, err = identify(ctx, path); err != nil {
			return nil, err
		}
		if !ours {
			return nil, foreign(path)
		}
	}
	if version > len(migrations) {
		return nil, pbirefresh.WithHint(fmt.Errorf("state %s has schema version %d, newer than this pbirefresh supports (%d)", path, version, len(migrations)), hintNewer)
	}
	s := &Store{path: path, version: version}
	if o.ReadOnly {
		if err := s.openReaders(ctx); err != nil {
			return nil, err
		}
		return s, nil
	}
	if o.Daemon == nil {
		return nil, errors.New("sqlite.Open: a read-write open needs Options.Daemon")
	}
	if err := writable(path); err != nil {
		return nil, err
	}
	if err := s.takeLock(ctx); err != nil {
		return nil, err
	}
	s.daemon = o.Daemon
	if err := s.openWriter(ctx, *o.Daemon); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.openReaders(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// takeLock holds an exclusive flock on the database file for the life of
// the process (the kernel releases it if the process dies, so no lock is
// ever stale). SQLite's own locks are fcntl locks, independent of it.
func (s *Store) takeLock(ctx context.Context) error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return classify(s.path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("lock state %s: %w", s.path, err)
		}
		holder := "another process"
		if h, ok := s.holder(ctx); ok {
			holder = fmt.Sprintf("pbirefresh %s (pid %d on host %s, since %s)", h.Version, h.PID, h.Host, h.started.Format(time.RFC3339))
		}
		return pbirefresh.WithHint(fmt.Errorf("state %s is in use by %s", s.path, holder),
			"stop that daemon first (systemctl stop pbirefresh), or give this one its own state.path; `pbirefresh history` and `next` work beside a running daemon")
	}
	s.lock = f
	return nil
}

type holderRow struct {
	Holder
	started time.Time
}

// holder reads who holds the file: through the readers when open, else
// through a read-only connection of its own.
func (s *Store) holder(ctx context.Context) (holderRow, bool) {
	if s.version < 2 {
		return holderRow{}, false
	}
	db := s.r
	if db == nil {
		var err error
		if db, err = sql.Open("sqlite", dsn(s.path, true)); err != nil {
			return holderRow{}, false
		}
		defer db.Close()
	}
	var h holderRow
	var started int64
	err := db.QueryRowContext(ctx, `SELECT host, pid, version, started FROM daemon WHERE id = 1`).Scan(&h.Host, &h.PID, &h.Version, &started)
	h.started = fromNanos(started)
	return h, err == nil
}

func (s *Store) openWriter(ctx context.Context, h Holder) error {
	w, err := sql.Open("sqlite", dsn(s.path, false))
	if err != nil {
		return classify(s.path, err)
	}
	// One writer connection: SQLite serialises writers anyway, and this
	// avoids SQLITE_BUSY between our own goroutines.
	w.SetMaxOpenConns(1)
	s.w = w
	if err := s.migrate(ctx); err != nil {
		return err
	}
	if _, err := w.ExecContext(ctx, `INSERT INTO daemon (id, host, pid, version, started) VALUES (1, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, version = excluded.version, started = excluded.started`,
		h.Host, h.PID, h.Version, nanos(s.now())); err != nil {
		return classify(s.path, err)
	}
	if s.conn, err = w.Conn(ctx); err != nil {
		return classify(s.path, err)
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&s.begin, beginSQL},
		{&s.setRefresh, setRefreshSQL},
		{&s.finish, finishSQL + ` RETURNING job, slot`},
		// Without chains nothing needs the job and slot back, and
		// RETURNING made the statement cost three times as much.
		{&s.finishPlain, finishSQL},
		// Prepared rather than parsed again at each of the committer's
		// transactions.
		{&s.txBegin, `BEGIN IMMEDIATE`},
		{&s.txCommit, `COMMIT`},
	} {
		if *p.stmt, err = s.conn.PrepareContext(ctx, p.sql); err != nil {
			return classify(s.path, err)
		}
		s.stmts = append(s.stmts, *p.stmt)
	}
	s.ops, s.stopped = make(chan op), make(chan struct{})
	go s.committer()
	return nil
}

func (s *Store) openReaders(ctx context.Context) error {
	r, err := sql.Open("sqlite", dsn(s.path, true))
	if err != nil {
		return classify(s.path, err)
	}
	r.SetMaxOpenConns(4)
	s.r = r
	var n int
	if err := r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		return classify(s.path, err)
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	for v := s.version; v < len(migrations); v++ {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return classify(s.path, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return classify(s.path, fmt.Errorf("migrate to schema version %d: %w", v+1, err))
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return classify(s.path, err)
		}
		if err := tx.Commit(); err != nil {
			return classify(s.path, err)
		}
		s.version = v + 1
	}
	return nil
}

// Ping checks that the database answers and that the last write
// succeeded: a daemon whose writes fail cannot record runs.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.Lock()
	werr := s.writeErr
	s.mu.Unlock()
	if werr != nil {
		return werr
	}
	var n int
	return s.r.QueryRowContext(ctx, "SELECT 1").Scan(&n)
}

// wrote notes a commit's (or a direct write's) result for Ping.
func (s *Store) wrote(err error) error {
	if err != nil {
		err = classify(s.path, err)
	}
	s.mu.Lock()
	s.writeErr = err
	s.mu.Unlock()
	return err
}

// Close closes the database and releases the file.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.close() })
	return err
}

func (s *Store) close() error {
	if s.ops != nil {
		s.opsMu.Lock()
		s.opsClosed = true
		close(s.ops) // the committer commits what is queued, then ends
		s.opsMu.Unlock()
		<-s.stopped
	}
	// Open statements would keep the connection from closing, and so
	// from checkpointing the WAL into the file.
	for _, st := range s.stmts {
		st.Close()
	}
	if s.conn != nil {
		s.conn.Close()
	}
	var err error
	if s.r != nil {
		err = s.r.Close()
	}
	if s.w != nil {
		err = errors.Join(err, s.w.Close())
	}
	if s.lock != nil {
		err = errors.Join(err, s.lock.Close())
	}
	return err
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

// uniqueErr maps a unique violation to the store's error: the (job, slot)
// pair taken, or a run of the job already in flight.
func uniqueErr(err error) error {
	switch {
	case err == nil || !strings.Contains(err.Error(), "UNIQUE constraint failed"):
		return err
	case strings.Contains(err.Error(), "runs.slot"):
		return store.ErrDuplicate
	}
	return store.ErrBusy
}

// errReadOnly: a write on a store opened read-only.
var errReadOnly = errors.New("the state database is open read-only")

// direct is the connection pool for reads on the run path: the readers'
// (under WAL they see every committed write, and the committer holds the
// writer's one connection).
func (s *Store) direct() *sql.DB { return s.r }

// insert records a run. The (job, slot) index keeps it unique and also
// answers LastSlot. It commits at once (urgent).
func (s *Store) insert(ctx context.Context, urgent bool, job string, slot time.Time, kind pbirefresh.Kind, status pbirefresh.Status, note string, posted, ended time.Time) (int64, error) {
	if s.w == nil {
		return 0, errReadOnly
	}
	var id int64
	err := s.submit(ctx, urgent, func(ctx context.Context, c *sql.Conn) error {
		res, err := s.begin.ExecContext(ctx, job, nanos(slot), string(kind), string(status), nanos(posted), nanos(ended), note)
		if err = uniqueErr(err); errors.Is(err, store.ErrBusy) {
			// Both rules may be broken at once; a taken slot is the answer
			// that says "never run it".
			var one int
			if c.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE job = ? AND slot = ?`, job, nanos(slot)).Scan(&one) == nil {
				err = store.ErrDuplicate
			}
		}
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil && !errors.Is(err, store.ErrDuplicate) && !errors.Is(err, store.ErrBusy) && !errors.Is(err, context.Canceled) {
		err = classify(s.path, err)
	}
	return id, err
}

// Begin records a run about to POST, at once. ErrDuplicate means the slot
// was already taken: do not trigger it.
func (s *Store) Begin(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind) (int64, error) {
	return s.insert(ctx, true, job, slot, kind, pbirefresh.Pending, "", s.now(), time.Time{})
}

// Record writes a slot decided without a refresh: skipped or missed.
func (s *Store) Record(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind, status pbirefresh.Status, note string) error {
	_, err := s.insert(ctx, true, job, slot, kind, status, note, time.Time{}, s.now())
	return err
}

// Fail marks the run of a slot as an error with a note: the recorded run
// if there is one (still pending or running), a new record otherwise.
func (s *Store) Fail(ctx context.Context, job string, slot time.Time, kind pbirefresh.Kind, note string) error {
	if s.w == nil {
		return errReadOnly
	}
	now := s.now()
	return s.submit(ctx, true, func(ctx context.Context, c *sql.Conn) error {
		res, err := c.ExecContext(ctx, `UPDATE runs SET status = ?, note = ?, ended = ? WHERE job = ? AND slot = ? AND status IN (?, ?)`,
			string(pbirefresh.Error), note, nanos(now), job, nanos(slot), string(pbirefresh.Pending), string(pbirefresh.Running))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		_, err = s.begin.ExecContext(ctx, job, nanos(slot), string(kind), string(pbirefresh.Error), 0, nanos(now), note)
		if errors.Is(uniqueErr(err), store.ErrDuplicate) {
			return nil // already final
		}
		return err
	})
}

// SetRefresh records the refresh id of a run: it is now in flight.
func (s *Store) SetRefresh(ctx context.Context, id int64, refreshID string) error {
	if s.w == nil {
		return errReadOnly
	}
	return s.submit(ctx, false, s.setRefreshOp(id, refreshID))
}

// SetRefreshLater is SetRefresh without waiting for the commit (only, at
// most, for a commit in progress to end): the run goes on
// following its refresh while the write lingers for company (a run that
// waited would poll its refresh up to a linger later, and park and wake
// once more). done, when not nil, gets the write's result from the
// committer's goroutine, and must not block. A crash before the commit
// leaves the run pending, and the next start finds its refresh in the
// history.
func (s *Store) SetRefreshLater(ctx context.Context, id int64, refreshID string, done func(error)) {
	if s.w == nil {
		if done != nil {
			done(errReadOnly)
		}
		return
	}
	s.submitLater(ctx, s.setRefreshOp(id, refreshID), done)
}

func (s *Store) setRefreshOp(id int64, refreshID string) func(ctx context.Context, c *sql.Conn) error {
	return func(ctx context.Context, c *sql.Conn) error {
		_, err := s.setRefresh.ExecContext(ctx, refreshID, string(pbirefresh.Running), id)
		return err
	}
}

// Finish writes a run's outcome and, in the same transaction, what it
// means for the jobs that run after this one (see SetChain).
func (s *Store) Finish(ctx context.Context, id int64, o store.Outcome) error {
	if s.w == nil {
		return errReadOnly
	}
	chain := s.chain.Load()
	return s.submit(ctx, false, func(ctx context.Context, c *sql.Conn) error {
		// Read at commit time: ends and the runs they trigger are then
		// stamped in the order they commit.
		now := s.now()
		end := func() error {
			var job string
			var slot int64
			err := s.finish.QueryRowContext(ctx, string(o.Status), o.RefreshID, o.RefreshID, nanos(now), o.Polls, o.Error, o.Code, o.Hint, o.Note,
				nanos(o.ServiceStart), nanos(o.ServiceEnd), id).Scan(&job, &slot)
			if errors.Is(err, sql.ErrNoRows) {
				return nil // already ended (a retried write), pruned, or never recorded: nothing to do
			}
			if err != nil {
				return err
			}
			return chain.Step(ctx, chainTx{s, c, now}, job, fromNanos(slot), id, o.Status)
		}
		if chain.Empty() {
			// One statement: nothing to keep together. No row: already
			// ended (a retried write), pruned, or never recorded.
			_, err := s.finishPlain.ExecContext(ctx, string(o.Status), o.RefreshID, o.RefreshID, nanos(now), o.Polls, o.Error, o.Code, o.Hint, o.Note,
				nanos(o.ServiceStart), nanos(o.ServiceEnd), id)
			return err
		}
		return s.savepoint(ctx, c, end)
	})
}

// savepoint runs f so that its writes commit all or not at all, whatever
// the other writes of the batch do.
func (s *Store) savepoint(ctx context.Context, c *sql.Conn, f func() error) error {
	if _, err := c.ExecContext(ctx, `SAVEPOINT op`); err != nil {
		return err
	}
	if err := f(); err != nil {
		c.ExecContext(ctx, `ROLLBACK TO op`)
		c.ExecContext(ctx, `RELEASE op`)
		return err
	}
	_, err := c.ExecContext(ctx, `RELEASE op`)
	return err
}

// Claimed reports whether some run records this refresh id.
func (s *Store) Claimed(ctx context.Context, refreshID string) (bool, error) {
	var n int
	err := s.direct().QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE refresh_id = ?`, refreshID).Scan(&n)
	return n > 0, err
}

// LastSlot returns the newest slot decided for a job (run, skipped or
// missed; manual runs do not count). Retention keeps each job's newest run,
// so it survives pruning unless every run of the job aged out.
func (s *Store) LastSlot(ctx context.Context, job string) (time.Time, bool, error) {
	var n sql.NullInt64
	err := s.direct().QueryRowContext(ctx, `SELECT max(slot) FROM runs WHERE job = ? AND kind != ?`, job, string(pbirefresh.Manual)).Scan(&n)
	if err != nil {
		return time.Time{}, false, err
	}
	if !n.Valid {
		return time.Time{}, false, nil
	}
	return fromNanos(n.Int64), true, nil
}

// LastSlots returns every job's newest slot decided (manual runs do not
// count), in one query.
func (s *Store) LastSlots(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.direct().QueryContext(ctx, `SELECT job, max(slot) FROM runs WHERE kind != 'manual' GROUP BY job`)
	if err != nil {
		return nil, classify(s.path, err)
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

// SetPaused records that a job was paused (paused true; a pause already
// recorded keeps its time) or taken up again, at at.
func (s *Store) SetPaused(ctx context.Context, job string, paused bool, at time.Time) error {
	if s.w == nil {
		return errReadOnly
	}
	return s.submit(ctx, true, func(ctx context.Context, c *sql.Conn) error {
		var err error
		if paused {
			_, err = c.ExecContext(ctx, `INSERT INTO pauses (job, paused) VALUES (?, ?) ON CONFLICT (job) DO UPDATE SET paused = excluded.paused WHERE pauses.paused = 0`, job, nanos(at))
		} else {
			_, err = c.ExecContext(ctx, `INSERT INTO pauses (job, resumed) VALUES (?, ?) ON CONFLICT (job) DO UPDATE SET paused = 0, resumed = excluded.resumed`, job, nanos(at))
		}
		return err
	})
}

// Pauses returns what the state remembers of the jobs' pauses.
func (s *Store) Pauses(ctx context.Context) (map[string]store.Pause, error) {
	out := map[string]store.Pause{}
	if s.version < 4 {
		return out, nil
	}
	rows, err := s.direct().QueryContext(ctx, `SELECT job, paused, resumed FROM pauses`)
	if err != nil {
		return nil, classify(s.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var job string
		var paused, resumed int64
		if err := rows.Scan(&job, &paused, &resumed); err != nil {
			return nil, err
		}
		out[job] = store.Pause{Paused: fromNanos(paused), Resumed: fromNanos(resumed)}
	}
	return out, rows.Err()
}

// columns is the select list; files of the first schema lack three
// columns, which read as empty.
func (s *Store) columns() string {
	extra := `code, service_start, service_end, upstream, upstream_run`
	switch {
	case s.version < 2:
		extra = `'', 0, 0, '', 0`
	case s.version < 3:
		extra = `code, service_start, service_end, '', 0`
	}
	return `id, job, slot, kind, status, refresh_id, posted, ended, polls, error, hint, note, ` + extra
}

func scanRuns(rows *sql.Rows) ([]store.Run, error) {
	defer rows.Close()
	var out []store.Run
	for rows.Next() {
		var r store.Run
		var slot, posted, ended, sstart, send int64
		var kind, status string
		if err := rows.Scan(&r.ID, &r.Job, &slot, &kind, &status, &r.RefreshID, &posted, &ended, &r.Polls, &r.Error, &r.Hint, &r.Note, &r.Code, &sstart, &send, &r.Upstream, &r.UpstreamRun); err != nil {
			return nil, err
		}
		r.Kind, r.Status = pbirefresh.Kind(kind), pbirefresh.Status(status)
		r.Slot, r.Posted, r.Ended = fromNanos(slot), fromNanos(posted), fromNanos(ended)
		r.ServiceStart, r.ServiceEnd = fromNanos(sstart), fromNanos(send)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Adopt returns, at its first call, the runs an earlier process left in
// flight: pending (the POST may or may not have reached the service) and
// running. One process owns an SQLite file, so later calls find nothing
// new to adopt.
func (s *Store) Adopt(ctx context.Context) ([]store.Run, error) {
	if !s.adopted.CompareAndSwap(false, true) {
		return nil, nil
	}
	return s.InFlight(ctx)
}

// Owned returns the runs in flight: one process owns an SQLite file.
func (s *Store) Owned(ctx context.Context) ([]store.Run, error) { return s.InFlight(ctx) }

// InFlight returns the runs that started but have no outcome.
func (s *Store) InFlight(ctx context.Context) ([]store.Run, error) {
	rows, err := s.direct().QueryContext(ctx, `SELECT `+s.columns()+` FROM runs WHERE status IN (?, ?) ORDER BY id`, string(pbirefresh.Pending), string(pbirefresh.Running))
	if err != nil {
		return nil, classify(s.path, err)
	}
	runs, err := scanRuns(rows)
	return runs, classify(s.path, err)
}

// Replicas lists the one process that holds the file.
func (s *Store) Replicas(ctx context.Context) ([]store.Replica, error) {
	h, ok := s.holder(ctx)
	if !ok {
		return nil, nil
	}
	return []store.Replica{{ID: s.Self(), Host: h.Host, PID: h.PID, Version: h.Version, Started: h.started, Alive: s.w != nil, Self: s.w != nil}}, nil
}

// Self is this process's replica id: host and pid.
func (s *Store) Self() string {
	if s.daemon == nil {
		return ""
	}
	return fmt.Sprintf("%s-%d", s.daemon.Host, s.daemon.PID)
}

// Gate says whether this process may post: always, with one process per
// file (the file lock is the lease).
func (s *Store) Gate() error { return nil }

// Runs returns one page of runs, newest slot first, on the read
// connections: a reader never waits behind the scheduler's writes.
func (s *Store) Runs(ctx context.Context, q store.Query) ([]store.Run, error) {
	where, args := []string{"1 = 1"}, []any{}
	if q.Job != "" {
		where, args = append(where, "job = ?"), append(args, q.Job)
	}
	if c := q.After; c != nil {
		where = append(where, "(slot < ? OR slot = ? AND id < ?)")
		args = append(args, nanos(c.Slot), nanos(c.Slot), c.ID)
	}
	args = append(args, q.PageSize())
	rows, err := s.r.QueryContext(ctx, `SELECT `+s.columns()+` FROM runs WHERE `+strings.Join(where, " AND ")+` ORDER BY slot DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, classify(s.path, err)
	}
	runs, err := scanRuns(rows)
	return runs, classify(s.path, err)
}

// RecentDurations returns, for every job, how long its last n completed
// refreshes ran, newest first: the expected durations that guide polling
// come from here, read once at start-up, not from the dataset's history
// on every run.
func (s *Store) RecentDurations(ctx context.Context, n int) (map[string][]time.Duration, error) {
	extra := `service_start, service_end`
	if s.version < 2 {
		extra = `0, 0`
	}
	rows, err := s.direct().QueryContext(ctx, `SELECT job, posted, ended, `+extra+` FROM (
		SELECT job, slot, posted, ended, `+extra+`, row_number() OVER (PARTITION BY job ORDER BY slot DESC) AS rn
		FROM runs WHERE status = ?) WHERE rn <= ? ORDER BY job, slot DESC`, string(pbirefresh.Completed), n)
	if err != nil {
		return nil, classify(s.path, err)
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
	return out, classify(s.path, rows.Err())
}

// Prune keeps, per job, the newest keep runs and none older than maxAge
// (runs in flight are always kept). It returns how many it removed.
func (s *Store) Prune(ctx context.Context, keep int, maxAge time.Duration) (int64, error) {
	if s.w == nil {
		return 0, errReadOnly
	}
	cutoff := nanos(s.now().Add(-maxAge))
	var n int64
	err := s.submit(ctx, true, func(ctx context.Context, c *sql.Conn) error {
		// A job's newest completed run and newest refresh stay whatever
		// their age: its upstreams' readiness is measured from them.
		res, err := c.ExecContext(ctx, `DELETE FROM runs WHERE status NOT IN (?, ?, ?)
			AND id NOT IN (SELECT max(id) FROM runs WHERE status = 'completed' GROUP BY job)
			AND id NOT IN (SELECT max(id) FROM runs WHERE refresh_id != '' GROUP BY job) AND id IN (
			SELECT id FROM (SELECT id, slot, row_number() OVER (PARTITION BY job ORDER BY slot DESC) AS rn FROM runs)
			WHERE rn > ? OR slot < ?)`, string(pbirefresh.Pending), string(pbirefresh.Running), string(pbirefresh.Triggered), keep, cutoff)
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	return n, err
}

// Freshness returns, per job, when its last completed refresh ended and
// how many runs in a row have failed since (skipped and missed slots do not
// count), read once at start-up.
func (s *Store) Freshness(ctx context.Context) (map[string]store.Freshness, error) {
	out := map[string]store.Freshness{}
	rows, err := s.direct().QueryContext(ctx, `SELECT job, max(ended) FROM runs WHERE status = 'completed' GROUP BY job`)
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
	rows, err = s.direct().QueryContext(ctx, `SELECT r.job, count(*) FROM runs r
		LEFT JOIN (SELECT job, max(slot) AS slot FROM runs WHERE status = 'completed' GROUP BY job) last ON last.job = r.job
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
