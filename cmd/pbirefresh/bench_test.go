package main

import (
	"bufio"
	"context"
	"fmt"
	"github.com/pbirefresh/pbirefresh"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procRSS reads a memory line (VmRSS:, VmHWM:) of a process, in MB.
func procRSS(pid int, key string) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key) {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// procCPU reads a process's user + system CPU time (clock ticks of 10 ms).
func procCPU(pid int) time.Duration {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// quiesce collects the garbage of the benchmark's earlier phases and
// returns its memory to the OS now, so that a baseline window counts only
// its own work: without it, the runtime's background scavenger returned
// the earlier phases' memory during the HTTP window (madvise, about 13% of
// that window's CPU under perf), which inflated the baseline and so
// flattered the daemon's ratio.
func quiesce() {
	runtime.GC()
	debug.FreeOSMemory()
}

// benchScenario: one Premium workspace, 100 datasets whose refreshes take
// 100 ms; the demo tenant and app.
func benchScenario(dir string) string {
	var b strings.Builder
	b.WriteString(`settings: {history_delay: 0s, request_log_size: 200000}
tenants: [{id: c0ffee00-0000-4000-8000-000000000001}]
apps: [{client_id: c0ffee00-0000-4000-8000-0000000000a1, tenant: c0ffee00-0000-4000-8000-000000000001, secrets: [{value: bench-secret}]}]
workspaces:
  - id: c0ffee00-0000-4000-8000-000000000101
    name: Bench
    members: [{principal: c0ffee00-0000-4000-8000-0000000000a1, role: Admin}]
    datasets:
`)
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "      - {id: c0ffee00-0000-4000-8000-%012d, name: d%d, behaviour: {duration: 100ms}}\n", 800000+i, i)
	}
	path := filepath.Join(dir, "scenario.yaml")
	os.WriteFile(path, []byte(b.String()), 0o600)
	return path
}

// specs gives job i a slot at base + i/rate seconds: rate runs per second.
func specs(n, rate int, base time.Time) []string {
	out := make([]string, n)
	for i := range out {
		at := base.Add(time.Duration(i/rate) * time.Second)
		out[i] = fmt.Sprintf("%d %d %d * * *", at.Second(), at.Minute(), at.Hour())
	}
	return out
}

// iteration holds the cleanups of one benchmark iteration (its emulator
// processes), so that they end with it rather than with the benchmark:
// otherwise each iteration's emulators would idle on beside the next.
type iteration struct {
	testing.TB
	cleanups []func()
}

func (it *iteration) Cleanup(f func()) { it.cleanups = append(it.cleanups, f) }

// end runs the cleanups, last first, once.
func (it *iteration) end() {
	for i := len(it.cleanups) - 1; i >= 0; i-- {
		it.cleanups[i]()
	}
	it.cleanups = nil
}

