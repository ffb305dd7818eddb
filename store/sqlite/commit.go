package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"runtime"
	"time"

	"github.com/pbirefresh/pbirefresh/store"
)

// Group commit. A commit costs about 70 µs of CPU here whatever it holds
// (locks, WAL frames, syscalls), and a run writes three times. So writes go
// through one goroutine that commits them in batches: inserts (a run about
// to POST, a skipped or missed slot) commit at once, together with
// whatever updates are queued; the updates of a run in flight (its refresh
// id, its outcome) wait up to linger for company. At 100 runs a second
// that is about one commit per run instead of three. Every caller still
// returns only once its write is committed. A crash inside the linger loses only what no caller was told
// was saved: a refresh id not yet recorded leaves the run pending, and the
// next start finds its refresh in the history, as after any crash between
// a POST and its record.
const (
	linger    = 20 * time.Millisecond
	maxBatch  = 256
	maxYields = 2 // rounds with nothing new before an urgent batch commits
)

// op is one write: it runs inside the batch's transaction; a constraint
// violation fails only its own statement, not the batch.
type op struct {
	ctx    context.Context
	exec   func(ctx context.Context, c *sql.Conn) error
	urgent bool
	done   chan error
}

// submit queues a write and waits for its commit.
func (s *Store) submit(ctx context.Context, urgent bool, exec func(ctx context.Context, c *sql.Conn) error) error {
	o := op{ctx: ctx, exec: exec, urgent: urgent, done: make(chan error, 1)}
	s.opsMu.RLock()
	if s.opsClosed {
		s.opsMu.RUnlock()
		return errors.New("the state database is closed")
	}
	s.ops <- o
	s.opsMu.RUnlock()
	return <-o.done
}

// committer is the one goroutine that writes.
func (s *Store) committer() {
	defer close(s.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		first, ok := <-s.ops
		if !ok {
			return
		}
		batch := []op{first}
		urgent := first.urgent
		if !urgent {
			timer.Reset(linger)
		}
		yields := 0
	collect:
		for len(batch) < maxBatch {
			if urgent {
				// Take what is already queued, without waiting for a
				// timer. But first let the goroutines that can run now
				// reach the queue: a send to a waiting committer makes it
				// run next on the sender's processor, so in a burst of
				// runs fired for one slot each run would hand over its
				// write and see it committed alone, one commit (six file
				// locks, two writes per page) per run. A yield costs
				// nothing when nobody else can run.
				select {
				case o, ok := <-s.ops:
					if !ok {
						break collect
					}
					batch = append(batch, o)
					yields = 0
				default:
					if yields == maxYields {
						break collect
					}
					yields++
					runtime.Gosched()
				}
				continue
			}
			select {
			case o, ok := <-s.ops:
				if !ok {
					break collect
				}
				batch = append(batch, o)
				urgent = o.urgent
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		s.commit(batch)
	}
}

// commit runs a batch in one transaction on the writer's connection (its
// statements prepared on it once) and tells each caller.
func (s *Store) commit(batch []op) {
	s.commits.Add(1)
	ctx := context.Background()
	errs := make([]error, len(batch))
	_, err := s.conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	if err == nil {
		for i, o := range batch {
			if cerr := o.ctx.Err(); cerr != nil {
				errs[i] = cerr // the caller gave up before its write ran
				continue
			}
			errs[i] = o.exec(context.WithoutCancel(o.ctx), s.conn)
		}
		if _, err = s.conn.ExecContext(ctx, "COMMIT"); err != nil {
			s.conn.ExecContext(ctx, "ROLLBACK")
		}
	}
	if err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	// Health: a failed commit, or a statement that failed for another
	// reason than a taken slot or a caller that gave up.
	health := err
	for _, e := range errs {
		if health == nil && e != nil && !errors.Is(e, store.ErrDuplicate) && !errors.Is(e, context.Canceled) && !errors.Is(e, context.DeadlineExceeded) {
			health = e
		}
	}
	s.wrote(health)
	for i, o := range batch {
		o.done <- errs[i]
	}
}
