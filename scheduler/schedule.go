package scheduler

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/pbirefresh/pbirefresh"
)

// DST says what a wall-clock schedule does when the clock skips or repeats.
type DST struct {
	// Gap: shift (the default, also for "") runs a time that falls in a
	// spring-forward gap at the first instant after it; skip drops it.
	Gap pbirefresh.DSTGap
	// Repeat: first (the default, also for "") runs a repeated fall-back
	// time once, at its first occurrence; both runs it twice.
	Repeat pbirefresh.DSTRepeat
}

// Schedule is a parsed cron expression in a time zone with its DST policy.
type Schedule struct {
	Expr     string
	Location *time.Location
	DST      DST
	// Wall is true for wall-clock schedules (an hour field of explicit
	// values, or @daily and longer descriptors): they follow the DST
	// policy. Interval-like ones (hour field * or */n, @hourly, @every)
	// follow absolute time: nothing runs inside a gap, a repeated hour runs
	// twice.
	Wall bool

	spec  *cron.SpecSchedule
	every time.Duration // @every: slots are multiples of it since the Unix epoch
}

// Slot is one scheduled instant.
type Slot struct {
	Time time.Time // UTC; the run's identity with the job's name
	// Note explains a DST adjustment: "shifted from 02:30 (DST gap)",
	// "first of two 01:30 (DST repeat)", "second 01:30 (DST repeat)".
	Note string
}

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// horizon bounds the search for a next slot: Feb 29 can be 8 years apart
// (2096 to 2104).
const horizon = 9 * 366 * 24 * time.Hour

// Parse parses expr (5 fields, an optional leading seconds field,
// @daily-style descriptors, @every) for loc. It rejects time-zone prefixes
// (use the job's timezone), and schedules that never fire.
func Parse(expr string, loc *time.Location, dst DST) (s *Schedule, err error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, errors.New("the schedule is empty")
	}
	if up := strings.ToUpper(expr); strings.HasPrefix(up, "TZ=") || strings.HasPrefix(up, "CRON_TZ=") {
		return nil, errors.New("a time zone prefix is not allowed in the schedule; set the job's timezone instead")
	}
	dst.Gap = cmp.Or(dst.Gap, pbirefresh.GapShift)
	dst.Repeat = cmp.Or(dst.Repeat, pbirefresh.RepeatFirst)
	if !pbirefresh.Valid(dst.Gap, pbirefresh.GapPolicies()) {
		return nil, fmt.Errorf("dst.gap %q: use %s", dst.Gap, pbirefresh.OneOf(pbirefresh.GapPolicies()))
	}
	if !pbirefresh.Valid(dst.Repeat, pbirefresh.RepeatPolicies()) {
		return nil, fmt.Errorf("dst.repeat %q: use %s", dst.Repeat, pbirefresh.OneOf(pbirefresh.RepeatPolicies()))
	}
	defer func() {
		// robfig/cron has panicked on malformed input before (#554); a bad
		// schedule must be an error, never a crash.
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("cannot parse %q: %v", expr, r)
		}
	}()
	parsed, err := parser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("cannot parse %q: %v", expr, err)
	}
	s = &Schedule{Expr: expr, Location: loc, DST: dst}
	switch p := parsed.(type) {
	case cron.ConstantDelaySchedule:
		// robfig rounds below 1s up to 1s silently; say so instead.
		if d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(expr, "@every"))); err != nil || d < time.Second || d%time.Second != 0 {
			return nil, errors.New("@every needs a whole number of seconds, at least 1s")
		}
		s.every = p.Delay
		return s, nil
	case *cron.SpecSchedule:
		s.spec = p
	default:
		return nil, fmt.Errorf("cannot use schedule %q", expr)
	}
	s.Wall = isWall(expr)
	// A schedule that can never fire (0 0 30 2 *) is an error, not a job
	// that silently never runs.
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, ok := s.next(start, start.Add(horizon)); !ok {
		return nil, fmt.Errorf("%q never fires (no such date)", expr)
	}
	return s, nil
}

