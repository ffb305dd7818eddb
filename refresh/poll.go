package refresh

import "time"

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

// Adaptive polls soon after the start (to catch instant failures and the
// history lag), then, when the dataset's recent durations give an expected
// end, coasts to just before the fastest recent run would have ended and
// polls densely (2% of the expected duration) until the refresh ends,
// loosening by a tenth of any overrun. Without history it backs off
// geometrically (a sixth of the elapsed time), so the detection lag stays
// a small share of the duration. Every interval stays within [Min, Max].
type Adaptive struct {
	Min, Max time.Duration
	// Expected is the median recent duration (0: unknown); Fastest is the
	// shortest recent one.
	Expected, Fastest time.Duration
}

// Next implements Poller.
func (a Adaptive) Next(elapsed time.Duration, polls int) time.Duration {
	clamp := func(d time.Duration) time.Duration { return min(max(d, a.Min), a.Max) }
	if polls == 0 {
		return a.Min
	}
	if a.Expected <= 0 {
		return clamp(elapsed / 6)
	}
	fastest := a.Fastest
	if fastest <= 0 || fastest > a.Expected {
		fastest = a.Expected
	}
	if earliest := fastest * 95 / 100; elapsed < earliest {
		return clamp(earliest - elapsed)
	}
	dense := a.Expected / 50
	if over := elapsed - a.Expected; over > 0 {
		dense += over / 10
	}
	return clamp(dense)
}
