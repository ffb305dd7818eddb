package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/storetest"
)

var daemon = &Holder{Host: "test-host", PID: 4242, Version: "test"}

func openRW(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{Daemon: daemon})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	dir := t.TempDir()
	storetest.Run(t, func(t *testing.T, name string, now func() time.Time) storetest.Store {
		s := openRW(t, filepath.Join(dir, name+".db"))
		s.Now = now
		return s
	})
}

// sameBytes fails unless path still holds want, byte for byte (cmp).
func sameBytes(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s was modified (%d bytes before, %d after, err %v)", path, len(want), len(got), err)
	}
}

// foreignDB writes another program's SQLite database, with a users table,
// as it would be on disk (rollback journal, not WAL).
func foreignDB(t *testing.T, path string) []byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, _ := os.ReadFile(path)
	return b
}

// TestForeignDatabaseLeftUntouched: another program's SQLite file, or any
// other file, is refused by every kind of open, byte-identical, with the
// hint to point state.path elsewhere.
func TestForeignDatabaseLeftUntouched(t *testing.T) {
	dir := t.TempDir()
	sqliteFile := filepath.Join(dir, "app.db")
	sqliteBytes := foreignDB(t, sqliteFile)
	junk := filepath.Join(dir, "notes.txt")
	junkBytes := []byte("this is not a database, and it must survive\n" + strings.Repeat("x", 4096))
	os.WriteFile(junk, junkBytes, 0o600)
	for _, c := range []struct {
		path  string
		bytes []byte
	}{{sqliteFile, sqliteBytes}, {junk, junkBytes}} {
		for _, o := range []Options{{ReadOnly: true}, {Daemon: daemon}} {
			_, err := Open(context.Background(), c.path, o)
			if err == nil || pbirefresh.Hint(err) != hintElsewhere {
				t.Fatalf("%s (read-only %v): %v (hint %q)", c.path, o.ReadOnly, err, pbirefresh.Hint(err))
			}
			sameBytes(t, c.path, c.bytes)
			if _, err := os.Stat(c.path + "-wal"); err == nil {
				t.Fatalf("%s: a -wal file was created", c.path)
			}
		}
	}
}