// isWall tells wall-clock schedules from interval-like ones by the hour
// field as written.
func isWall(expr string) bool {
	if strings.HasPrefix(expr, "@") {
		return expr != "@hourly"
	}
	f := strings.Fields(expr)
	hour := f[1]
	if len(f) == 6 {
		hour = f[2]
	}
	return !strings.HasPrefix(hour, "*") && !strings.HasPrefix(hour, "?")
}

// Next returns the first slot strictly after t.
func (s *Schedule) Next(t time.Time) (Slot, bool) {
	return s.next(t, t.Add(horizon))
}

func (s *Schedule) next(after, limit time.Time) (Slot, bool) {
	if s.every > 0 {
		k := after.Unix()/int64(s.every/time.Second) + 1
		return Slot{Time: time.Unix(k*int64(s.every/time.Second), 0).UTC()}, true
	}
	local := after.In(s.Location)
	// Civil dates, from the day before (a shifted or repeated slot of the
	// previous day can still lie ahead). Months that cannot match are
	// skipped whole, so a leap-day schedule costs a few hundred steps, not
	// thousands.
	day := time.Date(local.Year(), local.Month(), local.Day()-1, 0, 0, 0, 0, time.UTC)
	end := limit.Add(48 * time.Hour)
	for !day.After(end) {
		if 1<<uint(day.Month())&s.spec.Month == 0 {
			day = time.Date(day.Year(), day.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if s.dayMatches(day) {
			if slot, ok := s.firstOnDay(day, after); ok {
				if slot.Time.After(limit) {
					return Slot{}, false
				}
				return slot, true
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return Slot{}, false
}

func (s *Schedule) dayMatches(day time.Time) bool {
	sp := s.spec
	if 1<<uint(day.Month())&sp.Month == 0 {
		return false
	}
	domMatch := 1<<uint(day.Day())&sp.Dom > 0
	dowMatch := 1<<uint(day.Weekday())&sp.Dow > 0
	const star = 1 << 63
	if sp.Dom&star > 0 || sp.Dow&star > 0 {
		return domMatch && dowMatch
	}
	return domMatch || dowMatch // Vixie cron: both restricted means either
}

// period is a stretch of the zone with one UTC offset, and the seconds of
// the civil day's wall clock that fall in it: [wallFrom, wallTo).
type period struct {
	start          time.Time // when the period begins (a transition)
	offset         int       // seconds east of UTC
	wallFrom, wall int
}

const daySeconds = 24 * 60 * 60

// periods lists the zone periods whose wall clock touches the civil day
// (day is its 00:00 written as if UTC), in time order.
func (s *Schedule) periods(day time.Time) []period {
	var out []period
	// No zone is more than 14 hours from UTC.
	t, stop := day.Add(-14*time.Hour), day.Add(38*time.Hour)
	for t.Before(stop) {
		l := t.In(s.Location)
		_, off := l.Zone()
		start, end := l.ZoneBounds()
		if !end.IsZero() && !end.After(t) {
			// Past the zone's table, Go's ZoneBounds can answer t itself
			// as the end (seen on Dec 31 of leap years): probe on by the
			// hour; periods with one offset merge below.
			end = t.Add(time.Hour)
		}
		wallFrom, wallTo := -daySeconds, 2*daySeconds
		if !start.IsZero() {
			wallFrom = int(start.Add(time.Duration(off)*time.Second).Sub(day) / time.Second)
		}
		if !end.IsZero() {
			wallTo = int(end.Add(time.Duration(off)*time.Second).Sub(day) / time.Second)
		}
		if n := len(out); n > 0 && out[n-1].offset == off {
			out[n-1].wall = max(out[n-1].wall, wallTo) // the same offset: one period
		} else {
			out = append(out, period{start: start, offset: off, wallFrom: wallFrom, wall: wallTo})
		}
		if end.IsZero() {
			break
		}
		t = end
	}
	return out
}

// firstOnDay returns the earliest slot after t among the civil day's
// times. Within one zone period wall times map to instants in order, so
// the first match in each period is found directly; walls in a
// spring-forward gap (between periods) and repeated walls (in two periods)
// follow the DST policy. Cost: a few dozen steps whatever the schedule.
func (s *Schedule) firstOnDay(day, after time.Time) (Slot, bool) {
	ps := s.periods(day)
	gap, repeat := s.DST.Gap, s.DST.Repeat
	if !s.Wall {
		gap, repeat = pbirefresh.GapSkip, pbirefresh.RepeatBoth // absolute time
	}
	var best Slot
	found, merged := false, 0
	offer := func(c Slot, n int) {
		switch {
		case !found || c.Time.Before(best.Time):
			best, found, merged = c, true, n
		case c.Time.Equal(best.Time):
			merged += n // later in wall order: best keeps its note
		}
	}
	for i, p := range ps {
		lo, hi := max(p.wallFrom, 0), min(p.wall, daySeconds)
		prevEnd := math.MinInt
		if i > 0 {
			prevEnd = ps[i-1].wall
		}
		nextFrom := math.MaxInt
		if i+1 < len(ps) {
			nextFrom = ps[i+1].wallFrom
		}
		// A spring-forward gap before this period: walls [prevEnd, wallFrom).
		if gLo, gHi := max(prevEnd, 0), min(p.wallFrom, daySeconds); i > 0 && gLo < gHi && gap == pbirefresh.GapShift && p.start.After(after) {
			if w := s.firstMatch(gLo, gHi); w >= 0 {
				n := s.countMatches(gLo, gHi)
				offer(Slot{Time: p.start.UTC(), Note: "shifted from " + label(w) + " (DST gap)"}, n)
			}
		}
		if repeat == pbirefresh.RepeatFirst && prevEnd > lo {
			lo = prevEnd // second occurrences of repeated walls do not run
		}
		// Instants after t: wall - offset > after.
		if d := after.Add(time.Duration(p.offset) * time.Second).Sub(day); d >= 0 {
			lo = max(lo, int(d/time.Second)+1)
		}
		w := s.firstMatch(lo, hi)
		if w < 0 {
			continue
		}
		c := Slot{Time: day.Add(time.Duration(w-p.offset) * time.Second)}
		if s.Wall {
			switch {
			case w < prevEnd: // repeat both: the second occurrence
				c.Note = "second " + label(w) + " (DST repeat)"
			case w >= nextFrom && repeat == pbirefresh.RepeatBoth:
				c.Note = "first " + label(w) + " (DST repeat)"
			case w >= nextFrom:
				c.Note = "first of two " + label(w) + " (DST repeat)"
			}
		}
		offer(c, 1)
	}
	if found && merged > 1 {
		best.Note += fmt.Sprintf("; %d times merged", merged)
	}
	return best, found
}

// firstMatch returns the first second of the day in [lo, hi) whose hour,
// minute and second fields match, or -1.
func (s *Schedule) firstMatch(lo, hi int) int {
	if lo >= hi {
		return -1
	}
	sp := s.spec
	for h := lo / 3600; h < 24 && h*3600 < hi; h++ {
		if 1<<uint(h)&sp.Hour == 0 {
			continue
		}
		m0 := 0
		if h == lo/3600 {
			m0 = lo % 3600 / 60
		}
		for m := m0; m < 60; m++ {
			if 1<<uint(m)&sp.Minute == 0 {
				continue
			}
			s0 := 0
			if h == lo/3600 && m == m0 {
				s0 = lo % 60
			}
			for sec := s0; sec < 60; sec++ {
				if 1<<uint(sec)&sp.Second != 0 {
					if v := h*3600 + m*60 + sec; v < hi {
						return v
					}
					return -1
				}
			}
		}
	}
	return -1
}

// countMatches counts the matching seconds in [lo, hi) (a gap: at most a
// few hours).
func (s *Schedule) countMatches(lo, hi int) int {
	n := 0
	for w := s.firstMatch(lo, hi); w >= 0; w = s.firstMatch(w+1, hi) {
		n++
	}
	return n
}

// label writes a second of the day as the note shows it: 02:30, or
// 02:30:15 with seconds.
func label(w int) string {
	l := fmt.Sprintf("%02d:%02d", w/3600, w%3600/60)
	if w%60 != 0 {
		l += fmt.Sprintf(":%02d", w%60)
	}
	return l
}

// FixedJitter is a stable offset in [0, max) derived from the job's name.
func FixedJitter(name string, max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	return time.Duration(h.Sum64() % uint64(max))
}
