package main

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/internal/windowszones"
	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/scheduler"
)

// Built-in refresh schedules as cron (docs/powerbi.md, "Built-in refresh
// schedules"): days × times in a Windows time zone become 5-field
// expressions in the IANA zone of that id.
//
// A job has one expression, and one expression is a product: its minutes
// run at each of its hours. Times that are not such a product (07:00,
// 12:00, 17:30) need more than one: CronOf groups the minutes by the hours
// they run at, one expression per group ("0 7,12 * * *" and
// "30 17 * * *"). With minutes limited to :00 and :30 that is at most two,
// and import writes one job per expression.
//
// DST: the expressions run under the scheduler's default policy, so a time
// that a fall-back change repeats runs once, at its first occurrence, and a
// time inside a spring-forward gap runs just after the gap (02:00 and 02:30
// both at 03:00). Power BI documents neither case; only times within the
// hour that a change skips or repeats can differ from what it does.

// weekdayNames are the service's day names, indexed by time.Weekday.
var weekdayNames = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}

var scheduleTimeRE = regexp.MustCompile(`^([01]?[0-9]|2[0-3]):([0-5][0-9])$`)

// errNoTimes: an enabled schedule without times refreshes once a day at a
// time Power BI picks, which no expression can follow.
var errNoTimes = errors.New("the Power BI schedule has no times (Power BI then picks one time a day itself)")

// CronOf returns the cron expressions and the IANA time zone that start
// refreshes at the built-in schedule's days and times: one expression, or
// one per group of minutes that run at the same hours. The schedule's
// enabled flag is not looked at.
func CronOf(s refresh.BuiltinSchedule) (exprs []string, zone string, err error) {
	zone, err = ianaZone(s.LocalTimeZoneID)
	if err != nil {
		return nil, "", err
	}
	if len(s.Days) == 0 {
		return nil, "", errors.New("the Power BI schedule has no days")
	}
	if len(s.Times) == 0 {
		return nil, "", errNoTimes
	}
	var days []int
	for _, d := range s.Days {
		i := slices.IndexFunc(weekdayNames[:], func(n string) bool { return strings.EqualFold(n, d) })
		if i < 0 {
			return nil, "", fmt.Errorf("the Power BI schedule has an unknown day %q", d)
		}
		days = append(days, i)
	}
	dow := "*"
	if days = sortedSet(days); len(days) < 7 {
		dow = cronList(days)
	}
	// hours[m] is the set of hours at which minute m runs, as a bit mask.
	hours := map[int]uint32{}
	for _, t := range s.Times {
		m := scheduleTimeRE.FindStringSubmatch(strings.TrimSpace(t))
		if m == nil {
			return nil, "", fmt.Errorf("the Power BI schedule has a time %q that is not hh:mm", t)
		}
		h, _ := strconv.Atoi(m[1])
		minute, _ := strconv.Atoi(m[2])
		hours[minute] |= 1 << h
	}
	// Minutes that run at the same hours share an expression.
	groups := map[uint32][]int{}
	for minute, mask := range hours {
		groups[mask] = append(groups[mask], minute)
	}
	type group struct {
		minutes, hours []int
	}
	var list []group
	for mask, mins := range groups {
		g := group{minutes: sortedSet(mins)}
		for h := range 24 {
			if mask&(1<<h) != 0 {
				g.hours = append(g.hours, h)
			}
		}
		list = append(list, g)
	}
	slices.SortFunc(list, func(a, b group) int { return a.minutes[0] - b.minutes[0] })
	for _, g := range list {
		exprs = append(exprs, fmt.Sprintf("%s %s * * %s", cronList(g.minutes), cronList(g.hours), dow))
	}
	return exprs, zone, nil
}

// ianaZone resolves a schedule's Windows time zone id; the service answers
// UTC for a schedule never configured, and so does an empty id here.
func ianaZone(windowsID string) (string, error) {
	if windowsID == "" {
		return "UTC", nil
	}
	zone, ok := windowszones.IANA(windowsID)
	if !ok {
		return "", fmt.Errorf("the Power BI schedule's time zone %q is not a Windows time zone id this version knows", windowsID)
	}
	if zone == "Etc/UTC" {
		zone = "UTC" // the same zone, as the configs write it
	}
	if _, err := time.LoadLocation(zone); err != nil {
		return "", fmt.Errorf("time zone %s (for %q): %w", zone, windowsID, err)
	}
	return zone, nil
}

func sortedSet(v []int) []int {
	slices.Sort(v)
	return slices.Compact(v)
}

