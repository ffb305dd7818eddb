package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
)

// SetChain says which jobs run after which; Finish applies it from then on.
func (s *Store) SetChain(c *store.Chain) { s.chain.Store(c) }

// queryRower is a pool or a transaction.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// chainTx applies a chain inside the transaction that records an
// upstream's end. Replicas finishing two upstreams of one job at once
// would each miss the other's uncommitted end (and neither trigger it):
// Lock takes a transaction-scoped advisory lock per dependent job, so the
// second one waits, and, reading committed data statement by statement,
// sees the first.
type chainTx struct {
	tx  pgx.Tx
	now time.Time
}

func (t chainTx) Lock(ctx context.Context, job string) error {
	_, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('pbirefresh chain'), hashtext($1))`, job)
	return err
}

func (t chainTx) Queued(ctx context.Context, job string) (bool, error) {
	var queued bool
	err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pbirefresh_runs WHERE job = $1 AND status = 'triggered')`, job).Scan(&queued)
	return queued, err
}

func (t chainTx) Waiting(ctx context.Context, job string, ups []string) ([]string, error) {
	return waiting(ctx, t.tx, job, ups)
}

// waiting: the upstreams not completed since job's last run (see
// store.ChainTx), both instants on the database's clock.
func waiting(ctx context.Context, q queryRower, job string, ups []string) ([]string, error) {
	var ref *int64
	if err := q.QueryRow(ctx, `SELECT max(queued) FROM pbirefresh_runs WHERE job = $1 AND (status IN ('triggered', 'pending', 'running', 'completed') OR refresh_id <> '')`, job).Scan(&ref); err != nil {
		return nil, err
	}
	var since int64
	if ref != nil {
		since = *ref
	}
	var out []string
	for _, up := range ups {
		var one int
		err := q.QueryRow(ctx, `SELECT 1 FROM pbirefresh_runs WHERE job = $1 AND status = 'completed' AND done > $2 LIMIT 1`, up, since).Scan(&one)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			out = append(out, up)
		case err != nil:
			return nil, err
		}
	}
	return out, nil
}

// Insert never raises a unique violation (it would abort the whole
// transaction): a taken slot is ON CONFLICT DO NOTHING.
func (t chainTx) Insert(ctx context.Context, job string, slot time.Time, status pbirefresh.Status, up store.Upstream, note string) (int64, bool, error) {
	var id int64
	err := t.tx.QueryRow(ctx, `INSERT INTO pbirefresh_runs (job, slot, kind, status, queued, ended, note, upstream, upstream_run, owner)
		VALUES ($1, $2, 'after', $3, CASE WHEN $3 = 'triggered' THEN `+dbNow+` ELSE 0 END, CASE WHEN $3 = 'triggered' THEN 0 ELSE $4::bigint END, $5, $6, $7, '')
		ON CONFLICT ON CONSTRAINT pbirefresh_runs_slot DO NOTHING RETURNING id`,
		job, nanos(slot), string(status), nanos(t.now), note, up.Job, up.Run).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return id, err == nil, err
}

// Waiting returns the upstreams in ups that have not completed since job's
// last run: a scheduled job with after checks it when its slot comes.
func (s *Store) Waiting(ctx context.Context, job string, ups []string) ([]string, error) {
	return waiting(ctx, s.pool, job, ups)
}

// Triggered returns the runs waiting to start after their upstreams,
// oldest first; any replica may claim them.
func (s *Store) Triggered(ctx context.Context) ([]store.Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM pbirefresh_runs WHERE status = 'triggered' ORDER BY id LIMIT 500`)
	if err != nil {
		return nil, err
	}
	return scanRuns(rows)
}

// Claim starts a triggered run for this replica: it becomes pending, about
// to POST. ErrDuplicate: it is not waiting any more (another replica
// claimed it, or it ended); ErrBusy: another run of the job is in flight;
// ErrFenced: this replica may not claim now.
func (s *Store) Claim(ctx context.Context, job string, slot time.Time) (int64, error) {
	if err := s.Gate(); err != nil {
		return 0, err
	}
	var id int64
	err := s.pool.QueryRow(ctx, `UPDATE pbirefresh_runs SET status = 'pending', posted = @posted, queued = `+dbNow+`, owner = @owner
		WHERE job = @job AND slot = @slot AND status = 'triggered' AND `+leaseHeld+` RETURNING id`,
		pgx.NamedArgs{"posted": nanos(s.now()), "owner": s.self(), "job": job, "slot": nanos(slot)}).Scan(&id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if err := s.Gate(); err != nil {
			return 0, err
		}
		return 0, store.ErrDuplicate
	case err != nil:
		return 0, s.wrote(uniqueErr(err))
	}
	return id, s.wrote(nil)
}
