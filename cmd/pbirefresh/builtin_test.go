package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh/emulator"
	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/scheduler"
)

func weekdays() []string { return []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"} }

func everyDay() []string {
	return []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
}

func TestBuiltinCronOf(t *testing.T) {
	for _, tc := range []struct {
		name  string
		s     refresh.BuiltinSchedule
		exprs []string
		zone  string
	}{
		{"weekdays, two minutes", refresh.BuiltinSchedule{Days: weekdays(), Times: []string{"05:00", "17:30"}, LocalTimeZoneID: "W. Europe Standard Time"},
			[]string{"0 5 * * 1-5", "30 17 * * 1-5"}, "Europe/Berlin"},
		{"every day, one minute", refresh.BuiltinSchedule{Days: everyDay(), Times: []string{"12:00", "07:00"}, LocalTimeZoneID: "Pacific Standard Time"},
			[]string{"0 7,12 * * *"}, "America/Los_Angeles"},
		{"a product of minutes and hours", refresh.BuiltinSchedule{Days: everyDay(), Times: []string{"07:00", "07:30", "12:00", "12:30"}, LocalTimeZoneID: "Tokyo Standard Time"},
			[]string{"0,30 7,12 * * *"}, "Asia/Tokyo"},
		{"07:00, 12:00, 17:30", refresh.BuiltinSchedule{Days: weekdays(), Times: []string{"07:00", "12:00", "17:30"}, LocalTimeZoneID: "GMT Standard Time"},
			[]string{"0 7,12 * * 1-5", "30 17 * * 1-5"}, "Europe/London"},
		{"07:00, 07:30, 12:00", refresh.BuiltinSchedule{Days: []string{"Monday"}, Times: []string{"07:00", "07:30", "12:00"}, LocalTimeZoneID: "UTC"},
			[]string{"0 7,12 * * 1", "30 7 * * 1"}, "UTC"},
		{"weekend", refresh.BuiltinSchedule{Days: []string{"Sunday", "Saturday"}, Times: []string{"00:00"}, LocalTimeZoneID: "UTC"},
			[]string{"0 0 * * 0,6"}, "UTC"},
		{"runs of hours and days", refresh.BuiltinSchedule{Days: []string{"Monday", "Tuesday", "Wednesday", "Friday"}, Times: []string{"08:30", "09:30", "10:30", "14:30"}, LocalTimeZoneID: "India Standard Time"},
			[]string{"30 8-10,14 * * 1-3,5"}, "Asia/Calcutta"},
		{"no zone is UTC, day names in any case", refresh.BuiltinSchedule{Days: []string{"monday", "FRIDAY"}, Times: []string{"23:30"}},
			[]string{"30 23 * * 1,5"}, "UTC"},
		{"southern hemisphere", refresh.BuiltinSchedule{Days: everyDay(), Times: []string{"02:30"}, LocalTimeZoneID: "AUS Eastern Standard Time"},
			[]string{"30 2 * * *"}, "Australia/Sydney"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exprs, zone, err := CronOf(tc.s)
			if err != nil || !slices.Equal(exprs, tc.exprs) || zone != tc.zone {
				t.Fatalf("got %q %s %v, want %q %s", exprs, zone, err, tc.exprs, tc.zone)
			}
			loc, err := time.LoadLocation(zone)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range exprs {
				if _, err := scheduler.Parse(e, loc, scheduler.DST{}); err != nil {
					t.Fatalf("%q: %v", e, err)
				}
			}
		})
	}
}

