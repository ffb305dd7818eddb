package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRunLifecycleAndUniqueness(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	id, err := s.Begin(ctx, "sales", t0, Scheduled)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Begin(ctx, "sales", t0, CatchUp); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second Begin of a slot: %v", err)
	}
	if err := s.Record(ctx, "sales", t0, Scheduled, Skipped, "overlap"); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("Record of a taken slot: %v", err)
	}
	inflight, _ := s.InFlight(ctx)
	if len(inflight) != 1 || inflight[0].Status != Pending {
		t.Fatalf("in flight: %+v", inflight)
	}
	s.SetRefresh(ctx, id, "r-1")
	s.Finish(ctx, id, "completed", "", 7, "", "", "")
	s.Record(ctx, "sales", t0.Add(time.Hour), Scheduled, Missed, "daemon down")
	last, ok, _ := s.LastSlot(ctx, "sales")
	if !ok || !last.Equal(t0.Add(time.Hour)) {
		t.Fatalf("last slot %s %v", last, ok)
	}
	// A manual run does not move the schedule's last slot.
	s.Begin(ctx, "sales", t0.Add(5*time.Hour), Manual)
	if last, _, _ := s.LastSlot(ctx, "sales"); !last.Equal(t0.Add(time.Hour)) {
		t.Fatalf("manual run moved the last slot to %s", last)
	}
	// Reopen: everything survives.
	s.Close()
	s = open(t, path)
	runs, _ := s.Runs(ctx, "sales", 0)
	if len(runs) != 3 || runs[2].RefreshID != "r-1" || runs[2].Status != "completed" || runs[2].Polls != 7 || !runs[2].Slot.Equal(t0) {
		t.Fatalf("after reopen: %+v", runs)
	}
	if _, err := s.Begin(ctx, "sales", t0, Scheduled); !errors.Is(err, ErrDuplicate) {
		t.Fatal("uniqueness lost across reopen")
	}
}

func TestConcurrentBeginsTakeASlotOnce(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Begin(context.Background(), "j", t0, Scheduled); err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d winners", won)
	}
}

func TestRefusesForeignAndNewerDatabases(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.db")
	content := []byte("this is not a database, and it must survive\n" + strings.Repeat("x", 4096))
	os.WriteFile(junk, content, 0o600)
	_, err := Open(junk)
	var se *Error
	if err == nil || !errors.As(err, &se) || !strings.Contains(err.Error(), "not a pbirefresh database") || se.Hint() == "" {
		t.Fatalf("junk file: %v", err)
	}
	if b, _ := os.ReadFile(junk); string(b) != string(content) {
		t.Fatal("the foreign file was modified")
	}
	newer := filepath.Join(dir, "newer.db")
	s := open(t, newer)
	s.db.Exec("PRAGMA user_version = 99")
	s.Close()
	before, _ := os.ReadFile(newer)
	if _, err := Open(newer); err == nil || !strings.Contains(err.Error(), "newer than this pbirefresh supports") {
		t.Fatalf("newer database: %v", err)
	}
	if after, _ := os.ReadFile(newer); string(after) != string(before) {
		t.Fatal("the newer database was modified")
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("directory: %v", err)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	now := t0.Add(100 * 24 * time.Hour)
	s.Now = func() time.Time { return now }
	for i := 0; i < 10; i++ {
		id, _ := s.Begin(ctx, "a", t0.Add(time.Duration(i)*24*time.Hour), Scheduled)
		s.Finish(ctx, id, "completed", "r", 1, "", "", "")
	}
	for i := 0; i < 5; i++ {
		id, _ := s.Begin(ctx, "b", now.Add(-time.Duration(i)*time.Hour), Scheduled)
		s.Finish(ctx, id, "failed", "r", 1, "e", "h", "")
	}
	s.Begin(ctx, "c", t0, Scheduled) // in flight and old: kept
	n, err := s.Prune(ctx, 3, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Runs(ctx, "a", 0)
	b, _ := s.Runs(ctx, "b", 0)
	c, _ := s.Runs(ctx, "c", 0)
	if n != 12 || len(a) != 0 || len(b) != 3 || len(c) != 1 {
		t.Fatalf("pruned %d; left a=%d b=%d c=%d", n, len(a), len(b), len(c))
	}
}
