package refresh_test

import (
	"context"
	"fmt"
	"github.com/pbirefresh/pbirefresh"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh/emulator"
	"github.com/pbirefresh/pbirefresh/refresh"
)

// population: n typical durations, log-uniform from 10 s to 2 h.
func population(n int) []time.Duration {
	rng := rand.New(rand.NewPCG(42, 42))
	lo, hi := math.Log(10), math.Log(7200)
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(math.Exp(lo+rng.Float64()*(hi-lo)) * float64(time.Second))
	}
	return out
}

// followScenario: one Premium workspace, a dataset per typical duration;
// each run lasts its typical duration ±10%.
func followScenario(typical []time.Duration) func(*emulator.Scenario) {
	return func(sc *emulator.Scenario) {
		sc.Settings.TokenLifetime = emulator.Duration(1000 * time.Hour)
		ws := &sc.Workspaces[0]
		ws.Datasets = nil
		for i, d := range typical {
			ws.Datasets = append(ws.Datasets, emulator.Dataset{
				ID: fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", 700000+i), Name: fmt.Sprintf("m%d", i),
				Behaviour: emulator.Behaviour{Duration: emulator.DurationDist{Min: emulator.Duration(d * 9 / 10), Max: emulator.Duration(d * 11 / 10), Dist: "uniform"}},
			})
		}
	}
}

type followStats struct {
	name                   string
	polls                  []float64 // per refresh, in population order
	meanPolls, medianPolls float64
	medianLag, p90Lag      time.Duration
	withinBound            float64 // share of refreshes with lag <= max(2s, 2% of duration)
}

