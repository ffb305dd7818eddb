package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
)

// SetChain says which jobs run after which; Finish applies it from then on.
func (s *Store) SetChain(c *store.Chain) { s.chain.Store(c) }

// querier is a connection or a pool.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// chainTx applies a chain on the writer's connection, inside the batch's
// transaction. The one writer serialises every check, so Lock is a no-op.
type chainTx struct {
	s   *Store
	c   *sql.Conn
	now time.Time
}

func (t chainTx) Lock(context.Context, string) error { return nil }

func (t chainTx) Waiting(ctx context.Context, job string, ups []string) ([]string, error) {
	return waiting(ctx, t.c, job, ups)
}

// waiting: the upstreams not completed since job's last run (see
// store.ChainTx). Completions are compared by their end, on the store's
// clock, with the instant that run was decided (queued); the one writer
// takes both readings at commit time, so their order is the commits'.
func waiting(ctx context.Context, q querier, job string, ups []string) ([]string, error) {
	var ref sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(queued) FROM runs WHERE job = ? AND (`+lastRunSQL+`)`, job).Scan(&ref); err != nil {
		return nil, err
	}
	var out []string
	for _, up := range ups {
		var one int
		err := q.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE job = ? AND status = 'completed' AND ended > ? LIMIT 1`, up, ref.Int64).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			out = append(out, up)
		case err != nil:
			return nil, err
		}
	}
	return out, nil
}

func (t chainTx) Queued(ctx context.Context, job string) (bool, error) {
	var one int
	err := t.c.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE job = ? AND status = 'triggered' LIMIT 1`, job).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// lastRunSQL selects the runs that count as a job's last run for its
// upstreams: waiting, in flight, or having started a refresh.
const lastRunSQL = `status IN ('triggered', 'pending', 'running', 'completed') OR refresh_id != ''`

func (t chainTx) Insert(ctx context.Context, job string, slot time.Time, status pbirefresh.Status, up store.Upstream, note string) (int64, bool, error) {
	var queued, ended int64
	if status == pbirefresh.Triggered {
		queued = nanos(t.now)
	} else {
		ended = nanos(t.now)
	}
	res, err := t.c.ExecContext(ctx, `INSERT INTO runs (job, slot, kind, status, queued, ended, note, upstream, upstream_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		job, nanos(slot), string(pbirefresh.After), string(status), queued, ended, note, up.Job, up.Run)
	if errors.Is(uniqueErr(err), store.ErrDuplicate) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	id, err := res.LastInsertId()
	return id, err == nil, err
}

// Waiting returns the upstreams in ups that have not completed since job's
// last run: a scheduled job with after checks it when its slot comes.
func (s *Store) Waiting(ctx context.Context, job string, ups []string) ([]string, error) {
	if s.version < 3 {
		return ups, nil
	}
	out, err := waiting(ctx, s.direct(), job, ups)
	return out, classify(s.path, err)
}

// Triggered returns the runs waiting to start after their upstreams,
// oldest first.
func (s *Store) Triggered(ctx context.Context) ([]store.Run, error) {
	if s.version < 3 {
		return nil, nil
	}
	rows, err := s.direct().QueryContext(ctx, `SELECT `+s.columns()+` FROM runs WHERE status = 'triggered' ORDER BY id LIMIT 500`)
	if err != nil {
		return nil, classify(s.path, err)
	}
	runs, err := scanRuns(rows)
	return runs, classify(s.path, err)
}

// Claim starts a triggered run: it becomes pending, about to POST.
// ErrDuplicate: it is not waiting any more (claimed or ended); ErrBusy:
// another run of the job is in flight, so it waits on.
func (s *Store) Claim(ctx context.Context, job string, slot time.Time) (int64, error) {
	if s.w == nil {
		return 0, errReadOnly
	}
	var id int64
	now := s.now()
	err := s.submit(ctx, true, func(ctx context.Context, c *sql.Conn) error {
		err := c.QueryRowContext(ctx, `UPDATE runs SET status = 'pending', posted = ?1, queued = ?1 WHERE job = ?2 AND slot = ?3 AND status = 'triggered' RETURNING id`,
			nanos(now), job, nanos(slot)).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrDuplicate
		}
		return uniqueErr(err) // the one-in-flight index: ErrBusy
	})
	return id, err
}
