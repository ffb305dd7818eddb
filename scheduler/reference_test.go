package scheduler

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
)

// refNext is the first version's slot search, kept as a reference: it
// resolves every wall time of each day one by one (slow, and obviously
// right), and must agree with Next everywhere.
func (s *Schedule) refNext(after time.Time) (Slot, bool) {
	limit := after.Add(horizon)
	local := after.In(s.Location)
	day := time.Date(local.Year(), local.Month(), local.Day()-1, 12, 0, 0, 0, time.UTC)
	for ; !day.After(limit.Add(48 * time.Hour)); day = day.AddDate(0, 0, 1) {
		if !s.dayMatches(day) {
			continue
		}
		if slot, ok := s.refFirstOnDay(day, after); ok {
			if slot.Time.After(limit) {
				return Slot{}, false
			}
			return slot, true
		}
	}
	return Slot{}, false
}

func (s *Schedule) refFirstOnDay(day, after time.Time) (Slot, bool) {
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
					return refPick(cands), true
				}
				for _, c := range s.refResolve(day.Year(), day.Month(), day.Day(), h, m, sec) {
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
	return refPick(cands), true
}

func refPick(cands []Slot) Slot {
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

func (s *Schedule) refResolve(y int, mo time.Month, d, h, mi, sec int) []Slot {
	loc := s.Location
	wall := time.Date(y, mo, d, h, mi, sec, 0, time.UTC)
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
	lbl := label(h*3600 + mi*60 + sec)
	gap, repeat := s.DST.Gap, s.DST.Repeat
	if !s.Wall {
		gap, repeat = pbirefresh.GapSkip, pbirefresh.RepeatBoth
	}
	switch len(occ) {
	case 1:
		return []Slot{{Time: occ[0]}}
	case 0:
		if gap == pbirefresh.GapSkip {
			return nil
		}
		_, off := wall.Add(-14 * time.Hour).In(loc).Zone()
		after := wall.Add(-time.Duration(off) * time.Second)
		start, _ := after.In(loc).ZoneBounds()
		return []Slot{{Time: start.UTC(), Note: "shifted from " + lbl + " (DST gap)"}}
	default:
		if repeat == pbirefresh.RepeatBoth {
			if !s.Wall {
				return []Slot{{Time: occ[0]}, {Time: occ[1]}}
			}
			return []Slot{{Time: occ[0], Note: "first " + lbl + " (DST repeat)"}, {Time: occ[1], Note: "second " + lbl + " (DST repeat)"}}
		}
		return []Slot{{Time: occ[0], Note: "first of two " + lbl + " (DST repeat)"}}
	}
}

// TestNextAgreesWithTheReference compares Next with the reference on
// random schedules, zones with odd transitions, and instants near them.
func TestNextAgreesWithTheReference(t *testing.T) {
	zones := []string{"UTC", "America/New_York", "Europe/Berlin", "America/Santiago", "Australia/Lord_Howe",
		"Pacific/Chatham", "Asia/Tehran", "Africa/Casablanca", "America/Sao_Paulo", "Europe/London", "Asia/Kolkata", "America/Havana"}
	exprs := []string{"0 0 * * *", "30 2 * * *", "*/20 2 * * *", "0 * * * *", "*/30 * * * *", "15 1,2,3 * * *", "45 1 * * *",
		"0 0 29 2 *", "0 9-17 * * 1-5", "30 23 * * *", "0 30 1 * * *", "*/15 * 2 * * *", "0 0 1 * *", "10 0,1 * * 0",
		"@daily", "@hourly", "@monthly", "5 4 * * 6", "59 23 31 12 *", "0 2 8-14 3 0"}
	rng := rand.New(rand.NewPCG(1, 2))
	checked := 0
	for _, zn := range zones {
		loc, err := time.LoadLocation(zn)
		if err != nil {
			t.Fatal(err)
		}
		// Instants around this zone's transitions from 2024 to 2028, and
		// random ones.
		var probes []time.Time
		for tt := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC); tt.Year() < 2029; {
			_, end := tt.In(loc).ZoneBounds()
			if end.IsZero() {
				break
			}
			for _, d := range []time.Duration{-26 * time.Hour, -3 * time.Hour, -90 * time.Minute, -time.Second, 0, time.Minute, 2 * time.Hour} {
				probes = append(probes, end.Add(d))
			}
			tt = end.Add(time.Second)
		}
		for i := 0; i < 30; i++ {
			probes = append(probes, time.Unix(1704067200+rng.Int64N(5*365*86400), int64(rng.IntN(1e9))))
		}
		// Past the zone tables, where Go's ZoneBounds misbehaves at the
		// end of leap years.
		for _, d := range []int{29, 30, 31} {
			probes = append(probes, time.Date(2040, 12, d, 13, 0, 0, 0, time.UTC), time.Date(2044, 12, d, 23, 30, 0, 0, time.UTC))
		}
		for _, expr := range exprs {
			for _, dst := range []DST{{}, {Gap: pbirefresh.GapSkip, Repeat: pbirefresh.RepeatBoth}} {
				s, err := Parse(expr, loc, dst)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range probes {
					want, wok := s.refNext(p)
					got, gok := s.Next(p)
					checked++
					if wok != gok || !want.Time.Equal(got.Time) || want.Note != got.Note {
						t.Fatalf("%s %q %+v after %s:\n got  %v %v %q\n want %v %v %q", zn, expr, dst, p.In(loc), gok, got.Time.In(loc), got.Note, wok, want.Time.In(loc), want.Note)
					}
				}
			}
		}
	}
	t.Logf("%d slots agree", checked)
}

// BenchmarkSlots prints the cost of one slot for a table of schedule
// shapes, with the first version's search (the reference) measured in the
// same run as the baseline:
//
//	go test ./scheduler -run '^$' -bench Slots -benchtime 1x
func BenchmarkSlots(b *testing.B) {
	ny, _ := time.LoadLocation("America/New_York")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	spring := time.Date(2026, 3, 8, 0, 0, 0, 0, ny) // the day of New York's gap
	for _, c := range []struct {
		name, expr string
		loc        *time.Location
		from       time.Time
	}{
		{"per-second UTC", "* * * * * *", time.UTC, time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)},
		{"per-second, New York gap day", "* * * * * *", ny, spring},
		{"per-minute", "* * * * *", time.UTC, spring},
		{"hourly, New York", "0 * * * *", ny, spring},
		{"daily 02:30, New York (DST)", "30 2 * * *", ny, time.Date(2026, 1, 1, 0, 0, 0, 0, ny)},
		{"daily 02:30, Berlin (DST)", "30 2 * * *", berlin, time.Date(2026, 1, 1, 0, 0, 0, 0, berlin)},
		{"monthly", "0 6 1 * *", berlin, spring},
		{"leap day", "0 0 29 2 *", berlin, spring},
	} {
		s, err := Parse(c.expr, c.loc, DST{})
		if err != nil {
			b.Fatal(err)
		}
		measure := func(next func(time.Time) (Slot, bool), slots int) time.Duration {
			at := c.from
			start := time.Now()
			for i := 0; i < slots; i++ {
				sl, ok := next(at)
				if !ok {
					b.Fatal("no slot")
				}
				at = sl.Time
			}
			return time.Since(start) / time.Duration(slots)
		}
		n := 2000
		if c.name == "leap day" {
			n = 20
		}
		fast := measure(s.Next, n)
		ref := measure(s.refNext, max(n/100, 3))
		fmt.Printf("%-30s %-14q %10s/slot   reference %12s/slot   %8.0fx faster\n", c.name, c.expr, fast, ref, float64(ref)/float64(fast))
	}
}