// BenchmarkDaemon10kJobs: 10,000 jobs in one config firing 100 runs per
// second against the emulator (a separate process, so its CPU is not
// counted). It reports validation and start-up time, resident memory,
// lateness from slot to POST, and CPU per fired run, beside, in the same
// run, a bare robfig/cron Cron firing no-op jobs on the same schedules and
// the HTTP work of the same runs without a scheduler (at the same time as
// the daemon, so the lateness is the daemon's with that work beside it).
func BenchmarkDaemon10kJobs(b *testing.B) {
	const jobs, rate = 10000, 100
	// Both CPU windows (the daemon's and the HTTP work's) are steady. A
	// run's CPU falls partly in the second it fires (its POST) and partly
	// about a second later (its poll and its outcome): a window that
	// opened with the first runs counted the polls of its last second's
	// runs nowhere, and nobody's from before it, which flattered the
	// daemon, whose window did so.
	//
	// The daemon's CPU comes in bursts, in the quarter second after each
	// slot (its threads' schedstat, sampled every 10 ms). About every 3 s
	// a burst is larger by a garbage collection (about 45 ms), and the
	// burst 2 s after the first slot, with the first collection since
	// start-up, by about 100 ms. A window with its edges on slots takes in
	// a whole burst at one end and leaves one out at the other, so what it
	// counts hangs on which: from 2 s to 12 s it took in that first one
	// (five interleaved pairs of runs gave a median ratio of 1.05 with the
	// edges on slots, 0.98 with them half a second later). So the windows
	// open half a second off the slots, where the daemon is idle, past
	// the first 5 s, and last 30 s, over which one collection more or less
	// is about 2% of the CPU. The bare Cron, without such bursts, keeps
	// 10 s.
	const warm, window, bareWindow = 5 * time.Second, 30 * time.Second, 10 * time.Second
	// One of each per iteration: -benchtime Nx gives their medians. The
	// daemon and the HTTP work alone are measured over the same seconds,
	// side by side; the bare Cron alone after them. The daemon's CPU beyond
	// the HTTP work, in µs per run, is the same comparison as a budget (the
	// target allows 2 x bare).
	var ratios, beyond []float64
	// PBI_BENCH_BASELINE=record makes the baseline's runs also make the
	// daemon's three writes of a run's record (to a state database of
	// their own) and its two log lines (to /dev/null). The daemon's CPU
	// beyond the baseline's then weighs its scheduling and bookkeeping
	// alone against 2 x bare.
	withRecord := os.Getenv("PBI_BENCH_BASELINE") == "record"
	ratioOf, metric := "daemon / (2 x bare + HTTP)", "cpu-vs-target"
	if withRecord {
		ratioOf, metric = "daemon / (2 x bare + HTTP, record, log)", "cpu-vs-record-baseline"
	}
	defer func() {
		if len(ratios) < 2 {
			return
		}
		median := func(v []float64) (mid, lo, hi float64) {
			sort.Float64s(v)
			n := len(v)
			return (v[(n-1)/2] + v[n/2]) / 2, v[0], v[n-1]
		}
		m, lo, hi := median(ratios)
		b.Logf("%s over %d iterations: median %.2f (%.2f to %.2f)", ratioOf, len(ratios), m, lo, hi)
		m, lo, hi = median(beyond)
		b.Logf("daemon beyond the baseline's work, per run: median %.0f µs (%.0f to %.0f)", m, lo, hi)
	}()
	for iter := 0; iter < b.N; iter++ {
		it := &iteration{TB: b}
		b.Cleanup(it.end) // after a Fatal
		dir := b.TempDir()
		url, ca, _ := emulatorProcessB(it, dir, benchScenario(dir))
		// The HTTP work alone gets its own emulator, fresh like the
		// daemon's: both begin with empty refresh histories, each dataset
		// gaining one refresh a second. (Sharing the daemon's, whose
		// histories were full, made each history read dearer: that made
		// the baseline about 9% heavier and flattered the ratio.)
		dir2 := filepath.Join(dir, "baseline")
		os.Mkdir(dir2, 0o700)
		url2, ca2, _ := emulatorProcessB(it, dir2, benchScenario(dir2))
		os.Setenv("PBI_BENCH_SECRET", "bench-secret")

		base := time.Now().Add(6 * time.Second).Truncate(time.Second)
		var cfgText strings.Builder
		fmt.Fprintf(&cfgText, `cloud: custom
endpoints: {authority_host: %[1]s, powerbi_api: %[1]s, powerbi_scope: "https://analysis.windows.net/powerbi/api/.default", keyvault_challenge_verification: false}
tls: {ca_file: %[2]s}
state: {path: %[3]s}
credentials:
  bench: {tenant_id: c0ffee00-0000-4000-8000-000000000001, client_id: c0ffee00-0000-4000-8000-0000000000a1, client_secret: {env: PBI_BENCH_SECRET}}
defaults: {poll: {min_interval: 1s, max_interval: 2s}, history_grace: 10s}
jobs:
`, url, ca, filepath.Join(dir, "state.db"))
		sp := specs(jobs, rate, base)
		for i, s := range sp {
			fmt.Fprintf(&cfgText, "  - {name: job-%05d, schedule: \"%s\", credential: bench, workspace_id: c0ffee00-0000-4000-8000-000000000101, dataset_id: c0ffee00-0000-4000-8000-%012d, refresh: {type: full}}\n", i, s, 800000+i%100)
		}
		cfgPath := filepath.Join(dir, "pbirefresh.yaml")
		os.WriteFile(cfgPath, []byte(cfgText.String()), 0o600)

		began := time.Now()
		if _, err := configs.Load(cfgPath); err != nil {
			b.Fatal(err)
		}
		validation := time.Since(began)

		// The HTTP work alone: the same runs at the same rate through the
		// daemon's client code, no scheduler (and, unless withRecord, no
		// store and no log).
		cfgPath2 := filepath.Join(dir2, "pbirefresh.yaml")
		os.WriteFile(cfgPath2, []byte(strings.ReplaceAll(strings.ReplaceAll(cfgText.String(), url, url2), ca, ca2)), 0o600)
		cfg, err := configs.Load(cfgPath2)
		if err != nil {
			b.Fatal(err)
		}
		e, err := newEnv(cfg, slog.New(slog.DiscardHandler), refresh.SystemClock{})
		if err != nil {
			b.Fatal(err)
		}
		client := e.client("bench")

		// The daemon is its own process, so its memory and CPU are its own.
		// PBI_BENCH_BINARY runs another build of the daemon in the same
		// harness (an older commit, to see what moved its CPU per run).
		bin := binary
		if v := os.Getenv("PBI_BENCH_BINARY"); v != "" {
			bin = v
		}
		cmd := exec.Command(bin, "run", "--config", cfgPath)
		cmd.Env = append(os.Environ(), "PBI_BENCH_SECRET=bench-secret")
		stderr, _ := cmd.StderrPipe()
		began = time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // after a Fatal
		started := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "pbirefresh started") {
					close(started)
					break
				}
			}
			// The rest of the daemon's log is drained, not read line by
			// line: this process's CPU is the baseline's.
			io.Copy(io.Discard, stderr)
		}()
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			b.Fatal("the daemon did not start")
		}
		startup := time.Since(began)
		pid := cmd.Process.Pid
		rssStarted := procRSS(pid, "VmRSS:")
		if wait := time.Until(base); wait <= 0 {
			b.Logf("start-up overran the first slot by %s", -wait)
		}
		// The HTTP work fires half a second off the daemon's slots, so
		// that their bursts do not meet. Both windows open and close half
		// a second off the daemon's slots, when it is idle, and so count
		// the same number of bursts of each.
		offset := base.Add(time.Second / 2)
		open, shut := offset.Add(warm), offset.Add(warm+window)
		if wait := time.Until(offset); wait <= 0 {
			b.Fatalf("start-up overran the first slot by %s: the HTTP work would fire late, in bursts", time.Second/2-wait)
		}

		// Both windows at once. Measured one after the other, the two
		// sides of the ratio saw the machine at different moments, and
		// this shared machine's speed drifts: the HTTP work alone moved
		// from 626 to 847 µs per run between iterations, and the ratio
		// with it. Side by side, they share its moments. The HTTP work
		// fires from this process, whose CPU is its own (the daemon's log
		// is drained above at a few reads a second).
		quiesce()
		var cpuDaemon time.Duration
		daemonDone := make(chan struct{})
		go func() {
			defer close(daemonDone)
			time.Sleep(time.Until(open))
			cpu0 := procCPU(pid)
			time.Sleep(time.Until(shut))
			cpuDaemon = procCPU(pid) - cpu0
		}()
		var st2 *sqlite.Store
		var null *os.File
		var bw *batchWriter
		var lg *slog.Logger
		if withRecord {
			if null, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
				b.Fatal(err)
			}
			bw = newBatchWriter(null)
			lg = newBatchLogger(bw)
			st2, err = sqlite.Open(context.Background(), filepath.Join(dir2, "state.db"), sqlite.Options{Daemon: &sqlite.Holder{Host: "bench", PID: os.Getpid(), Version: "bench"}})
			if err != nil {
				null.Close()
				b.Fatal(err)
			}
		}
		baselineRun := func(j *configs.Job, slot time.Time) {
			ctx := context.Background()
			ds, opts, pol := jobRequest(j)
			if !withRecord {
				client.Run(ctx, ds, opts, pol, nil)
				return
			}
			id, err := st2.Begin(ctx, j.Name, slot, pbirefresh.Scheduled)
			if err != nil {
				b.Error(err)
				return
			}
			pol.Logger = lg.With("job", j.Name, "slot", slot, "kind", pbirefresh.Scheduled)
			pol.Started = func(rf refresh.Refresh) {
				st2.SetRefreshLater(ctx, id, rf.ID, func(err error) {
					if err != nil {
						b.Error(err)
					}
				})
			}
			res := client.Run(ctx, ds, opts, pol, nil)
			o := store.Outcome{Status: res.Outcome, RefreshID: res.RefreshID, Polls: res.Polls, Error: res.Error, Code: res.Code,
				Hint: res.Hint, Note: res.Note, ServiceStart: res.ServiceStart, ServiceEnd: res.ServiceEnd}
			if err := st2.Finish(ctx, id, o); err != nil {
				b.Error(err)
			}
		}
		var wg sync.WaitGroup
		var cpu0 time.Duration
		httpRuns := 0
		for sec := 0; sec < int((warm+window)/time.Second); sec++ {
			time.Sleep(time.Until(offset.Add(time.Duration(sec) * time.Second)))
			if sec == int(warm/time.Second) {
				cpu0 = cpuTime()
			}
			slot := offset.Add(time.Duration(sec) * time.Second)
			for k := 0; k < rate; k++ {
				j := cfg.Jobs[(sec*rate+k+5000)%jobs]
				wg.Add(1)
				if sec >= int(warm/time.Second) {
					httpRuns++
				}
				go func() { defer wg.Done(); baselineRun(j, slot) }()
			}
		}
		time.Sleep(time.Until(shut))
		cpuHTTP := cpuTime() - cpu0
		<-daemonDone
		rssFiring := procRSS(pid, "VmRSS:")
		wg.Wait()
		e.Close()
		if withRecord {
			st2.Close()
			bw.Close()
			null.Close()
		}
		time.Sleep(3 * time.Second) // let the daemon's window's runs finish
		peak := procRSS(pid, "VmHWM:")
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		it.end()

		st, err := sqlite.Open(context.Background(), filepath.Join(dir, "state.db"), sqlite.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		var runs []store.Run
		for q := (store.Query{}); ; {
			page, err := st.Runs(context.Background(), q)
			if err != nil {
				b.Fatal(err)
			}
			runs = append(runs, page...)
			if len(page) < q.PageSize() {
				break
			}
			q.After = store.CursorOf(page[len(page)-1])
		}
		st.Close()
		var late []time.Duration
		fired, completed := 0, 0
		for _, r := range runs {
			if r.Slot.Before(base) || !r.Slot.Before(shut) {
				continue
			}
			late = append(late, r.Posted.Sub(r.Slot))
			if r.Slot.Before(open) {
				continue
			}
			fired++
			if r.Status == "completed" {
				completed++
			}
		}
		sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
		if len(late) == 0 {
			b.Fatal("nothing fired")
		}
		p50, p99 := late[len(late)/2], late[len(late)*99/100]

		// Bare robfig/cron on the same schedules, no-op jobs: alone, after
		// the others, as it is too light to share their window (its 20-40
		// µs per run would drown in theirs).
		base2 := time.Now().Add(3 * time.Second).Truncate(time.Second)
		c := cron.New(cron.WithSeconds(), cron.WithLocation(time.UTC))
		var bareFired atomic.Int64
		for _, s := range specs(jobs, rate, base2) {
			c.AddFunc(s, func() { bareFired.Add(1) })
		}
		c.Start()
		quiesce()
		// Half a second off its slots, so that the window holds exactly
		// ten seconds' firings (opened on a slot, it caught eleven at
		// times: a window's two ends each met one).
		time.Sleep(time.Until(base2.Add(time.Second / 2)))
		cpu0, fired0 := cpuTime(), bareFired.Load()
		time.Sleep(time.Until(base2.Add(time.Second/2 + bareWindow)))
		cpuBare, bareRuns := cpuTime()-cpu0, bareFired.Load()-fired0
		c.Stop()

		perDaemon := cpuDaemon / time.Duration(max(fired, 1))
		perBare := cpuBare / time.Duration(max(bareRuns, 1))
		perHTTP := cpuHTTP / time.Duration(max(httpRuns, 1))
		work, ratioLine := "the HTTP work", "daemon / (2 x bare + HTTP)     %.2f (target <= 1)"
		if withRecord {
			work, ratioLine = "HTTP+record+log", ratioOf+" %.2f"
		}
		b.Logf(`
jobs %d, firing %d runs/s; CPU counted over %s, from %s after the first slot
validation (configs.Load)      %s
start-up (load, store, schedule) %s
resident memory (daemon)       %.1f MB started, %.1f MB while firing, %.1f MB peak
runs fired in the CPU window   %d (%d completed)
lateness slot -> POST          p50 %s, p99 %s
CPU per fired run              daemon %s; bare robfig Cron %s (%d fired); %s alone %s (%d runs)
daemon beyond %-17s%s per run (2 x bare: %s)
`+ratioLine,
			jobs, rate, window, open.Sub(base), validation.Round(time.Millisecond), startup.Round(time.Millisecond),
			rssStarted, rssFiring, peak, fired, completed, p50.Round(time.Microsecond), p99.Round(time.Microsecond),
			perDaemon.Round(time.Microsecond), perBare.Round(time.Microsecond), bareRuns, work, perHTTP.Round(time.Microsecond), httpRuns, work,
			(perDaemon - perHTTP).Round(time.Microsecond), (2 * perBare).Round(time.Microsecond),
			float64(perDaemon)/float64(2*perBare+perHTTP))
		b.ReportMetric(startup.Seconds(), "startup-s")
		b.ReportMetric(peak, "peak-rss-MB")
		b.ReportMetric(float64(p99)/1e6, "p99-lateness-ms")
		ratio := float64(perDaemon) / float64(2*perBare+perHTTP)
		ratios = append(ratios, ratio)
		beyond = append(beyond, float64(perDaemon-perHTTP)/1e3)
		b.ReportMetric(ratio, metric)
	}
}

