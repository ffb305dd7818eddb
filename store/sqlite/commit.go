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
// id, its outcome) wait up to linger for company. Every caller but
// SetRefreshLater's returns only once its write is committed.
//
// The linger is 100 ms. At 20 ms the updates of 100 runs a second, spread
// over the poll intervals, still made about 5 commits a second, each one
// rewriting the pages the others had just written (in Daemon10k, 2.3
// pwrite and 0.5 fcntl calls per run); at 100 ms, 1.1-1.2 and 0.2-0.3. A run
// waits up to 100 ms for its outcome, which no one sees against refreshes
// that take seconds to hours, and for its refresh id (SetRefreshLater)
// only, at most, until a commit in progress ends, never a linger, so its
// polls are not delayed. A crash
// inside the linger loses only what no caller was told was saved: a refresh
// id not yet recorded leaves the run pending, and the next start finds its
// refresh in the history, as after any crash between a POST and its
// record; an outcome not yet recorded leaves the run running, and the next
// start reattaches to its refresh and records the outcome then.
const (
	linger    = 100 * time.Millisecond
	maxBatch  = 256
	maxYields = 2 // rounds with nothing new before an urgent batch commits
)

// op is one write: it runs inside the batch's transaction; a constraint
// violation fails only its own statement, not the batch.
type op struct {
	ctx    context.Context
	exec   func(ctx context.Context, c *sql.Conn) error
	urgent bool
	done   chan error  // the caller waiting for the commit, or nil...
	then   func(error) // ...a caller that did not wait (nil: none)
}

// submit queues a write and waits for its commit.
func (s *Store) submit(ctx context.Context, urgent bool, exec func(ctx context.Context, c *sql.Conn) error) error {
	o := op{ctx: ctx, exec: exec, urgent: urgent, done: make(chan error, 1)}
	if err := s.queue(o); err != nil {
		return err
	}
	return <-o.done
}

// submitLater queues a write that lingers and returns once the committer
// has taken it (at most the length of a commit in progress, never a
// linger); then, when not nil, gets the result of its commit, in the
// committer's goroutine.
// Writes are committed in the order they were queued, so a later write of
// the same caller (submitted or not) commits with it or after it.
func (s *Store) submitLater(ctx context.Context, exec func(ctx context.Context, c *sql.Conn) error, then func(error)) {
	if err := s.queue(op{ctx: ctx, exec: exec, then: then}); err != nil && then != nil {
		then(err)
	}
}

var errClosed = errors.New("the state database is closed")

func (s *Store) queue(o op) error {
	s.opsMu.RLock()
	defer s.opsMu.RUnlock()
	if s.opsClosed {
		return errClosed
	}
	s.ops <- o
	return nil
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
	_, err := s.txBegin.ExecContext(ctx)
	if err == nil {
		for i, o := range batch {
			if cerr := o.ctx.Err(); cerr != nil {
				errs[i] = cerr // the caller gave up before its write ran
				continue
			}
			errs[i] = o.exec(context.WithoutCancel(o.ctx), s.conn)
		}
		if _, err = s.txCommit.ExecContext(ctx); err != nil {
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
		switch {
		case o.done != nil:
			o.done <- errs[i]
		case o.then != nil:
			o.then(errs[i])
		}
	}
}
