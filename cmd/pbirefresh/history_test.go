package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

// TestHistoryCutsDetailOnARuneBoundary: `history` cuts a long error
// to 77 bytes (history.go), which splits a multi-byte character in two
// when one straddles the cut (dataset and workspace names in errors are
// often not ASCII): the text output is then not valid UTF-8.
func TestHistoryCutsDetailOnARuneBoundary(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "state.db")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, db, sqlite.Options{Daemon: &sqlite.Holder{Host: "test", PID: os.Getpid(), Version: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.Begin(ctx, "sales", time.Date(2026, 3, 1, 5, 0, 0, 0, time.UTC), pbirefresh.Scheduled)
	if err != nil {
		t.Fatal(err)
	}
	msg := strings.Repeat("x", 76) + "é, dataset « Données Équipe » was not found in the workspace"
	if err := st.Finish(ctx, id, store.Outcome{Status: pbirefresh.Error, Error: msg}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	cfg := writeConfig(t, dir, demoWith(t, dir, func(s string) string { return s }))
	r := runBinary(t, nil, "history", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	if !utf8.ValidString(r.stdout) {
		t.Fatalf("history printed invalid UTF-8: the detail was cut inside a character: %q", r.stdout[strings.Index(r.stdout, "xxxx"):])
	}
}
