package scheduler

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// DST says what a wall-clock schedule does when the clock skips or repeats.
type DST struct {
	// Gap: "shift" (default) runs a time that falls in a spring-forward
	// gap at the first instant after it; "skip" drops it.
	Gap string
	// Repeat: "first" (default) runs a repeated fall-back time once, at its
	// first occurrence; "both" runs it twice.
	Repeat string
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
	if dst.Gap == "" {
		dst.Gap = "shift"
	}
	if dst.Repeat == "" {
		dst.Repeat = "first"
	}
	if dst.Gap != "shift" && dst.Gap != "skip" {
		return nil, fmt.Errorf("dst.gap %q: use shift or skip", dst.Gap)
	}
	if dst.Repeat != "first" && dst.Repeat != "both" {
		return nil, fmt.Errorf("dst.repeat %q: use first or both", dst.Repeat)
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
	loc := s.Location
	local := after.In(loc)
	// Civil dates, from the day before (a shifted or repeated slot of the
	// previous day can still lie ahead).
	day := time.Date(local.Year(), local.Month(), local.Day()-1, 12, 0, 0, 0, time.UTC)
	for ; !day.After(limit.Add(48 * time.Hour)); day = day.AddDate(0, 0, 1) {
		if !s.dayMatches(day) {
			continue
		}
		if slot, ok := s.firstOnDay(day, after); ok {
			if slot.Time.After(limit) {
				return Slot{}, false
			}
			return slot, true
		}
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

// firstOnDay returns the earliest slot after t among the day's times.
// Wall times map to instants in order, except that DST moves some by at
// most a few hours; so once a candidate is found, times more than 4 hours
// of wall clock later cannot come first, and the walk stops.
func (s *Schedule) firstOnDay(day, after time.Time) (Slot, bool) {
	sp := s.spec
	var cands []Slot
	var firstWall time.Time
	for h := 0; h < 24; h++ {
		if 1<<uint(h)&sp.Hour == 0 {
			continue
		}
		for m := 0; m < 60; m++ {
			if 1<<uint(m)&sp.Minute == 0 {
				continue
			}
			for sec := 0; sec < 60; sec++ {
				if 1<<uint(sec)&sp.Second == 0 {
					continue
				}
				wall := time.Date(day.Year(), day.Month(), day.Day(), h, m, sec, 0, time.UTC)
				if !firstWall.IsZero() && wall.Sub(firstWall) > 4*time.Hour {
					return pick(cands), true
				}
				for _, c := range s.resolve(day.Year(), day.Month(), day.Day(), h, m, sec) {
					if c.Time.After(after) {
						cands = append(cands, c)
						if firstWall.IsZero() {
							firstWall = wall
						}
					}
				}
			}
		}
	}
	if len(cands) == 0 {
		return Slot{}, false
	}
	return pick(cands), true
}

// pick returns the earliest candidate; gap times shifted onto one instant
// are merged into that one slot, and its note says so.
func pick(cands []Slot) Slot {
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Time.Before(cands[j].Time) })
	first := cands[0]
	n := 0
	for _, c := range cands {
		if c.Time.Equal(first.Time) {
			n++
		}
	}
	if n > 1 {
		first.Note += fmt.Sprintf("; %d times merged", n)
	}
	return first
}

// resolve maps a wall-clock time to its instants under the DST policy.
func (s *Schedule) resolve(y int, mo time.Month, d, h, mi, sec int) []Slot {
	loc := s.Location
	wall := time.Date(y, mo, d, h, mi, sec, 0, time.UTC) // the wall time, as if UTC
	var occ []time.Time
	seen := map[int]bool{}
	for _, probe := range []time.Time{wall.Add(-14 * time.Hour), wall.Add(14 * time.Hour)} {
		_, off := probe.In(loc).Zone()
		if seen[off] {
			continue
		}
		seen[off] = true
		inst := wall.Add(-time.Duration(off) * time.Second)
		l := inst.In(loc)
		if l.Year() == y && l.Month() == mo && l.Day() == d && l.Hour() == h && l.Minute() == mi && l.Second() == sec {
			occ = append(occ, inst.UTC())
		}
	}
	sort.Slice(occ, func(i, j int) bool { return occ[i].Before(occ[j]) })
	label := fmt.Sprintf("%02d:%02d", h, mi)
	if sec != 0 {
		label += fmt.Sprintf(":%02d", sec)
	}
	gap, repeat := s.DST.Gap, s.DST.Repeat
	if !s.Wall {
		gap, repeat = "skip", "both" // absolute time
	}
	switch len(occ) {
	case 1:
		return []Slot{{Time: occ[0]}}
	case 0: // inside a spring-forward gap
		if gap == "skip" {
			return nil
		}
		// The first valid instant after the gap: where the later zone
		// period begins.
		_, off := wall.Add(-14 * time.Hour).In(loc).Zone()
		after := wall.Add(-time.Duration(off) * time.Second)
		start, _ := after.In(loc).ZoneBounds()
		return []Slot{{Time: start.UTC(), Note: "shifted from " + label + " (DST gap)"}}
	default: // a fall-back repeat
		if repeat == "both" {
			if !s.Wall {
				return []Slot{{Time: occ[0]}, {Time: occ[1]}}
			}
			return []Slot{{Time: occ[0], Note: "first " + label + " (DST repeat)"}, {Time: occ[1], Note: "second " + label + " (DST repeat)"}}
		}
		return []Slot{{Time: occ[0], Note: "first of two " + label + " (DST repeat)"}}
	}
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
