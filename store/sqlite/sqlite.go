package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite"
)

// Kinds of run.
const (
	Scheduled = "scheduled"
	CatchUp   = "catch-up"
	Manual    = "manual"
)

// Statuses a run passes through. Pending: recorded, POST not yet known to
// have reached the service. Running: the refresh id is known. The rest are
// final (the refresh package's outcomes, plus skipped and missed).
const (
	Pending = "pending"
	Running = "running"
	Missed  = "missed"
	Skipped = "skipped"
)

// ErrDuplicate: the (job, slot) pair is already recorded.
var ErrDuplicate = errors.New("this job's slot is already recorded")

// Error is a store failure with the operator's fix.
type Error struct {
	Err  error
	hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Hint names the fix.
func (e *Error) Hint() string { return e.hint }

// Run is one recorded run.
type Run struct {
	ID        int64     `json:"id"`
	Job       string    `json:"job"`
	Slot      time.Time `json:"slot"`
	Kind      string    `json:"kind"`
	Status    string    `json:"status"`
	RefreshID string    `json:"refresh_id,omitempty"`
	Posted    time.Time `json:"posted,omitzero"`
	Ended     time.Time `json:"ended,omitzero"`
	Polls     int       `json:"polls,omitempty"`
	Error     string    `json:"error,omitempty"`
	Hint      string    `json:"hint,omitempty"`
	Note      string    `json:"note,omitempty"`
}

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
}

// Store is an open state database. It is safe for concurrent use.
type Store struct {
	// Now is the clock (default time.Now).
	Now func() time.Time

	db   *sql.DB
	path string
	// Statements on the hot path, prepared once.
	begin, setRefresh, finish *sql.Stmt
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(path string) (*Store, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, &Error{fmt.Errorf("state path %s is a directory", path), "set state.path to a file, e.g. /var/lib/pbirefresh/state.db"}
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, &Error{fmt.Errorf("open state %s: %w", path, err), "check state.path"}
	}
	// One connection: SQLite serialises writers anyway, and this avoids
	// SQLITE_BUSY between our own goroutines.
	db.SetMaxOpenConns(1)
	s := &Store{db: db, path: path}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&s.begin, `INSERT INTO runs (job, slot, kind, status, posted, note) VALUES (?, ?, ?, ?, ?, ?)`},
		{&s.setRefresh, `UPDATE runs SET refresh_id = ?, status = ? WHERE id = ?`},
		{&s.finish, `UPDATE runs SET status = ?, refresh_id = CASE WHEN ? = '' THEN refresh_id ELSE ? END,
			ended = ?, polls = polls + ?, error = ?, hint = ?, note = ? WHERE id = ?`},
	} {
		if *p.stmt, err = db.Prepare(p.sql); err != nil {
			db.Close()
			return nil, &Error{fmt.Errorf("prepare state statements: %w", err), ""}
		}
	}
	return s, nil
}

func (s *Store) migrate() error {
	var version int
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		return &Error{fmt.Errorf("state %s is not a pbirefresh database: %w", s.path, err),
			"move the file away (it is left untouched) or set state.path to another file"}
	}
	if version > len(migrations) {
		return &Error{fmt.Errorf("state %s has schema version %d, newer than this pbirefresh supports (%d)", s.path, version, len(migrations)),
			"run the newer pbirefresh that wrote it, or set state.path to another file; the database is left untouched"}
	}
	for v := version; v < len(migrations); v++ {
		tx, err := s.db.Begin()
		if err != nil {
			return &Error{fmt.Errorf("migrate state %s: %w", s.path, err), "check that the state directory is writable"}
		}
		if _, err := tx.Exec(migrations[v]); err != nil {
			tx.Rollback()
			return &Error{fmt.Errorf("migrate state %s to version %d: %w", s.path, v+1, err), "check that the state directory is writable"}
		}
		if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return &Error{fmt.Errorf("migrate state %s: %w", s.path, err), ""}
		}
		if err := tx.Commit(); err != nil {
			return &Error{fmt.Errorf("migrate state %s: %w", s.path, err), "check that the state directory is writable"}
		}
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	return s.db.QueryRowContext(ctx, "SELECT 1").Scan(&n)
}

