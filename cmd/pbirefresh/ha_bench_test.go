package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/postgres"
	"github.com/pbirefresh/pbirefresh/store/postgres/pgtest"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

// benchJobs is the jobs section of BenchmarkDaemon10kJobs: n jobs on the
// bench scenario's datasets, rate of them firing each second from base for
// the window; the others (BenchmarkDaemon10kJobs fires them for the next
// 90 s) fire two hours later, so firing stops at the end of the window
// and the runs can settle.
func benchJobs(n, rate int, base time.Time, window time.Duration) string {
	var b strings.Builder
	b.WriteString("jobs:\n")
	inWindow := rate * int(window/time.Second)
	sp := specs(n, rate, base)
	later := specs(n, rate, base.Add(2*time.Hour))
	for i := range sp {
		s := sp[i]
		if i >= inWindow {
			s = later[i]
		}
		fmt.Fprintf(&b, "  - {name: job-%05d, schedule: \"%s\", credential: bench, workspace_id: c0ffee00-0000-4000-8000-000000000101, dataset_id: c0ffee00-0000-4000-8000-%012d, refresh: {type: full}}\n", i, s, 800000+i%100)
	}
	return b.String()
}

func benchHeader(url, ca, state string) string {
	return fmt.Sprintf(`cloud: custom
endpoints: {authority_host: %[1]s, powerbi_api: %[1]s, powerbi_scope: "https://analysis.windows.net/powerbi/api/.default", keyvault_challenge_verification: false}
tls: {ca_file: %[2]s}
state: %[3]s
http: {listen: "off"}
credentials:
  bench: {tenant_id: c0ffee00-0000-4000-8000-000000000001, client_id: c0ffee00-0000-4000-8000-0000000000a1, client_secret: {env: PBI_BENCH_SECRET}}
defaults: {poll: {min_interval: 1s, max_interval: 2s}, history_grace: 10s}
`, url, ca, state)
}

