package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
)

// TestBurstCommitsTogether: 100 runs fired for one slot record
// themselves in a few commits, not one each (a commit costs six file
// locks and two writes per page, whatever it holds).
func TestBurstCommitsTogether(t *testing.T) {
	s := openRW(t, filepath.Join(t.TempDir(), "state.db"))
	ctx := context.Background()
	slot := time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	before := s.commits.Load()
	// As the scheduler fires them: one goroutine after another.
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Begin(ctx, fmt.Sprintf("job-%03d", i), slot, pbirefresh.Scheduled); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := s.commits.Load() - before; n > 34 {
		t.Fatalf("100 runs fired together took %d commits, want at most a third of them", n)
	}
	t.Logf("100 runs fired together: %d commits", s.commits.Load()-before)
}

// TestUpdatesLingerTogether: the updates of runs in flight, arriving
// 10 ms apart as their polls end, commit together (a fake clock: the
// linger is the committer's own timer).
func TestUpdatesLingerTogether(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		s, err := Open(context.Background(), filepath.Join(dir, "state.db"), Options{Daemon: daemon})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		slot := time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC)
		ids := make([]int64, 10)
		for i := range ids {
			if ids[i], err = s.Begin(ctx, fmt.Sprintf("job-%02d", i), slot, pbirefresh.Scheduled); err != nil {
				t.Fatal(err)
			}
		}
		before := s.commits.Load()
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i) * 10 * time.Millisecond)
				if err := s.Finish(ctx, id, store.Outcome{Status: pbirefresh.Completed, RefreshID: fmt.Sprintf("r-%d", i)}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := s.commits.Load() - before; n > 2 {
			t.Fatalf("10 outcomes 10 ms apart took %d commits, want at most 2", n)
		}
		runs, err := s.Runs(ctx, store.Query{})
		if err != nil || len(runs) != len(ids) {
			t.Fatalf("%d runs (%v), want %d", len(runs), err, len(ids))
		}
		for _, r := range runs {
			if r.Status != pbirefresh.Completed {
				t.Fatalf("run %s: %s after its outcome was committed", r.Job, r.Status)
			}
		}
	})
}

// TestSetRefreshLater: the refresh id is recorded without the caller
// waiting, it is told the result, the outcome written after it commits
// after it, and a closed store says so.
func TestSetRefreshLater(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		s, err := Open(context.Background(), filepath.Join(dir, "state.db"), Options{Daemon: daemon})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close() // at once, when a check fails: the bubble ends with no goroutine left
		ctx := context.Background()
		id, err := s.Begin(ctx, "a", time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC), pbirefresh.Scheduled)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		began := time.Now()
		s.SetRefreshLater(ctx, id, "r-1", func(err error) { done <- err })
		if d := time.Since(began); d != 0 {
			t.Fatalf("SetRefreshLater waited %s", d) // the fake clock moves only when every goroutine waits
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Claimed(ctx, "r-1"); !ok || err != nil {
			t.Fatalf("after its commit, r-1 is not claimed (%v)", err)
		}
		runs, _ := s.InFlight(ctx)
		if len(runs) != 1 || runs[0].RefreshID != "r-1" || runs[0].Status != pbirefresh.Running {
			t.Fatalf("in flight after the refresh id: %+v", runs)
		}

		// An outcome queued right behind the refresh id commits after it:
		// the run ends completed, not running again.
		id2, err := s.Begin(ctx, "b", time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC), pbirefresh.Scheduled)
		if err != nil {
			t.Fatal(err)
		}
		s.SetRefreshLater(ctx, id2, "r-2", nil)
		// No refresh id in the outcome: it stays r-2 only if the outcome
		// commits after the id (after it, the id's update matches no run).
		if err := s.Finish(ctx, id2, store.Outcome{Status: pbirefresh.Completed}); err != nil {
			t.Fatal(err)
		}
		runs, _ = s.Runs(ctx, store.Query{})
		found := false
		for _, r := range runs {
			if r.Job == "b" {
				found = true
				if r.Status != pbirefresh.Completed || r.RefreshID != "r-2" {
					t.Fatalf("b: %s %q, want completed r-2", r.Status, r.RefreshID)
				}
			}
		}
		if !found {
			t.Fatal("b's run is not recorded")
		}

		s.Close()
		s.SetRefreshLater(ctx, id, "r-3", func(err error) { done <- err })
		if err := <-done; err == nil || !errors.Is(err, errClosed) {
			t.Fatalf("after Close: %v", err)
		}
	})
}

// TestRunStatementsBuildNoTemporaryTable: SQLite turns an IN list of three
// or more constants into a temporary b-tree, built again at every execution
// (the OpenEphemeral opcode). The statements every run executes must not
// (the outcome's did, about 15% of its cost).
func TestRunStatementsBuildNoTemporaryTable(t *testing.T) {
	s := openRW(t, filepath.Join(t.TempDir(), "state.db"))
	for q, params := range map[string]int{beginSQL: 7, setRefreshSQL: 3, finishSQL: 12} {
		rows, err := s.direct().QueryContext(context.Background(), "EXPLAIN "+q, make([]any, params)...)
		if err != nil {
			t.Fatalf("EXPLAIN %s: %v", q, err)
		}
		cols, _ := rows.Columns()
		ops := 0
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			ops++
			if fmt.Sprint(vals[1]) == "OpenEphemeral" {
				t.Errorf("%s\nbuilds a temporary b-tree at each execution (opcode %v)", q, vals[0])
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if ops == 0 {
			t.Fatalf("EXPLAIN %s gave no program", q)
		}
	}
}
