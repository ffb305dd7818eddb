package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/internal/pgurl"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/postgres/pgtest"
	"github.com/pbirefresh/pbirefresh/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

var seq struct {
	sync.Mutex
	n int
}

func replica() *Replica {
	seq.Lock()
	defer seq.Unlock()
	seq.n++
	return &Replica{Host: "test", PID: seq.n, Version: "test"}
}

// contract runs the store contract on databases that url makes.
func contract(t *testing.T, url func(t *testing.T) string) {
	dbs := map[string]string{}
	storetest.Run(t, func(t *testing.T, name string, now func() time.Time) storetest.Store {
		if dbs[name] == "" {
			dbs[name] = url(t)
		}
		s, err := Open(context.Background(), dbs[name], Options{Replica: replica()})
		if err != nil {
			t.Fatal(err)
		}
		s.Now = now
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestContract(t *testing.T) {
	srv := pgtest.Shared(t)
	contract(t, func(t *testing.T) string { return srv.NewDatabase(t) })
}

// TestContractThroughPgBouncer: the same contract through PgBouncer in
// transaction mode: no session state is relied on.
func TestContractThroughPgBouncer(t *testing.T) {
	srv := pgtest.Shared(t)
	b := pgtest.StartBouncer(t, srv)
	defer b.Stop()
	contract(t, func(t *testing.T) string { return b.URL(srv.NewDatabase(t)) })
}

func open(t *testing.T, url string, o Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// expire ends a replica's lease on the database's clock, as if it had
// stopped renewing.
func expire(t *testing.T, s *Store, id string) {
	t.Helper()
	if _, err := s.pool.Exec(context.Background(), `UPDATE pbirefresh_replicas SET expires_at = now() - interval '1 second' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
}

// TestTakeoverAndFencing: a replica whose lease expired on the database's
// clock can no longer claim, post or record; another adopts its runs in
// flight, once; the first joins again as a new member.
func TestTakeoverAndFencing(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()
	lost, rejoined := make(chan struct{}, 1), make(chan struct{}, 1)
	a := open(t, url, Options{Replica: replica(), LeaseTTL: 3 * time.Second,
		OnLeaseLost: func() { lost <- struct{}{} }, OnRejoin: func() { rejoined <- struct{}{} }})
	b := open(t, url, Options{Replica: replica(), LeaseTTL: 3 * time.Second})
	t0 := storetest.T0
	id, err := a.Begin(ctx, "sales", t0, pbirefresh.Scheduled)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetRefresh(ctx, id, "r-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Begin(ctx, "sales", t0, pbirefresh.Scheduled); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("the second replica's Begin of the same slot: %v", err)
	}
	if got, _ := b.Adopt(ctx); len(got) != 0 {
		t.Fatalf("adopted a live replica's run: %+v", got)
	}
	first := a.Self()
	expire(t, a, first)
	// A's local trust window is still open, but the database refuses.
	if _, err := a.Begin(ctx, "inventory", t0, pbirefresh.Scheduled); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("Begin after the lease expired: %v", err)
	}
	got, err := b.Adopt(ctx)
	// Adopt names the replica each run was taken from.
	if err != nil || len(got) != 1 || got[0].ID != id || got[0].Owner != first || got[0].RefreshID != "r-1" {
		t.Fatalf("adopt: %+v %v", got, err)
	}
	if runs, _ := b.Runs(ctx, store.Query{Job: "sales"}); len(runs) != 1 || runs[0].Owner != b.Self() {
		t.Fatalf("owner after adoption: %+v", runs)
	}
	if again, _ := b.Adopt(ctx); len(again) != 0 {
		t.Fatalf("adopted twice: %+v", again)
	}
	if err := a.Finish(ctx, id, store.Outcome{Status: pbirefresh.Completed}); !errors.Is(err, store.ErrNotOwner) && !errors.Is(err, store.ErrFenced) {
		t.Fatalf("the old owner recorded the outcome: %v", err)
	}
	if err := b.Finish(ctx, id, store.Outcome{Status: pbirefresh.Completed}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(20 * time.Second):
		t.Fatal("A was not told it lost its lease")
	}
	select {
	case <-rejoined:
	case <-time.After(20 * time.Second):
		t.Fatal("A did not rejoin")
	}
	if a.Self() == first || a.Gate() != nil {
		t.Fatalf("after rejoining: id %s (was %s), gate %v", a.Self(), first, a.Gate())
	}
	if _, err := a.Begin(ctx, "inventory", t0, pbirefresh.Scheduled); err != nil {
		t.Fatalf("Begin after rejoining: %v", err)
	}
	reps, err := b.Replicas(ctx)
	if err != nil || len(reps) != 3 {
		t.Fatalf("replicas %+v %v, want A's old and new ids and B", reps, err)
	}
	alive := 0
	for _, r := range reps {
		if r.Alive {
			alive++
		}
	}
	if alive != 2 {
		t.Fatalf("%d alive, want 2: %+v", alive, reps)
	}
}

// TestTrustWindowFencesBeforeTheDatabaseWould: without renewals, the
// replica fences itself on its own clock before its lease can expire on
// the database's.
func TestTrustWindowFencesBeforeTheDatabaseWould(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	a := open(t, url, Options{Replica: replica(), LeaseTTL: 10 * time.Second})
	if a.Gate() != nil {
		t.Fatal("fenced at once")
	}
	m := a.member
	m.mu.Lock()
	m.trustMono = m.trustMono.Add(-(m.ttl - m.margin())) // as if the last renewal was that long ago
	m.mu.Unlock()
	if !errors.Is(a.Gate(), store.ErrFenced) {
		t.Fatal("the trust window passed but the gate is open")
	}
	var expires time.Time
	a.pool.QueryRow(context.Background(), `SELECT expires_at FROM pbirefresh_replicas WHERE id = $1`, a.Self()).Scan(&expires)
	if time.Until(expires) < m.margin() {
		t.Fatalf("the database's lease ends in %s: the window must close at least %s earlier", time.Until(expires), m.margin())
	}
	if err := a.Ping(context.Background()); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("ping (readyz) while fenced: %v", err)
	}
}

// TestCloseHandsRunsOverAtOnce: a replica that stops cleanly ends its
// lease, so another adopts its runs without waiting for the TTL.
func TestCloseHandsRunsOverAtOnce(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()
	a, err := Open(ctx, url, Options{Replica: replica(), LeaseTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	a.Begin(ctx, "sales", storetest.T0, pbirefresh.Scheduled)
	a.Close()
	b := open(t, url, Options{Replica: replica(), LeaseTTL: time.Hour})
	if got, err := b.Adopt(ctx); err != nil || len(got) != 1 {
		t.Fatalf("adopt after a clean stop: %+v %v", got, err)
	}
}

// TestFailedWriteMakesPingFail: once a run's write fails for a reason of
// the database's own, Ping says so (the daemon's /readyz), until a write
// succeeds again; the answers a replica expects (a slot taken) do not.
func TestFailedWriteMakesPingFail(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()
	s := open(t, url, Options{Replica: replica(), LeaseTTL: time.Hour})
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Begin(ctx, "a", storetest.T0, pbirefresh.Scheduled); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Begin(ctx, "a", storetest.T0, pbirefresh.Scheduled); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("the same slot again: %v, want ErrDuplicate", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping after a taken slot: %v", err)
	}
	// A write that never reached the server (here its caller gave up; a
	// lost connection is alike) does not make the replica not ready.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Record(gone, "c", storetest.T0, pbirefresh.Scheduled, pbirefresh.Missed, ""); err == nil {
		t.Fatal("a write with a cancelled context succeeded")
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping after a write that never reached the server: %v", err)
	}
	for _, q := range []string{
		`CREATE FUNCTION no_writes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$`,
		`CREATE TRIGGER no_writes BEFORE INSERT ON pbirefresh_runs FOR EACH ROW EXECUTE FUNCTION no_writes()`,
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Record(ctx, "b", storetest.T0, pbirefresh.Scheduled, pbirefresh.Missed, ""); err == nil {
		t.Fatal("the write succeeded")
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("ping after a failed write: %v", err)
	}
	if _, err := s.pool.Exec(ctx, `DROP TRIGGER no_writes ON pbirefresh_runs`); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, "b", storetest.T0, pbirefresh.Scheduled, pbirefresh.Missed, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping after a good write: %v", err)
	}
}

// TestConcurrentAdoptersSplitTheRuns: replicas adopting at once take each
// run once (SKIP LOCKED).
func TestConcurrentAdoptersSplitTheRuns(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()
	dead, err := Open(ctx, url, Options{Replica: replica(), LeaseTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := dead.Begin(ctx, "job-"+string(rune('a'+i%26))+string(rune('a'+i/26)), storetest.T0, pbirefresh.Scheduled); err != nil {
			t.Fatal(err)
		}
	}
	dead.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int64]int{}
	for k := 0; k < 3; k++ {
		s := open(t, url, Options{Replica: replica(), LeaseTTL: time.Hour})
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.Adopt(ctx)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			for _, r := range got {
				seen[r.ID]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) != 100 {
		t.Fatalf("%d runs adopted, want 100", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("run %d adopted %d times", id, n)
		}
	}
}

// TestMigrateOnceWhenReplicasStartTogether: three replicas opening an empty
// database at once migrate it once.
func TestMigrateOnceWhenReplicasStartTogether(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	var wg sync.WaitGroup
	for k := 0; k < 3; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), url, Options{Replica: replica()})
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	ro := open(t, url, Options{ReadOnly: true})
	if v, err := ro.version(context.Background()); v != len(migrations) || err != nil {
		t.Fatalf("version %d %v", v, err)
	}
}

// TestPasswordHookAndRedaction: the password comes from the hook at each
// new connection, and never appears in an error.
func TestPasswordHookAndRedaction(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.NewDatabase(t)
	calls := 0
	s := open(t, url, Options{ReadOnly: false, Password: func(context.Context) (string, error) { calls++; return "from-the-hook", nil }})
	if calls == 0 {
		t.Fatal("the password hook was not called")
	}
	s.Close()
	bad := "postgres://pbirefresh:s3cr3t-pw@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"
	_, err := Open(context.Background(), bad, Options{})
	if err == nil || contains(err.Error(), "s3cr3t-pw") || pbirefresh.Hint(err) == "" {
		t.Fatalf("error %v (hint %q)", err, pbirefresh.Hint(err))
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestLeastPrivilegesAfterTheFirstStart: once a role with CREATE made the
// tables, a role granted only the README's least privileges (use of the
// four tables and the sequence, no CREATE on the schema) starts, records
// and ends a run, and records a pause.
func TestLeastPrivilegesAfterTheFirstStart(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.NewDatabase(t)
	open(t, url, Options{Replica: replica()}).Close()

	ctx := context.Background()
	role := fmt.Sprintf("least_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON pbirefresh_schema, pbirefresh_replicas, pbirefresh_runs, pbirefresh_pauses TO " + role,
		"GRANT USAGE ON SEQUENCE pbirefresh_runs_id_seq TO " + role,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, "DROP OWNED BY "+role)
		c.Exec(ctx, "DROP ROLE "+role)
	})
	limited := strings.Replace(url, "postgres://pbirefresh@", "postgres://"+role+"@", 1)
	s, err := Open(ctx, limited, Options{Replica: replica()})
	if err != nil {
		t.Fatalf("a role with the least privileges could not start: %v (hint %q)", err, pbirefresh.Hint(err))
	}
	defer s.Close()
	slot := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	id, err := s.Begin(ctx, "sales", slot, pbirefresh.Scheduled)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, id, store.Outcome{Status: pbirefresh.Completed}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPaused(ctx, "sales", true, slot); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Pauses(ctx); err != nil || len(p) != 1 {
		t.Fatalf("pauses: %v %v", p, err)
	}
	if _, err := s.LastSlots(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestTooManyConnectionsKeepsReady: a write refused because the server
// had no connection to spare at that moment (53300, here a role's
// CONNECTION LIMIT reached while the pool opens a second connection) does
// not make the replica not ready: the next write usually gets one, and a
// replica held not ready until its next run, hours later for daily jobs,
// would hold up node drains for nothing.
func TestTooManyConnectionsKeepsReady(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()
	open(t, url, Options{Replica: replica()}).Close()
	role := fmt.Sprintf("limited_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN CONNECTION LIMIT 1",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON pbirefresh_schema, pbirefresh_replicas, pbirefresh_runs, pbirefresh_pauses TO " + role,
		"GRANT USAGE ON SEQUENCE pbirefresh_runs_id_seq TO " + role,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, "DROP OWNED BY "+role)
		c.Exec(ctx, "DROP ROLE "+role)
	})
	s := open(t, strings.Replace(url, "postgres://pbirefresh@", "postgres://"+role+"@", 1), Options{Replica: replica(), LeaseTTL: time.Hour})
	// Hold the role's one connection: the write needs a second one.
	held, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Record(ctx, "a", storetest.T0, pbirefresh.Scheduled, pbirefresh.Missed, "")
	held.Release()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" {
		t.Fatalf("the write with no connection to spare: %v, want SQLSTATE 53300", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping (readyz) after too many connections at one moment: %v", err)
	}
	if err := s.Record(ctx, "a", storetest.T0, pbirefresh.Scheduled, pbirefresh.Missed, ""); err != nil {
		t.Fatalf("the write once a connection was free: %v", err)
	}
}

// TestResourceErrorsClassified: of SQLSTATE class 53, what passes by
// itself (resources short at a moment, out of memory, too many
// connections) leaves the replica ready; what lasts until someone acts (a
// full disk, a configuration limit) makes Ping fail until a write
// succeeds, like the other lasting refusals. The server raises each code
// from a trigger, so it comes back through pgx as it would for real.
func TestResourceErrorsClassified(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()
	s := open(t, url, Options{Replica: replica(), LeaseTTL: time.Hour})
	for i, c := range []struct {
		code    string
		lasting bool
	}{
		{"53000", false}, // insufficient_resources
		{"53200", false}, // out_of_memory
		{"53300", false}, // too_many_connections
		{"53100", true},  // disk_full
		{"53400", true},  // configuration_limit_exceeded
	} {
		for _, q := range []string{
			`CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = '` + c.code + `'; END $$`,
			`CREATE OR REPLACE TRIGGER refuse BEFORE INSERT ON pbirefresh_runs FOR EACH ROW EXECUTE FUNCTION refuse()`,
		} {
			if _, err := s.pool.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		slot := storetest.T0.Add(time.Duration(i) * time.Hour)
		err := s.Record(ctx, "a", slot, pbirefresh.Scheduled, pbirefresh.Missed, "")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != c.code {
			t.Fatalf("%s: the write: %v", c.code, err)
		}
		if err := s.Ping(ctx); (err != nil) != c.lasting {
			t.Errorf("%s: ping (readyz) after the refused write: %v, want failing %v", c.code, err, c.lasting)
		}
		if _, err := s.pool.Exec(ctx, `DROP TRIGGER refuse ON pbirefresh_runs`); err != nil {
			t.Fatal(err)
		}
		if err := s.Record(ctx, "a", slot, pbirefresh.Scheduled, pbirefresh.Missed, ""); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("%s: ping after a good write: %v", c.code, err)
		}
	}
}

// TestMigrateUnderStricterDefaultIsolation: a server whose
// default_transaction_isolation is repeatable read or serializable still
// migrates once when replicas start together. The migration reads the
// schema version after taking the lock, so it must see what the lock's
// previous holder committed: at a stricter default its snapshot would be
// older than that commit, and it would migrate again (relation already
// exists) or fail to serialize. The test holds the migration lock itself
// until all four migrations wait for it, so they all overlap.
func TestMigrateUnderStricterDefaultIsolation(t *testing.T) {
	for _, level := range []string{"repeatable read", "serializable"} {
		t.Run(strings.ReplaceAll(level, " ", "_"), func(t *testing.T) {
			url := pgtest.Shared(t).NewDatabase(t)
			ctx := context.Background()
			admin, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close(ctx)
			if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s SET default_transaction_isolation = '%s'`,
				pgx.Identifier{admin.Config().Database}.Sanitize(), level)); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
				t.Fatal(err)
			}
			const n = 4
			errs := make(chan error, n)
			for range n {
				go func() {
					s, err := Open(ctx, url, Options{})
					if err == nil {
						var iso string
						if err = s.pool.QueryRow(ctx, `SHOW default_transaction_isolation`).Scan(&iso); err == nil && iso != level {
							err = fmt.Errorf("the database's default isolation is %q, want %q", iso, level)
						}
						s.Close()
					}
					errs <- err
				}()
			}
			// Wait (bounded) until all four wait for the lock.
			deadline := time.Now().Add(30 * time.Second)
			for waiting := 0; waiting < n; {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d migrations wait for the lock after 30s", waiting, n)
				}
				if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := admin.Exec(ctx, `SELECT pg_advisory_unlock($1)`, migrationLock); err != nil {
				t.Fatal(err)
			}
			for range n {
				if err := <-errs; err != nil {
					t.Errorf("open: %v", err)
				}
			}
			var v, rows int
			if err := admin.QueryRow(ctx, `SELECT max(version), count(*) FROM pbirefresh_schema`).Scan(&v, &rows); err != nil || v != len(migrations) || rows != 1 {
				t.Fatalf("schema version %d in %d rows (%v), want %d in 1", v, rows, err, len(migrations))
			}
		})
	}
}

// TestPasswordInQueryNotEchoed: a password given as a query parameter
// never appears in Open's error either.
func TestPasswordInQueryNotEchoed(t *testing.T) {
	for _, bad := range []string{
		"postgres://pbirefresh@127.0.0.1:1/x?sslmode=disable&connect_timeout=2&password=s3cr3t-pw",
		"postgres://pbirefresh@127.0.0.1:1/x?sslmode=disable&connect_timeout=2&pass%77ord=s3cr3t-pw",
		"postgres://pbirefresh:s3cr3t%2Dpw@127.0.0.1:1/x?sslmode=disable&connect_timeout=2",
	} {
		_, err := Open(context.Background(), bad, Options{})
		switch {
		case err == nil:
			t.Errorf("%s: opened", pgurl.Redact(bad))
		case strings.Contains(err.Error(), "s3cr3t"):
			t.Errorf("%s: the error quotes the password", pgurl.Redact(bad))
		case pbirefresh.Hint(err) == "":
			t.Errorf("%s: error %v without a hint", pgurl.Redact(bad), err)
		}
	}
}
