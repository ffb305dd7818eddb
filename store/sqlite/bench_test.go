package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRunWrites measures the CPU of the three writes of a run
// (Begin, SetRefresh, Finish) as the daemon makes them at 100 runs a
// second: bursts of 100 runs fired for one slot, each from its own
// goroutine. It reports CPU per run and commits per run. -benchtime 1x.
func BenchmarkRunWrites(b *testing.B) {
	const burst, bursts = 100, 10
	for iter := 0; iter < b.N; iter++ {
		s, err := Open(context.Background(), filepath.Join(b.TempDir(), "state.db"), Options{Daemon: daemon})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		cpu0, began := cpuNow(), time.Now()
		for k := 0; k < bursts; k++ {
			var wg sync.WaitGroup
			for i := 0; i < burst; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id, err := s.Begin(ctx, fmt.Sprintf("job-%05d", i), base.Add(time.Duration(k)*time.Second), pbirefresh.Scheduled)
					if err != nil {
						b.Error(err)
						return
					}
					rid := fmt.Sprintf("%08x-0000-4000-8000-%012x", k*burst+i, i)
					if err := s.SetRefresh(ctx, id, rid); err != nil {
						b.Error(err)
					}
					if err := s.Finish(ctx, id, store.Outcome{Status: pbirefresh.Completed, RefreshID: rid, Polls: 1}); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
		}
		cpu, wall := cpuNow()-cpu0, time.Since(began)
		commits := s.commits.Load()
		s.Close()
		b.Logf("%d runs: CPU %s per run, %.2f commits per run (wall %s per burst of %d)", burst*bursts, (cpu / (burst * bursts)).Round(time.Microsecond),
			float64(commits)/(burst*bursts), (wall / bursts).Round(time.Millisecond), burst)
		b.ReportMetric(float64(cpu/(burst*bursts))/1e3, "cpu-µs/run")
		b.ReportMetric(float64(commits)/(burst*bursts), "commits/run")
	}
}