// cronList writes sorted values as a cron field, runs of three or more as
// ranges: "1-5", "0,6", "7,12", "8-10,14".
func cronList(v []int) string {
	var parts []string
	for i := 0; i < len(v); {
		j := i
		for j+1 < len(v) && v[j+1] == v[j]+1 {
			j++
		}
		switch {
		case j-i >= 2:
			parts = append(parts, fmt.Sprintf("%d-%d", v[i], v[j]))
		case j == i+1:
			parts = append(parts, strconv.Itoa(v[i]), strconv.Itoa(v[j]))
		default:
			parts = append(parts, strconv.Itoa(v[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// describeDays writes a schedule's days for a comment: "every day",
// "Monday-Friday", "Saturday, Sunday", "Monday, Wednesday, Friday".
func describeDays(days []string) string {
	var set [7]bool
	n := 0
	for _, d := range days {
		if i := slices.IndexFunc(weekdayNames[:], func(w string) bool { return strings.EqualFold(w, d) }); i >= 0 && !set[i] {
			set[i] = true
			n++
		}
	}
	if n == 7 {
		return "every day"
	}
	// Monday first, as a week reads.
	var parts []string
	for i := 0; i < 7; {
		if !set[(i+1)%7] {
			i++
			continue
		}
		j := i
		for j+1 < 7 && set[(j+2)%7] {
			j++
		}
		if j-i >= 2 {
			parts = append(parts, weekdayNames[(i+1)%7]+"-"+weekdayNames[(j+1)%7])
		} else {
			for k := i; k <= j; k++ {
				parts = append(parts, weekdayNames[(k+1)%7])
			}
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// perDayLimit caps the count: past it the exact number no longer matters
// (shared capacity allows 8 a day, a built-in schedule 48 on Premium), and
// a dense schedule need not be walked for a year.
const perDayLimit = 100

// perDay returns the largest number of slots that the schedules together
// start in any 24 hours, (t-24h, t] with t within a year of from, for the
// shared-capacity quota, which counts refreshes over a rolling day in the
// emulator. It counts up to perDayLimit+1. Slots of two schedules at one
// instant count twice: they are two refreshes.
func perDay(from time.Time, scheds ...*scheduler.Schedule) int {
	end := from.AddDate(1, 0, 0)
	next := make([]time.Time, len(scheds))
	for i, s := range scheds {
		if slot, ok := s.Next(from); ok {
			next[i] = slot.Time
		}
	}
	var window []time.Time
	best := 0
	for {
		i := -1
		for k, t := range next {
			if !t.IsZero() && (i < 0 || t.Before(next[i])) {
				i = k
			}
		}
		if i < 0 || next[i].After(end) {
			return best
		}
		t := next[i]
		next[i] = time.Time{}
		if slot, ok := scheds[i].Next(t); ok {
			next[i] = slot.Time
		}
		window = append(window, t)
		for t.Sub(window[0]) >= 24*time.Hour {
			window = window[1:]
		}
		if best = max(best, len(window)); best > perDayLimit {
			return best
		}
	}
}

// withBuiltin adds what a built-in schedule starts in a day, if it is on,
// to n refreshes: both count toward the shared-capacity quota.
func withBuiltin(n int, s refresh.BuiltinSchedule) int {
	if builtinOn(s) {
		n += max(len(s.Times), 1)
	}
	return n
}

// datasetDaily is how many refreshes of one dataset can start within 24
// hours: from its jobs' schedules, and in all with its own Power BI
// schedule (both count toward shared capacity's quota).
func datasetDaily(now time.Time, jobs []*configs.Job, builtin refresh.BuiltinSchedule) (fromJobs, total int) {
	var scheds []*scheduler.Schedule
	for _, j := range jobs {
		scheds = append(scheds, j.Parsed)
	}
	fromJobs = perDay(now, scheds...)
	return fromJobs, withBuiltin(fromJobs, builtin)
}

// builtinOn reports whether a dataset's own Power BI schedule refreshes
// it: enabled, on some days. Without times it still refreshes once on
// those days, at a time of the service's choosing.
func builtinOn(s refresh.BuiltinSchedule) bool {
	return s.Enabled && len(s.Days) > 0
}

// describeBuiltin says on which days and at what times a built-in
// schedule refreshes (its zone is the caller's to add).
func describeBuiltin(s refresh.BuiltinSchedule) string {
	at := "once a day at a time the service chooses (no times set)"
	if len(s.Times) > 0 {
		at = "at " + strings.Join(s.Times, ", ")
	}
	return describeDays(s.Days) + " " + at
}