// maxPollRatio is the largest ratio of polls, refresh by refresh.
func (f followStats) maxPollRatio(other followStats) float64 {
	m := 0.0
	for i := range f.polls {
		m = max(m, f.polls[i]/other.polls[i])
	}
	return m
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// runPolicy seeds each dataset's history with 5 earlier refreshes (none
// when fresh), then follows one refresh per dataset with the policy.
func runPolicy(b *testing.B, name string, typical []time.Duration, p refresh.Policy, fresh bool) followStats {
	h := setup(b, followScenario(typical))
	ctx := context.Background()
	for i := range typical {
		id := fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", 700000+i)
		for k := 0; k < 5 && !fresh; k++ {
			if _, err := h.emu.StartExternalRefresh(id, "Scheduled", 0); err != nil {
				b.Fatal(err)
			}
			h.clock.Advance(typical[i]*12/10 + time.Second)
		}
	}
	var polls, lagRatio []float64
	var lags []time.Duration
	for i := range typical {
		id := fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", 700000+i)
		res := h.client.Run(ctx, ds(salesWS, id), enhanced(), p, nil)
		if res.Outcome != pbirefresh.Completed || res.ServiceEnd.IsZero() {
			b.Fatalf("%s: dataset %d: %+v", name, i, res)
		}
		lag := res.End.Sub(res.ServiceEnd)
		dur := res.ServiceEnd.Sub(res.ServiceStart)
		polls = append(polls, float64(res.Polls))
		lags = append(lags, lag)
		lagRatio = append(lagRatio, float64(lag)/float64(max(2*time.Second, dur/50)))
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	within := 0
	for _, r := range lagRatio {
		if r <= 1 {
			within++
		}
	}
	sum := 0.0
	for _, p := range polls {
		sum += p
	}
	return followStats{name: name, polls: polls, meanPolls: sum / float64(len(polls)), medianPolls: median(polls),
		medianLag: lags[len(lags)/2], p90Lag: lags[len(lags)*9/10], withinBound: float64(within) / float64(len(lagRatio))}
}

// shipped are the poll bounds a job gets when its config says nothing
// (configs.DefaultJobSettings; a test there keeps the two equal).
var shipped = struct{ min, max time.Duration }{time.Second, 2 * time.Minute}

// BenchmarkFollowing compares, on one population of emulated refreshes
// (10 s to 2 h, log-uniform, ±10% per run, fake clock), the adaptive
// poller with the shipped defaults against the fixed intervals peers use,
// on datasets with five earlier refreshes in their history and on
// datasets without history. Run with -benchtime=1x.
func BenchmarkFollowing(b *testing.B) {
	typical := population(200)
	for i := 0; i < b.N; i++ {
		base := refresh.Policy{Timeout: 4 * time.Hour, OnTimeout: pbirefresh.TimeoutLeave, WhenBusy: pbirefresh.BusyFail}
		defaults := base
		defaults.MinInterval, defaults.MaxInterval = shipped.min, shipped.max
		var sb strings.Builder
		for _, fresh := range []bool{false, true} {
			var rows []followStats
			rows = append(rows, runPolicy(b, "adaptive, shipped defaults", typical, defaults, fresh))
			for _, f := range []time.Duration{3 * time.Second, 5 * time.Second, 60 * time.Second} {
				p := base
				p.Poller = refresh.Fixed(f)
				rows = append(rows, runPolicy(b, "fixed "+f.String(), typical, p, fresh))
			}
			history := "with 5 earlier refreshes in the history"
			if fresh {
				history = "without history"
			}
			fmt.Fprintf(&sb, "\n200 refreshes %s\n%-28s %10s %10s %12s %12s %16s\n", history, "policy", "mean polls", "med polls", "median lag", "p90 lag", "lag<=max(2s,2%)")
			for _, r := range rows {
				fmt.Fprintf(&sb, "%-28s %10.1f %10.0f %12s %12s %15.1f%%\n", r.name, r.meanPolls, r.medianPolls, r.medianLag.Round(10*time.Millisecond), r.p90Lag.Round(10*time.Millisecond), 100*r.withinBound)
			}
			fixed5 := rows[2]
			fmt.Fprintf(&sb, "adaptive/fixed-5s polls: mean %.3f, median %.3f; max per refresh %.3f\n", rows[0].meanPolls/fixed5.meanPolls, rows[0].medianPolls/fixed5.medianPolls, rows[0].maxPollRatio(fixed5))
			if !fresh {
				b.ReportMetric(rows[0].meanPolls/fixed5.meanPolls, "polls-vs-fixed5s")
				b.ReportMetric(100*rows[0].withinBound, "pct-within-lag-bound")
			} else {
				b.ReportMetric(rows[0].maxPollRatio(fixed5), "max-polls-vs-fixed5s-no-history")
			}
		}
		b.Log(sb.String())
	}
}

// BenchmarkCredentials runs 1,000 refreshes of one credential over 24
// emulated hours and counts token requests and Key Vault reads; the
// recipe's script makes one of each per refresh.
func BenchmarkCredentials(b *testing.B) {
	for i := 0; i < b.N; i++ {
		h := setup(b, nil)
		ctx := context.Background()
		const runs = 1000
		spacing := 24 * time.Hour / runs
		start := h.clock.Now()
		for k := 0; k < runs; k++ {
			slot := start.Add(time.Duration(k) * spacing)
			if now := h.clock.Now(); now.Before(slot) {
				h.clock.Advance(slot.Sub(now))
			}
			res := h.client.Run(ctx, ds(salesWS, salesDS), refresh.Options{}, jobPolicy(time.Hour), nil)
			if res.Outcome != pbirefresh.Completed {
				b.Fatalf("run %d: %+v", k, res)
			}
		}
		tokens, reads := 0, 0
		for _, r := range h.emu.Requests() {
			if r.Operation == "token" && r.Status == 200 && strings.Contains(r.Body, "analysis.windows.net") {
				tokens++
			}
			if r.Operation == "keyvault.get" && r.Status == 200 {
				reads++
			}
		}
		elapsed := h.clock.Now().Sub(start)
		b.Logf("%d refreshes over %s of emulated time: %d Power BI token requests (1 h tokens: at most %d), %d Key Vault reads (1 h cache: at most %d); the recipe's script: %d of each",
			runs, elapsed.Round(time.Minute), tokens, int(elapsed/time.Hour)+1, reads, int(elapsed/time.Hour)+1, runs)
		b.ReportMetric(float64(tokens), "token-requests")
		b.ReportMetric(float64(reads), "keyvault-reads")
	}
}