func TestBuiltinCronOfRefuses(t *testing.T) {
	for _, tc := range []struct {
		s    refresh.BuiltinSchedule
		want string
	}{
		{refresh.BuiltinSchedule{Times: []string{"07:00"}}, "no days"},
		{refresh.BuiltinSchedule{Days: weekdays()}, "no times"},
		{refresh.BuiltinSchedule{Days: []string{"Funday"}, Times: []string{"07:00"}}, `unknown day "Funday"`},
		{refresh.BuiltinSchedule{Days: weekdays(), Times: []string{"24:00"}}, `"24:00" that is not hh:mm`},
		{refresh.BuiltinSchedule{Days: weekdays(), Times: []string{"7"}}, `"7" that is not hh:mm`},
		{refresh.BuiltinSchedule{Days: weekdays(), Times: []string{"07:00"}, LocalTimeZoneID: "Mars Standard Time"}, `"Mars Standard Time" is not a Windows time zone id`},
		{refresh.BuiltinSchedule{Days: weekdays(), Times: []string{"07:00"}, LocalTimeZoneID: "Europe/Berlin"}, "not a Windows time zone id"},
	} {
		_, _, err := CronOf(tc.s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
	if _, _, err := CronOf(refresh.BuiltinSchedule{Days: weekdays()}); !errors.Is(err, errNoTimes) {
		t.Errorf("no times: %v", err)
	}
}

func TestBuiltinDescribeDays(t *testing.T) {
	for _, tc := range []struct {
		days []string
		want string
	}{
		{everyDay(), "every day"},
		{weekdays(), "Monday-Friday"},
		{[]string{"Sunday", "Saturday"}, "Saturday, Sunday"},
		{[]string{"Monday", "Wednesday", "Friday"}, "Monday, Wednesday, Friday"},
		{[]string{"friday", "Saturday", "Sunday", "Tuesday"}, "Tuesday, Friday-Sunday"},
	} {
		if got := describeDays(tc.days); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.days, got, tc.want)
		}
	}
}

func TestBuiltinPerDay(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	parse := func(expr, zone string) *scheduler.Schedule {
		loc, _ := time.LoadLocation(zone)
		s, err := scheduler.Parse(expr, loc, scheduler.DST{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		exprs []string
		zone  string
		want  int
	}{
		{"twice on weekdays", []string{"0 5 * * 1-5", "30 17 * * 1-5"}, "Europe/Berlin", 2},
		{"every three hours", []string{"0 */3 * * *"}, "UTC", 8},
		{"two jobs at one instant are two refreshes", []string{"0 7 * * *", "0 7 * * *"}, "UTC", 2},
		{"00:00 and 23:00 in UTC", []string{"0 0,23 * * *"}, "UTC", 2},
		// The day clocks go forward has 23 hours: 00:00, 23:00 and the
		// next 00:00 fall within 24 hours.
		{"00:00 and 23:00 across a spring-forward day", []string{"0 0,23 * * *"}, "Europe/Berlin", 3},
		{"every 15 seconds stops at the cap", []string{"*/15 * * * * *"}, "UTC", perDayLimit + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ss []*scheduler.Schedule
			for _, e := range tc.exprs {
				ss = append(ss, parse(e, tc.zone))
			}
			if got := perDay(from, ss...); got != tc.want {
				t.Fatalf("%d, want %d", got, tc.want)
			}
		})
	}
	on := refresh.BuiltinSchedule{Days: weekdays(), Times: []string{"05:00", "17:30"}, Enabled: true}
	off := on
	off.Enabled = false
	if withBuiltin(5, on) != 7 || withBuiltin(5, off) != 5 {
		t.Fatal("withBuiltin")
	}
}

// slotsOf lists the instants in (from, to] at which the expressions fire.
func slotsOf(t *testing.T, exprs []string, zone string, from, to time.Time) []time.Time {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, e := range exprs {
		s, err := scheduler.Parse(e, loc, scheduler.DST{})
		if err != nil {
			t.Fatal(err)
		}
		for at := from; ; {
			slot, ok := s.Next(at)
			if !ok || slot.Time.After(to) {
				break
			}
			out = append(out, slot.Time)
			at = slot.Time
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return slices.CompactFunc(out, time.Time.Equal)
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// TestBuiltinInstantsAcrossDST: the expressions fire at the built-in
// schedule's local times on its days, before and after a change of
// offset, written out by hand.
func TestBuiltinInstantsAcrossDST(t *testing.T) {
	for _, tc := range []struct {
		name     string
		s        refresh.BuiltinSchedule
		from, to string
		want     []string
	}{
		{
			// Berlin goes from +01:00 to +02:00 on Sunday 2026-03-29.
			"W. Europe, weekdays 05:00 and 17:30",
			refresh.BuiltinSchedule{Days: weekdays(), Times: []string{"05:00", "17:30"}, LocalTimeZoneID: "W. Europe Standard Time"},
			"2026-03-26T00:00:00Z", "2026-03-31T23:59:59Z",
			[]string{"2026-03-26T04:00:00Z", "2026-03-26T16:30:00Z", "2026-03-27T04:00:00Z", "2026-03-27T16:30:00Z",
				"2026-03-30T03:00:00Z", "2026-03-30T15:30:00Z", "2026-03-31T03:00:00Z", "2026-03-31T15:30:00Z"},
		},
		{
			// Los Angeles goes from -08:00 to -07:00 on Sunday 2026-03-08 at
			// 02:00: that night's 02:00 does not exist and runs at 03:00.
			"Pacific, every day 02:00 and 18:00",
			refresh.BuiltinSchedule{Days: everyDay(), Times: []string{"18:00", "02:00"}, LocalTimeZoneID: "Pacific Standard Time"},
			"2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z",
			[]string{"2026-03-07T02:00:00Z", "2026-03-07T10:00:00Z", "2026-03-08T02:00:00Z", "2026-03-08T10:00:00Z", "2026-03-09T01:00:00Z",
				"2026-03-09T09:00:00Z"},
		},
		{
			// Berlin goes back from +02:00 to +01:00 on 2026-10-25 at 03:00:
			// 02:30 happens twice and runs once, at the first.
			"W. Europe, Sunday 02:30",
			refresh.BuiltinSchedule{Days: []string{"Sunday"}, Times: []string{"02:30"}, LocalTimeZoneID: "W. Europe Standard Time"},
			"2026-10-17T00:00:00Z", "2026-11-02T00:00:00Z",
			[]string{"2026-10-18T00:30:00Z", "2026-10-25T00:30:00Z", "2026-11-01T01:30:00Z"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exprs, zone, err := CronOf(tc.s)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, at := range slotsOf(t, exprs, zone, utc(tc.from), utc(tc.to)) {
				got = append(got, at.Format(time.RFC3339))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("%q in %s:\n got %q\nwant %q", exprs, zone, got, tc.want)
			}
		})
	}
}

// emulatorTokens asks the emulator for a new token on every call: the test
// moves its clock by days, past any token's lifetime.
type emulatorTokens struct{ emu *emulator.Emulator }

func (e emulatorTokens) Token(ctx context.Context) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"c0ffee00-0000-4000-8000-0000000000a1"},
		"client_secret": {"demo-client-secret-value"}, "scope": {"https://analysis.windows.net/powerbi/api/.default"}}
	res, err := e.emu.Client().PostForm(e.emu.URL()+"/c0ffee00-0000-4000-8000-000000000001/oauth2/v2.0/token", form)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token: %d %v", res.StatusCode, err)
	}
	return body.AccessToken, nil
}