// BenchmarkLatenessUnderAPILoad measures slot-to-POST lateness with the
// API idle, and then with 200 clients reading /api/runs?limit=10000,
// /readyz and the status page as fast as they can (the attack that made
// slots fire 11 s late while reads and writes shared one connection). The
// daemon and the emulator are processes of their own; 200 jobs fire 20
// runs a second in a first, idle window and again a minute later, under
// load. -benchtime=1x.
func BenchmarkLatenessUnderAPILoad(b *testing.B) {
	const jobs, rate = 200, 20
	for iter := 0; iter < b.N; iter++ {
		dir := b.TempDir()
		url, ca, _ := emulatorProcessB(b, dir, benchScenario(dir))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		base := time.Now().Add(10 * time.Second).Truncate(time.Second)
		var cfgText strings.Builder
		fmt.Fprintf(&cfgText, `cloud: custom
endpoints: {authority_host: %[1]s, powerbi_api: %[1]s, powerbi_scope: "https://analysis.windows.net/powerbi/api/.default", keyvault_challenge_verification: false}
tls: {ca_file: %[2]s}
state: {path: %[3]s}
http: {listen: "%[4]s"}
credentials:
  bench: {tenant_id: c0ffee00-0000-4000-8000-000000000001, client_id: c0ffee00-0000-4000-8000-0000000000a1, client_secret: {env: PBI_BENCH_SECRET}}
defaults: {poll: {min_interval: 1s, max_interval: 2s}, history_grace: 10s}
jobs:
`, url, ca, filepath.Join(dir, "state.db"), addr)
		for i := 0; i < jobs; i++ {
			at1 := base.Add(time.Duration(i/rate) * time.Second)
			at2 := at1.Add(time.Minute)
			fmt.Fprintf(&cfgText, "  - {name: job-%04d, schedule: \"%d %d,%d %d,%d * * *\", credential: bench, workspace_id: c0ffee00-0000-4000-8000-000000000101, dataset_id: c0ffee00-0000-4000-8000-%012d, refresh: {type: full}}\n",
				i, at1.Second(), at1.Minute(), at2.Minute(), at1.Hour(), at2.Hour(), 800000+i%100)
		}
		cfgPath := filepath.Join(dir, "pbirefresh.yaml")
		os.WriteFile(cfgPath, []byte(cfgText.String()), 0o600)
		// 10,000 runs of history for the readers to page through.
		seed, err := sqlite.Open(context.Background(), filepath.Join(dir, "state.db"), sqlite.Options{Daemon: &sqlite.Holder{}})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 10000; i++ {
			seed.Record(context.Background(), fmt.Sprintf("job-%04d", i%jobs), base.Add(-time.Duration(i+1)*time.Minute), pbirefresh.Scheduled, pbirefresh.Missed, "seeded history")
		}
		seed.Close()
		cmd := exec.Command(binary, "run", "--config", cfgPath)
		cmd.Env = append(os.Environ(), "PBI_BENCH_SECRET=bench-secret")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
				res.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("the daemon did not start")
			}
		}
		// The load: from 5 s before the second window to 5 s after it.
		time.Sleep(time.Until(base.Add(55 * time.Second)))
		stop := make(chan struct{})
		var served, refused atomic.Int64
		var wg sync.WaitGroup
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}, Timeout: time.Minute}
		paths := []string{"/api/runs?limit=10000", "/readyz", "/", "/api/runs?limit=10000&job=job-0007"}
		for c := 0; c < 200; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for i := c; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					res, err := client.Get("http://" + addr + paths[i%len(paths)])
					if err != nil {
						refused.Add(1)
						continue
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					served.Add(1)
				}
			}(c)
		}
		time.Sleep(time.Until(base.Add(75 * time.Second)))
		close(stop)
		wg.Wait()
		time.Sleep(3 * time.Second) // the last POSTs of the window
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()

		st, err := sqlite.Open(context.Background(), filepath.Join(dir, "state.db"), sqlite.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		var idle, loaded []time.Duration
		for q := (store.Query{}); ; {
			page, err := st.Runs(context.Background(), q)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range page {
				if r.Posted.IsZero() {
					continue
				}
				switch late := r.Posted.Sub(r.Slot); {
				case !r.Slot.Before(base) && r.Slot.Before(base.Add(10*time.Second)):
					idle = append(idle, late)
				case !r.Slot.Before(base.Add(time.Minute)) && r.Slot.Before(base.Add(70*time.Second)):
					loaded = append(loaded, late)
				}
			}
			if len(page) < q.PageSize() {
				break
			}
			q.After = store.CursorOf(page[len(page)-1])
		}
		st.Close()
		if len(idle) < jobs*9/10 || len(loaded) < jobs*9/10 {
			b.Fatalf("runs fired: %d idle, %d loaded, want about %d each", len(idle), len(loaded), jobs)
		}
		pct := func(xs []time.Duration, p int) time.Duration {
			sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
			return xs[len(xs)*p/100]
		}
		i50, i99, l50, l99 := pct(idle, 50), pct(idle, 99), pct(loaded, 50), pct(loaded, 99)
		ratio := float64(l99) / float64(max(i99, time.Millisecond))
		b.Logf(`
slot -> POST lateness, %d jobs at %d runs/s
API idle                     p50 %s, p99 %s (%d runs)
200 clients reading the API  p50 %s, p99 %s (%d runs; %d API answers served, %d failed, in 20 s)
p99 loaded / idle            %.2f (target <= 2)`,
			jobs, rate, i50.Round(time.Microsecond), i99.Round(time.Microsecond), len(idle),
			l50.Round(time.Microsecond), l99.Round(time.Microsecond), len(loaded), served.Load(), refused.Load(), ratio)
		b.ReportMetric(ratio, "p99-loaded-vs-idle")
	}
}