// Close closes the database.
func (s *Store) Close() error {
	for _, st := range []*sql.Stmt{s.begin, s.setRefresh, s.finish} {
		if st != nil {
			st.Close()
		}
	}
	return s.db.Close()
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

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// insert records a run. The (job, slot) index keeps it unique and also
// answers LastSlot, so this is one statement, one implicit transaction.
func (s *Store) insert(ctx context.Context, job string, slot time.Time, kind, status, note string, posted time.Time) (int64, error) {
	res, err := s.begin.ExecContext(ctx, job, nanos(slot), kind, status, nanos(posted), note)
	if isUnique(err) {
		return 0, ErrDuplicate
	}
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// Begin records a run about to POST. ErrDuplicate means the slot was
// already taken: do not trigger it.
func (s *Store) Begin(ctx context.Context, job string, slot time.Time, kind string) (int64, error) {
	return s.insert(ctx, job, slot, kind, Pending, "", s.now())
}

// Record writes a slot decided without a refresh: skipped or missed.
func (s *Store) Record(ctx context.Context, job string, slot time.Time, kind, status, note string) error {
	now := s.now()
	id, err := s.insert(ctx, job, slot, kind, status, note, time.Time{})
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `UPDATE runs SET ended = ? WHERE id = ?`, nanos(now), id)
	return err
}

// Fail marks the run of a slot as an error with a note: the recorded run
// if there is one (still pending or running), a new record otherwise.
func (s *Store) Fail(ctx context.Context, job string, slot time.Time, kind, note string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE runs SET status = 'error', note = ?, ended = ? WHERE job = ? AND slot = ? AND status IN (?, ?)`,
		note, nanos(s.now()), job, nanos(slot), Pending, Running)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	err = s.Record(ctx, job, slot, kind, "error", note)
	if errors.Is(err, ErrDuplicate) {
		return nil // already final
	}
	return err
}

// SetRefresh records the refresh id of a run: it is now in flight.
func (s *Store) SetRefresh(ctx context.Context, id int64, refreshID string) error {
	_, err := s.setRefresh.ExecContext(ctx, refreshID, Running, id)
	return err
}

// Finish writes a run's outcome.
func (s *Store) Finish(ctx context.Context, id int64, status, refreshID string, polls int, errText, hint, note string) error {
	_, err := s.finish.ExecContext(ctx, status, refreshID, refreshID, nanos(s.now()), polls, errText, hint, note, id)
	return err
}

// Claimed reports whether some run records this refresh id.
func (s *Store) Claimed(ctx context.Context, refreshID string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE refresh_id = ?`, refreshID).Scan(&n)
	return n > 0, err
}

// LastSlot returns the newest slot decided for a job (run, skipped or
// missed; manual runs do not count). Retention keeps each job's newest run,
// so it survives pruning unless every run of the job aged out.
func (s *Store) LastSlot(ctx context.Context, job string) (time.Time, bool, error) {
	var n sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT max(slot) FROM runs WHERE job = ? AND kind != ?`, job, Manual).Scan(&n)
	if err != nil {
		return time.Time{}, false, err
	}
	if !n.Valid {
		return time.Time{}, false, nil
	}
	return fromNanos(n.Int64), true, nil
}

const runColumns = `id, job, slot, kind, status, refresh_id, posted, ended, polls, error, hint, note`

func scanRuns(rows *sql.Rows) ([]Run, error) {
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var r Run
		var slot, posted, ended int64
		if err := rows.Scan(&r.ID, &r.Job, &slot, &r.Kind, &r.Status, &r.RefreshID, &posted, &ended, &r.Polls, &r.Error, &r.Hint, &r.Note); err != nil {
			return nil, err
		}
		r.Slot, r.Posted, r.Ended = fromNanos(slot), fromNanos(posted), fromNanos(ended)
		out = append(out, r)
	}
	return out, rows.Err()
}

// InFlight returns the runs that started but have no outcome: pending (the
// POST may or may not have reached the service) and running.
func (s *Store) InFlight(ctx context.Context) ([]Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE status IN (?, ?) ORDER BY id`, Pending, Running)
	if err != nil {
		return nil, err
	}
	return scanRuns(rows)
}

// Runs returns a job's runs (all jobs when job is ""), newest slot first.
func (s *Store) Runs(ctx context.Context, job string, limit int) ([]Run, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE (? = '' OR job = ?) ORDER BY slot DESC, id DESC LIMIT ?`, job, job, limit)
	if err != nil {
		return nil, err
	}
	return scanRuns(rows)
}

// Prune keeps, per job, the newest keep runs and none older than maxAge
// (runs in flight are always kept). It returns how many it removed.
func (s *Store) Prune(ctx context.Context, keep int, maxAge time.Duration) (int64, error) {
	cutoff := nanos(s.now().Add(-maxAge))
	res, err := s.db.ExecContext(ctx, `DELETE FROM runs WHERE status NOT IN (?, ?) AND id IN (
		SELECT id FROM (SELECT id, slot, row_number() OVER (PARTITION BY job ORDER BY slot DESC) AS rn FROM runs)
		WHERE rn > ? OR slot < ?)`, Pending, Running, keep, cutoff)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
