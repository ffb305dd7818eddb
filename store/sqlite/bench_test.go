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

// BenchmarkRunWritesPaced measures the CPU of a run's three writes paced
// as the daemon paces them in Daemon10k: 100 runs a second, each
// recording its run as its slot fires, its refresh id 2 ms later (not
// waiting, as the daemon does) and its outcome 1.1 s later; each run is
// its job's first (2,000 jobs over 20 s), as in Daemon10k. Each iteration runs the same goroutines and sleeps
// twice, first without the store, then with it, and counts the process's
// CPU over the same steady part of each pass; the store's cost is the
// difference. The sleeps pace the runs on the wall clock, as slots do.
// About 45 s an iteration; -benchtime 1x.
func BenchmarkRunWritesPaced(b *testing.B) {
	const rate, secs, warm = 100, 20, 3
	pass := func(s *Store) time.Duration {
		ctx := context.Background()
		base := time.Now().Truncate(time.Second).Add(time.Second)
		var wg sync.WaitGroup
		var cpu0 time.Duration
		for k := 0; k < secs; k++ {
			time.Sleep(time.Until(base.Add(time.Duration(k) * time.Second)))
			if k == warm {
				cpu0 = cpuNow()
			}
			slot := base.Add(time.Duration(k) * time.Second)
			for i := 0; i < rate; i++ {
				n := k*rate + i
				wg.Add(1)
				go func() {
					defer wg.Done()
					job, rid := fmt.Sprintf("job-%05d", n), fmt.Sprintf("%08x-0000-4000-8000-%012x", n, i)
					var id int64
					var err error
					if s != nil {
						if id, err = s.Begin(ctx, job, slot, pbirefresh.Scheduled); err != nil {
							b.Error(err)
							return
						}
					}
					time.Sleep(2 * time.Millisecond) // the POST
					if s != nil {
						s.SetRefreshLater(ctx, id, rid, func(err error) {
							if err != nil {
								b.Error(err)
							}
						})
					}
					time.Sleep(1100 * time.Millisecond) // the refresh
					if s != nil {
						if err := s.Finish(ctx, id, store.Outcome{Status: pbirefresh.Completed, RefreshID: rid, Polls: 1}); err != nil {
							b.Error(err)
						}
					}
				}()
			}
		}
		time.Sleep(time.Until(base.Add(secs * time.Second)))
		cpu := cpuNow() - cpu0
		wg.Wait()
		return cpu / ((secs - warm) * rate)
	}
	for iter := 0; iter < b.N; iter++ {
		without := pass(nil)
		s, err := Open(context.Background(), filepath.Join(b.TempDir(), "state.db"), Options{Daemon: daemon})
		if err != nil {
			b.Fatal(err)
		}
		with := pass(s)
		commits := s.commits.Load()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.Logf("CPU per run: %s with the store, %s without: the store %s; %.3f commits per run",
			with.Round(time.Microsecond), without.Round(time.Microsecond), (with - without).Round(time.Microsecond), float64(commits)/(secs*rate))
		b.ReportMetric(float64(with-without)/1e3, "store-cpu-µs/run")
		b.ReportMetric(float64(commits)/(secs*rate), "commits/run")
	}
}
