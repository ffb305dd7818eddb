package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pbirefresh/pbirefresh"
)

// applicationID marks a pbirefresh database ("PBIR"), at offset 68 of the
// SQLite header (https://www.sqlite.org/fileformat.html#application_id).
const applicationID = 0x50424952

// Hints. A valid state file is never to be moved away.
const (
	hintElsewhere = "point state.path elsewhere; the file is left untouched"
	hintWritable  = "make the state file and its directory writable by the service user (the directory too: SQLite writes -wal and -shm files beside the database)"
	hintCorrupt   = "restore the file from a backup, or point state.path at a new file (the runs recorded in this one would be lost); it is left untouched"
	hintNewer     = "run the newer pbirefresh that wrote it; this one leaves it untouched"
)

// inspect reads the header of path without opening it as a database
// (SQLite would write its header when it opens it for writing: WAL mode,
// say). It returns false for no file, or an empty one: a new database.
// A file that is not SQLite, or carries another application id, is an
// error; the rest is for identify to decide.
func inspect(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, pbirefresh.WithHint(fmt.Errorf("state %s: %w", path, err), hintWritable)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	switch {
	case fi.IsDir():
		return false, pbirefresh.WithHint(fmt.Errorf("state path %s is a directory", path), "set state.path to a file, e.g. /var/lib/pbirefresh/state.db")
	case !fi.Mode().IsRegular():
		return false, pbirefresh.WithHint(fmt.Errorf("state path %s is not a regular file", path), hintElsewhere)
	case fi.Size() == 0:
		return false, nil
	}
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || !bytes.HasPrefix(h[:], []byte("SQLite format 3\x00")) {
		return false, pbirefresh.WithHint(fmt.Errorf("state %s is not an SQLite database: another program's file, or a damaged one", path), hintElsewhere)
	}
	if id := binary.BigEndian.Uint32(h[68:72]); id != 0 && id != applicationID {
		return false, foreign(path)
	}
	return true, nil
}

func foreign(path string) error {
	return pbirefresh.WithHint(fmt.Errorf("state %s is another program's SQLite database", path), hintElsewhere)
}

// identify reads, through SQLite and read-only (a WAL file holds changes
// the main file's header does not show yet), the application id, the
// schema version and, for a file without our id, whether its tables are
// those of pbirefresh's first schema or none at all.
func identify(ctx context.Context, path string) (ours bool, version int, err error) {
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return false, 0, err
	}
	defer db.Close()
	var id int64
	if err := db.QueryRowContext(ctx, `PRAGMA application_id`).Scan(&id); err != nil {
		return false, 0, classify(path, err)
	}
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return false, 0, classify(path, err)
	}
	switch id {
	case applicationID:
		return true, version, nil
	case 0:
	default:
		return false, version, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT type, name FROM sqlite_master`)
	if err != nil {
		return false, 0, classify(path, err)
	}
	defer rows.Close()
	known := map[string]bool{"table runs": true, "index runs_status": true, "index sqlite_autoindex_runs_1": true} // the first schema
	for rows.Next() {
		var typ, name string
		if err := rows.Scan(&typ, &name); err != nil {
			return false, 0, err
		}
		if !known[typ+" "+name] {
			return false, version, nil
		}
	}
	return true, version, rows.Err()
}

// classify turns SQLite's errors into ones that name the fault.
func classify(path string, err error) error {
	if err == nil {
		return nil
	}
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "malformed") || strings.Contains(msg, "not a database") || strings.Contains(msg, "corrupt"):
		return pbirefresh.WithHint(fmt.Errorf("state %s is damaged: %w", path, err), hintCorrupt)
	case strings.Contains(msg, "readonly") || strings.Contains(msg, "read-only") || strings.Contains(msg, "unable to open") ||
		strings.Contains(msg, "permission denied") || errors.Is(err, fs.ErrPermission):
		return pbirefresh.WithHint(fmt.Errorf("state %s cannot be written: %w", path, err), hintWritable)
	}
	return fmt.Errorf("state %s: %w", path, err)
}

// writable checks that the file (if it exists) and its directory accept
// writes by this user, before SQLite is asked to.
func writable(path string) error {
	dir := filepath.Dir(path)
	if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
		return pbirefresh.WithHint(fmt.Errorf("state directory %s is not writable: %w", dir, err), hintWritable)
	}
	if err := syscall.Access(path, 2); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return pbirefresh.WithHint(fmt.Errorf("state %s is not writable: %w", path, err), hintWritable)
	}
	return nil
}

// dsn is the modernc.org/sqlite data source for path. The path is written
// as a file: URI, so '?', '#' and '%' in it are escaped.
func dsn(path string, readOnly bool) string {
	u := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path) + "?_pragma=busy_timeout(10000)"
	if readOnly {
		return u + "&mode=ro&_pragma=query_only(1)"
	}
	// WAL: readers never block the writer. NORMAL: a commit is not synced
	// (a power cut may lose the last commits, never consistency); the WAL is
	// checkpointed every 4,000 pages rather than 1,000, so the pages a busy
	// daemon rewrites (the newest rows, their index pages) are copied once
	// per checkpoint, not four times.
	return u + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(4000)"
}
