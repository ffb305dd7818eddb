package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/pbirefresh/pbirefresh/store"
)

// membership is this process's place in the replica set: a row in
// pbirefresh_replicas whose expires_at, computed by the database
// (now() + ttl), is the lease. The process trusts its lease only until
// the time it sent the last successful renewal plus the TTL less a margin,
// measured on its own monotonic clock and on its wall clock (whichever
// runs out first): the database cannot have expired the lease before then,
// because it computed the expiry after receiving that renewal. A pause, a
// partition or a database outage longer than that fences the replica
// before another one can adopt its runs; it then joins again under a new
// id.
type membership struct {
	s   *Store
	rep Replica
	ttl time.Duration

	mu         sync.Mutex
	cur        string
	held       bool
	trustMono  time.Time // time.Now() at the last renewal sent, with its monotonic reading
	trustWall  time.Time // the same, wall clock only
	lostLogged bool
}

func newMembership(s *Store, r Replica) *membership {
	return &membership{s: s, rep: r, ttl: s.opts.LeaseTTL}
}

// margin is what the trust window keeps back from the lease, for the
// moments between a check and the request it allows.
func (m *membership) margin() time.Duration { return m.ttl / 5 }

func (m *membership) id() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

// gate: ErrFenced unless the lease is held and the trust window is open.
func (m *membership) gate() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.held {
		return store.ErrFenced
	}
	window := m.ttl - m.margin()
	now := time.Now()
	if now.Sub(m.trustMono) >= window || now.Round(0).Sub(m.trustWall) >= window {
		return store.ErrFenced
	}
	return nil
}

func newID(host string, pid int) string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, pid, hex.EncodeToString(b))
}

// join registers a new member with a fresh lease.
func (m *membership) join(ctx context.Context) error {
	id := newID(m.rep.Host, m.rep.PID)
	sent := time.Now()
	_, err := m.s.pool.Exec(ctx, `INSERT INTO pbirefresh_replicas (id, host, pid, version, expires_at)
		VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond')`, id, m.rep.Host, m.rep.PID, m.rep.Version, m.ttl.Milliseconds())
	if err != nil {
		return fmt.Errorf("join the replica set: %w", err)
	}
	// Forget members dead for a day.
	m.s.pool.Exec(ctx, `DELETE FROM pbirefresh_replicas WHERE expires_at < now() - interval '1 day'`)
	m.mu.Lock()
	m.cur, m.held, m.trustMono, m.trustWall, m.lostLogged = id, true, sent, sent.Round(0), false
	m.mu.Unlock()
	m.s.opts.Logger.Info("joined the replica set", "replica", id, "lease_ttl", m.ttl)
	return nil
}

// renew extends the lease on the database's clock, only if it is still
// valid there: a lease that expired is never revived.
func (m *membership) renew(ctx context.Context) (bool, error) {
	id := m.id()
	sent := time.Now()
	tag, err := m.s.pool.Exec(ctx, `UPDATE pbirefresh_replicas SET heartbeat = now(), expires_at = now() + $2 * interval '1 millisecond'
		WHERE id = $1 AND expires_at > now()`, id, m.ttl.Milliseconds())
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	m.mu.Lock()
	if m.cur == id {
		m.trustMono, m.trustWall = sent, sent.Round(0)
	}
	m.mu.Unlock()
	return true, nil
}

// lose fences the member and tells the daemon.
func (m *membership) lose(why string) {
	m.mu.Lock()
	was := m.held
	m.held = false
	id := m.cur
	m.mu.Unlock()
	if was {
		m.s.opts.Logger.Error("LEASE LOST: this replica stops claiming and posting; its runs in flight go to the others", "replica", id, "why", why,
			"hint", "check that this host reaches the state database; the replica joins again on its own once it does")
		if m.s.opts.OnLeaseLost != nil {
			m.s.opts.OnLeaseLost()
		}
	}
}

// run renews every third of the TTL; when the lease is lost it joins again
// as a new member as soon as the database answers.
func (m *membership) run() {
	defer m.s.wg.Done()
	every := m.ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.s.closed:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		m.mu.Lock()
		held := m.held
		m.mu.Unlock()
		if held {
			ok, err := m.renew(ctx)
			switch {
			case err == nil && !ok:
				m.lose("the lease expired on the database's clock before it was renewed")
			case err != nil && m.gate() != nil:
				m.lose("the lease could not be renewed within its trust window: " + err.Error())
			case err != nil:
				m.s.opts.Logger.Warn("lease renewal failed; retrying", "replica", m.id(), "error", err)
			}
			// A pause can outlast the window without any renewal failing.
			if m.gate() != nil {
				m.lose("the trust window passed (the process was paused or the renewals were late)")
			}
		}
		m.mu.Lock()
		held = m.held
		m.mu.Unlock()
		if !held {
			if err := m.join(ctx); err == nil {
				if m.s.opts.OnRejoin != nil {
					m.s.opts.OnRejoin()
				}
			} else if !m.lostLogged {
				m.lostLogged = true
				m.s.opts.Logger.Warn("cannot rejoin the replica set yet", "error", err)
			}
		}
		cancel()
	}
}

// leave ends the lease now, so the others adopt this process's runs at
// once instead of after the TTL.
func (m *membership) leave(ctx context.Context) {
	m.mu.Lock()
	id, held := m.cur, m.held
	m.held = false
	m.mu.Unlock()
	if held {
		m.s.pool.Exec(ctx, `UPDATE pbirefresh_replicas SET expires_at = now() WHERE id = $1`, id)
	}
}