// TestReadOnlyOpenWritesNothing: history and next never migrate or write,
// and work beside a running daemon.
func TestReadOnlyOpenWritesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	if _, err := Open(ctx, path, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "no state database") {
		t.Fatalf("read-only open of a missing file: %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("a read-only open created the file")
	}
	// A first-schema file: read-only reads it as it is, without migrating.
	legacy := legacyDB(t, path)
	ro, err := Open(ctx, path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	runs, err := ro.Runs(ctx, store.Query{})
	if err != nil || len(runs) != 1 || runs[0].RefreshID != "r-legacy" {
		t.Fatalf("legacy runs %+v %v", runs, err)
	}
	ro.Close()
	sameBytes(t, path, legacy)

	// Beside a running daemon.
	rw := openRW(t, path)
	if _, err := rw.Begin(ctx, "a", storetest.T0, pbirefresh.Scheduled); err != nil {
		t.Fatal(err)
	}
	ro, err = Open(ctx, path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if runs, err := ro.Runs(ctx, store.Query{}); err != nil || len(runs) != 2 {
		t.Fatalf("beside the daemon: %+v %v", runs, err)
	}
	if _, err := ro.Begin(ctx, "a", storetest.T0.Add(time.Hour), pbirefresh.Scheduled); err == nil {
		t.Fatal("a read-only store accepted a write")
	}
}

// legacyDB writes a database as the first version did: schema 1, no
// application id.
func legacyDB(t *testing.T, path string) []byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(migrations[0] + `; INSERT INTO runs (job, slot, kind, status, refresh_id) VALUES ('a', 1, 'scheduled', 'completed', 'r-legacy'); PRAGMA user_version = 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, _ := os.ReadFile(path)
	return b
}

// TestFirstSchemaMigrates: a state file of the first version is ours: it
// gets the application id and the new columns, and keeps its runs.
func TestFirstSchemaMigrates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	legacyDB(t, path)
	s := openRW(t, path)
	runs, err := s.Runs(context.Background(), store.Query{})
	if err != nil || len(runs) != 1 || runs[0].RefreshID != "r-legacy" {
		t.Fatalf("%+v %v", runs, err)
	}
	s.Close()
	if ours, v, err := identify(context.Background(), path); !ours || v != len(migrations) || err != nil {
		t.Fatalf("after migration: ours %v version %d %v", ours, v, err)
	}
}

func TestNewerDatabaseRefusedWithTheRightHint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openRW(t, path)
	s.conn.ExecContext(context.Background(), "PRAGMA user_version = 99")
	s.Close()
	before, _ := os.ReadFile(path)
	for _, o := range []Options{{ReadOnly: true}, {Daemon: daemon}} {
		_, err := Open(context.Background(), path, o)
		if err == nil || !strings.Contains(err.Error(), "newer than this pbirefresh supports") || pbirefresh.Hint(err) != hintNewer {
			t.Fatalf("newer database: %v (hint %q)", err, pbirefresh.Hint(err))
		}
		if strings.Contains(pbirefresh.Hint(err), "move") {
			t.Fatal("a valid state file must never be moved away")
		}
	}
	sameBytes(t, path, before)
}

func TestDamagedDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openRW(t, path)
	for i := 0; i < 200; i++ {
		s.Record(context.Background(), "a", storetest.T0.Add(time.Duration(i)*time.Hour), pbirefresh.Scheduled, pbirefresh.Missed, strings.Repeat("n", 200))
	}
	s.Close()
	b, _ := os.ReadFile(path)
	for i := 4096; i < len(b); i++ { // keep the header, wreck the pages
		b[i] = 0xA5
	}
	os.WriteFile(path, b, 0o600)
	// Opening reads only the first page; the damage shows on the first
	// read of the rest, with the fix.
	ro, err := Open(context.Background(), path, Options{ReadOnly: true})
	if err == nil {
		defer ro.Close()
		_, err = ro.Runs(context.Background(), store.Query{})
	}
	if err == nil || pbirefresh.Hint(err) != hintCorrupt {
		t.Fatalf("damaged: %v (hint %q)", err, pbirefresh.Hint(err))
	}
	sameBytes(t, path, b)
}

// TestSecondDaemonRefused: one daemon per state file; the second names the
// first.
func TestSecondDaemonRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	first := openRW(t, path)
	_, err := Open(context.Background(), path, Options{Daemon: &Holder{Host: "other", PID: 1, Version: "x"}})
	if err == nil || !strings.Contains(err.Error(), "in use by pbirefresh test (pid 4242 on host test-host") || !strings.Contains(pbirefresh.Hint(err), "stop that daemon first") {
		t.Fatalf("second daemon: %v (hint %q)", err, pbirefresh.Hint(err))
	}
	first.Close()
	second := openRW(t, path) // the file is free again
	second.Close()
}

// TestUnwritableState: a read-only file or directory is refused at open
// with the fix. Root writes anyway, so the case cannot be built as root;
// the daemon's end-to-end test covers it as an unprivileged user.
func TestUnwritableState(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes read-only files; cmd/pbirefresh's TestBrokenStateFailsStartup runs this as nobody")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	openRW(t, path).Close()
	os.Chmod(path, 0o400)
	_, err := Open(context.Background(), path, Options{Daemon: daemon})
	if err == nil || pbirefresh.Hint(err) != hintWritable {
		t.Fatalf("read-only file: %v (hint %q)", err, pbirefresh.Hint(err))
	}
	os.Chmod(path, 0o600)
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	_, err = Open(context.Background(), path, Options{Daemon: daemon})
	if err == nil || pbirefresh.Hint(err) != hintWritable {
		t.Fatalf("read-only directory: %v (hint %q)", err, pbirefresh.Hint(err))
	}
}

func TestDirectoryRefused(t *testing.T) {
	if _, err := Open(context.Background(), t.TempDir(), Options{Daemon: daemon}); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("directory: %v", err)
	}
}

// TestFailedWriteMakesPingFail: once a write fails, Ping says so (the
// daemon's /readyz), until a write succeeds again.
func TestFailedWriteMakesPingFail(t *testing.T) {
	ctx := context.Background()
	s := openRW(t, filepath.Join(t.TempDir(), "state.db"))
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	s.conn.ExecContext(context.Background(), `CREATE TRIGGER no_writes BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'disk full'); END`)
	if _, err := s.Begin(ctx, "a", storetest.T0, pbirefresh.Scheduled); err == nil {
		t.Fatal("the write succeeded")
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("ping after a failed write: %v", err)
	}
	s.conn.ExecContext(context.Background(), `DROP TRIGGER no_writes`)
	if _, err := s.Begin(ctx, "a", storetest.T0, pbirefresh.Scheduled); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping after a good write: %v", err)
	}
}

// TestPathWithURICharacters: '?', '#' and '%' in a path are not URI syntax.
func TestPathWithURICharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a?b#c%20d.db")
	openRW(t, path).Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}
