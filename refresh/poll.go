package refresh

import (
	"slices"
	"time"
)

// Poller decides how long to wait before the next poll of a refresh that
// has run for elapsed and been polled polls times.
type Poller interface {
	Next(elapsed time.Duration, polls int) time.Duration
}

// Fixed polls at one interval (what the peers do: semantic-link-labs 3 s,
// Dagster 5 s, Airflow 60 s). It exists for comparison.
type Fixed time.Duration

// Next returns the interval.
func (f Fixed) Next(time.Duration, int) time.Duration { return time.Duration(f) }

// Adaptive polls by what the dataset's recent durations say. With them
// (Expected > 0) it looks once soon after the start (instant failures, the
// history's lag), coasts to just before the shortest run they make
// plausible (the fastest less the spread between fastest and slowest), then
// polls densely, every 1.8% of the time elapsed, so that the detection lag
// stays within 2% of the refresh's duration even with 10% jitter and a
// refresh that runs long. Without history it polls like a fixed 5 s poller
// at first and backs off to a sixth of the elapsed time: never more polls
// than a fixed 5 s poller. Every interval stays within [Min, Max].
type Adaptive struct {
	Min, Max time.Duration
	// Expected is the median recent duration (0: no history); Fastest and
	// Slowest bound the recent ones.
	Expected, Fastest, Slowest time.Duration
}

// noHistoryFloor is the shortest interval without history: a fixed 5 s
// poller's, which peers use and which Power BI tolerates.
const noHistoryFloor = 5 * time.Second

// Next implements Poller.
func (a Adaptive) Next(elapsed time.Duration, polls int) time.Duration {
	clamp := func(d time.Duration) time.Duration { return min(max(d, a.Min), a.Max) }
	if a.Expected <= 0 {
		return clamp(max(elapsed/6, noHistoryFloor))
	}
	if polls == 0 {
		return a.Min
	}
	fastest := a.Fastest
	if fastest <= 0 || fastest > a.Expected {
		fastest = a.Expected
	}
	spread := max(a.Slowest-fastest, 0)
	if earliest := min(fastest*95/100, fastest-spread); elapsed < earliest {
		return clamp(earliest - elapsed)
	}
	return clamp(elapsed * 18 / 1000)
}

// expectation is what recent durations say about the next refresh.
type expectation struct{ Expected, Fastest, Slowest time.Duration }

func newExpectation(durs []time.Duration) expectation {
	if len(durs) == 0 {
		return expectation{}
	}
	s := append([]time.Duration(nil), durs...)
	slices.Sort(s)
	return expectation{Expected: s[len(s)/2], Fastest: s[0], Slowest: s[len(s)-1]}
}

func (e expectation) poller(p Policy) Adaptive {
	return Adaptive{Min: p.MinInterval, Max: p.MaxInterval, Expected: e.Expected, Fastest: e.Fastest, Slowest: e.Slowest}
}