// pgXacts reads the committed and rolled back transactions of a database
// from pg_stat_database, on a new connection to the server's postgres
// database (so the reading is not counted, and no snapshot is cached).
func pgXacts(tb testing.TB, srv *pgtest.Server, db string) int64 {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close(ctx)
	var n int64
	if err := c.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1`, db).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func haPercentile(xs []time.Duration, p int) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

// BenchmarkHA10k: BenchmarkDaemon10kJobs's 10,000 jobs firing 100 runs a
// second for 10 s, run by three replicas sharing one PostgreSQL database,
// each through its own counting proxy, against the emulator (a process of
// its own). It reports slot → POST lateness, database round trips and
// bytes per run, CPU per run of the three replicas together, and how the
// runs spread over them; then, in the same run, the single-process SQLite
// daemon on the same jobs over the same window, for the CPU per run.
// -benchtime=1x.
func BenchmarkHA10k(b *testing.B) {
	const jobs, rate, window, nrep = 10000, 100, 10 * time.Second, 3
	const startMargin = 25 * time.Second // 10,000 jobs: a LastSlot query each, per replica
	for iter := 0; iter < b.N; iter++ {
		srv := pgtest.Shared(b)
		dbURL := srv.NewDatabase(b)
		dbName := dbURL[strings.LastIndex(dbURL, "/")+1 : strings.IndexByte(dbURL, '?')]
		dir := b.TempDir()
		url, ca, hc := emulatorProcessB(b, dir, benchScenario(dir))
		env := append(os.Environ(), "PBI_BENCH_SECRET=bench-secret")
		ctx := context.Background()

		// Three replicas, started at once.
		base := time.Now().Add(startMargin).Truncate(time.Second)
		jobText := benchJobs(jobs, rate, base, window)
		reps := make([]*replicaProc, nrep)
		for i := range reps {
			p := newTCPProxy(b, fmt.Sprintf("127.0.0.1:%d", srv.Port))
			r := &replicaProc{t: b, idx: i, cfg: filepath.Join(dir, fmt.Sprintf("r%d.yaml", i)), env: env, proxy: p}
			state := fmt.Sprintf(`{postgres: {url: "%s", lease_ttl: 15s}}`, viaProxy(dbURL, srv.Port, p.Port()))
			if err := os.WriteFile(r.cfg, []byte(benchHeader(url, ca, state)+jobText), 0o600); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(r.cleanup)
			reps[i] = r
		}
		began := time.Now()
		from := make([]int, nrep)
		for i, r := range reps {
			from[i] = r.launch()
		}
		var startups []string
		for i, r := range reps {
			r.waitFor(from[i], startMargin+30*time.Second, "pbirefresh started")
			startups = append(startups, time.Since(began).Round(100*time.Millisecond).String())
		}
		if wait := time.Until(base); wait > 0 {
			time.Sleep(wait)
		} else {
			b.Logf("start-up overran the first slot by %s", -wait)
		}
		cpu0 := make([]time.Duration, nrep)
		var bytes0, stmts0 int64
		for i, r := range reps {
			cpu0[i] = procCPU(r.pid())
			bytes0 += r.proxy.Bytes()
			stmts0 += r.proxy.statements.Load()
		}
		xact0 := pgXacts(b, srv, dbName)
		time.Sleep(window)
		var cpuHA time.Duration
		var rss []string
		for i, r := range reps {
			cpuHA += procCPU(r.pid()) - cpu0[i]
			rss = append(rss, fmt.Sprintf("%.0f", procRSS(r.pid(), "VmRSS:")))
		}

		// Settle: every run of the window ended.
		st, err := postgres.Open(ctx, dbURL, postgres.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		var runs []store.Run
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			if runs, err = pgAllRuns(ctx, st); err != nil {
				b.Fatal(err)
			}
			inflight := 0
			for _, r := range runs {
				if r.Status.InFlight() {
					inflight++
				}
			}
			if inflight == 0 && len(runs) >= rate*int(window/time.Second) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d runs recorded, %d in flight, 60 s after the window", len(runs), inflight)
			}
		}
		settledAt := time.Since(base.Add(window))
		var bytes1, stmts1 int64
		cpuSettled := time.Duration(0)
		for i, r := range reps {
			bytes1 += r.proxy.Bytes()
			stmts1 += r.proxy.statements.Load()
			cpuSettled += procCPU(r.pid()) - cpu0[i]
		}
		st.Close()
		for _, r := range reps {
			r.signal(syscall.SIGTERM)
		}
		var stmtsExit int64
		for _, r := range reps {
			if err := r.exit(30 * time.Second); err != nil {
				b.Errorf("replica %d: %v", r.idx, err)
			}
			stmtsExit += r.proxy.statements.Load()
		}
		xact1 := pgXacts(b, srv, dbName) // the backends flushed their statistics as they exited

		// The window's runs, from the database.
		replicaOf := map[string]int{}
		for _, r := range reps {
			for _, j := range r.joins() {
				replicaOf[j.text] = r.idx
			}
		}
		var late []time.Duration
		fired := 0
		statuses := map[string]int{}
		perOwner := make([]int, nrep)
		slots := map[string]int{}
		withRefresh := 0
		for _, r := range runs {
			if r.Slot.Before(base) || !r.Slot.Before(base.Add(window)) {
				continue
			}
			slots[r.Job+r.Slot.String()]++
			statuses[string(r.Status)]++
			if r.Posted.IsZero() {
				continue
			}
			fired++
			late = append(late, r.Posted.Sub(r.Slot))
			if i, ok := replicaOf[r.Owner]; ok {
				perOwner[i]++
			}
			if r.RefreshID != "" {
				withRefresh++
			}
		}
		if fired == 0 {
			b.Fatal("nothing fired")
		}
		if len(slots) != rate*int(window/time.Second) {
			b.Errorf("%d of %d slots recorded", len(slots), rate*int(window/time.Second))
		}
		for k, n := range slots {
			if n != 1 {
				b.Errorf("slot %s recorded %d times", k, n)
			}
		}
		reqs := requestLog(b, hc, url)
		posts := 0
		for _, q := range reqs {
			if q.Operation == "refresh.post" && q.Status == http.StatusAccepted {
				posts++
			}
		}
		if posts != withRefresh {
			b.Errorf("%d refreshes created, %d runs with a refresh", posts, withRefresh)
		}
		p50, p99 := haPercentile(late, 50), haPercentile(late, 99)

		// The single-process SQLite daemon: same jobs, same window.
		base2 := time.Now().Add(15 * time.Second).Truncate(time.Second)
		single := &replicaProc{t: b, idx: 9, cfg: filepath.Join(dir, "single.yaml"), env: env}
		state := fmt.Sprintf("{path: %s}", filepath.Join(dir, "state.db"))
		if err := os.WriteFile(single.cfg, []byte(benchHeader(url, ca, state)+benchJobs(jobs, rate, base2, window)), 0o600); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(single.cleanup)
		began = time.Now()
		single.start()
		startSingle := time.Since(began)
		if wait := time.Until(base2); wait > 0 {
			time.Sleep(wait)
		} else {
			b.Logf("the SQLite daemon's start-up overran the first slot by %s", -wait)
		}
		c0 := procCPU(single.pid())
		time.Sleep(window)
		cpuSingle := procCPU(single.pid()) - c0
		time.Sleep(3 * time.Second) // the window's runs end
		cpuSingleSettled := procCPU(single.pid()) - c0
		single.signal(syscall.SIGTERM)
		if err := single.exit(30 * time.Second); err != nil {
			b.Errorf("SQLite daemon: %v", err)
		}
		sq, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"), sqlite.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		var late2 []time.Duration
		fired2 := 0
		for q := (store.Query{}); ; {
			page, err := sq.Runs(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range page {
				if !r.Slot.Before(base2) && r.Slot.Before(base2.Add(window)) && !r.Posted.IsZero() {
					fired2++
					late2 = append(late2, r.Posted.Sub(r.Slot))
				}
			}
			if len(page) < q.PageSize() {
				break
			}
			q.After = store.CursorOf(page[len(page)-1])
		}
		sq.Close()

		perHA := cpuHA / time.Duration(fired)
		perSingle := cpuSingle / time.Duration(max(fired2, 1))
		stmts := stmts1 - stmts0
		// (Benchmark output is cut after ten lines.)
		b.Logf(`
%d jobs, %d runs/s for %s; 3 replicas on PostgreSQL (lease_ttl 15s) through counting proxies, launched at once, scheduling after %s
runs fired in the window: %d (%d slots recorded, %v); by replica (owner) %v
lateness slot -> POST (posted - slot): p50 %s, p99 %s (target p99 < 100ms)
database per run: %.2f round trips (%d Query messages through the proxies from the first slot until every run ended, %s after the window), %.0f bytes both ways; %.2f transactions (pg_stat_database xact_commit+xact_rollback %d up to the replicas' exit, when the proxies had counted %d Query messages)
CPU per fired run, 3 replicas together: %s in the window, %s until settled (RSS MB %v)
CPU per fired run, single SQLite daemon: %s in the window, %s with 3 s more (%d fired, lateness p50 %s, p99 %s; scheduling after %s)
3 replicas / single daemon: %.2f`,
			jobs, rate, window, strings.Join(startups, ", "),
			fired, len(slots), statuses, perOwner,
			p50.Round(time.Microsecond), p99.Round(time.Microsecond),
			float64(stmts)/float64(fired), stmts, settledAt.Round(100*time.Millisecond), float64(bytes1-bytes0)/float64(fired),
			float64(xact1-xact0)/float64(fired), xact1-xact0, stmtsExit-stmts0,
			perHA.Round(time.Microsecond), (cpuSettled / time.Duration(fired)).Round(time.Microsecond), rss,
			perSingle.Round(time.Microsecond), (cpuSingleSettled / time.Duration(max(fired2, 1))).Round(time.Microsecond), fired2,
			haPercentile(late2, 50).Round(time.Microsecond), haPercentile(late2, 99).Round(time.Microsecond), startSingle.Round(100*time.Millisecond),
			float64(perHA)/float64(perSingle))
		b.ReportMetric(float64(p99)/1e6, "p99-lateness-ms")
		b.ReportMetric(float64(stmts)/float64(fired), "db-roundtrips/run")
		b.ReportMetric(float64(bytes1-bytes0)/float64(fired), "db-bytes/run")
		b.ReportMetric(float64(perHA)/1e3, "cpu-us/run-3replicas")
		b.ReportMetric(float64(perSingle)/1e3, "cpu-us/run-sqlite")
	}
}