func (emulatorTokens) Invalidate() {}

// TestBuiltinSameInstantsAsTheEmulator: the emulator fires built-in
// schedules as the service does (fire_schedules); the scheduler, given
// CronOf's expressions, starts refreshes at the same instants, across the
// changes to and from summer time in both hemispheres, except for times
// inside the hour a change skips or repeats (nearChange).
func TestBuiltinSameInstantsAsTheEmulator(t *testing.T) {
	schedules := []refresh.BuiltinSchedule{
		{Days: weekdays(), Times: []string{"05:00", "17:30"}, LocalTimeZoneID: "W. Europe Standard Time"},
		{Days: everyDay(), Times: []string{"02:00", "06:00", "12:00", "18:00"}, LocalTimeZoneID: "Pacific Standard Time"},
		{Days: []string{"Saturday", "Sunday"}, Times: []string{"01:00", "01:30", "23:30"}, LocalTimeZoneID: "Pacific Standard Time"},
		{Days: everyDay(), Times: []string{"02:30", "03:00"}, LocalTimeZoneID: "AUS Eastern Standard Time"},
		{Days: everyDay(), Times: []string{"00:00", "23:30"}, LocalTimeZoneID: "Tokyo Standard Time"},
		{Days: []string{"Sunday"}, Times: []string{"02:30"}, LocalTimeZoneID: "W. Europe Standard Time"},
	}
	for _, window := range []struct{ from, to string }{
		{"2026-03-01T00:00:00Z", "2026-04-08T00:00:00Z"}, // Europe, North America forward; Sydney back
		{"2026-09-30T00:00:00Z", "2026-11-05T00:00:00Z"}, // Sydney forward; Europe, North America back
	} {
		t.Run(window.from[:7], func(t *testing.T) {
			from, to := utc(window.from), utc(window.to)
			sc := emulator.DemoScenario()
			sc.Settings.FireSchedules = true
			sales := &sc.Workspaces[0]
			for i, s := range schedules {
				sales.Datasets = append(sales.Datasets, emulator.Dataset{
					ID: fmt.Sprintf("c0ffee00-0000-4000-8000-0000000005%02d", i), Name: fmt.Sprintf("Scheduled %d", i),
					Behaviour: emulator.Behaviour{Duration: emulator.DurationDist{Min: emulator.Duration(time.Second), Max: emulator.Duration(time.Second), Dist: "fixed"}},
					Schedule:  &emulator.ScheduleInfo{Days: s.Days, Times: s.Times, Enabled: true, TimeZone: s.LocalTimeZoneID},
				})
			}
			fc := emulator.NewFakeClock(from)
			emu := emulator.New(sc)
			emu.Clock = fc
			if err := emu.Start(); err != nil {
				t.Fatal(err)
			}
			defer emu.Close()
			client := refresh.NewClient(emu.PowerBIURL(), emu.Client(), emulatorTokens{emu})
			fired := make([]map[string]time.Time, len(schedules))
			for i := range fired {
				fired[i] = map[string]time.Time{}
			}
			ctx := context.Background()
			// Twelve hours at a time: the emulator keeps the newest 60
			// entries, and fires a slot when a request names the dataset.
			for now := from; now.Before(to); {
				now = now.Add(12 * time.Hour)
				fc.Set(now)
				for i := range schedules {
					ds := refresh.Dataset{WorkspaceID: sales.ID, DatasetID: fmt.Sprintf("c0ffee00-0000-4000-8000-0000000005%02d", i)}
					entries, err := client.History(ctx, ds, 0, time.Now().Add(time.Minute))
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range entries {
						if e.RefreshType == "Scheduled" {
							fired[i][e.RequestID] = e.Start
						}
					}
				}
			}
			for i, s := range schedules {
				var emulated []time.Time
				for _, at := range fired[i] {
					emulated = append(emulated, at)
				}
				slices.SortFunc(emulated, time.Time.Compare)
				exprs, zone, err := CronOf(s)
				if err != nil {
					t.Fatal(err)
				}
				scheduled := slotsOf(t, exprs, zone, from, to)
				if len(emulated) < 4 {
					t.Fatalf("schedule %d fired only %d times", i, len(emulated))
				}
				// Times inside the hour a change skips or repeats are the one
				// place the two may differ: see unsettled.
				loc, _ := time.LoadLocation(zone)
				for _, d := range differences(emulated, scheduled) {
					if at := utc(d[strings.IndexByte(d, ' ')+1:]); !nearChange(at, loc) {
						t.Errorf("schedule %d (%q in %s): %s", i, exprs, zone, d)
					}
				}
			}
		})
	}
}

// nearChange reports whether a change of offset lies within two hours of
// at. There the emulator and the scheduler may disagree: Power BI does not
// document what its schedules do with a time a change skips or repeats; the
// scheduler runs a skipped time just after the gap and a repeated one at
// its first occurrence (TestBuiltinInstantsAcrossDST pins that down), and
// the emulator follows what Go's time.Date makes of the wall time, which
// depends on the zone.
func nearChange(at time.Time, loc *time.Location) bool {
	_, end := at.Add(-2 * time.Hour).In(loc).ZoneBounds()
	return !end.IsZero() && end.Before(at.Add(2*time.Hour))
}

// differences lists the instants only one side has.
func differences(emulated, scheduled []time.Time) []string {
	var out []string
	for _, at := range emulated {
		if !slices.ContainsFunc(scheduled, at.Equal) {
			out = append(out, "emulator "+at.Format(time.RFC3339))
		}
	}
	for _, at := range scheduled {
		if !slices.ContainsFunc(emulated, at.Equal) {
			out = append(out, "scheduler "+at.Format(time.RFC3339))
		}
	}
	return out
}
