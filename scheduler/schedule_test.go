package scheduler

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// TestDSTRules is the table of scheduler/doc.go, case by case.
func TestDSTRules(t *testing.T) {
	for _, tc := range []struct {
		name, zone, expr string
		dst              DST
		from             string   // RFC 3339
		want             []string // slots, RFC 3339 UTC, with " note" substrings after a |
	}{
		{"NY gap shifts a fixed time", "America/New_York", "30 2 * * *", DST{}, "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T07:00:00Z|shifted from 02:30", "2026-03-09T06:30:00Z"}},
		{"NY gap skip", "America/New_York", "30 2 * * *", DST{Gap: "skip"}, "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-09T06:30:00Z"}},
		{"NY repeat runs first only", "America/New_York", "30 1 * * *", DST{}, "2026-10-31T12:00:00-04:00",
			[]string{"2026-11-01T05:30:00Z|first of two 01:30", "2026-11-02T06:30:00Z"}},
		{"NY repeat both", "America/New_York", "30 1 * * *", DST{Repeat: "both"}, "2026-10-31T12:00:00-04:00",
			[]string{"2026-11-01T05:30:00Z|first 01:30", "2026-11-01T06:30:00Z|second 01:30", "2026-11-02T06:30:00Z"}},
		{"NY interval across the gap follows absolute time", "America/New_York", "*/30 * * * *", DST{}, "2026-03-08T01:00:00-05:00",
			[]string{"2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"}},
		{"NY interval across the repeat fires in both hours", "America/New_York", "0 * * * *", DST{}, "2026-11-01T00:30:00-04:00",
			[]string{"2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"}},
		{"NY gap merges several times into one slot", "America/New_York", "*/20 2 * * *", DST{}, "2026-03-07T23:00:00-05:00",
			[]string{"2026-03-08T07:00:00Z|3 times merged", "2026-03-09T06:00:00Z"}},
		{"Berlin gap", "Europe/Berlin", "30 2 * * *", DST{}, "2026-03-28T12:00:00+01:00",
			[]string{"2026-03-29T01:00:00Z|shifted from 02:30", "2026-03-30T00:30:00Z"}},
		{"Berlin repeat both", "Europe/Berlin", "30 2 * * *", DST{Repeat: "both"}, "2026-10-24T12:00:00+02:00",
			[]string{"2026-10-25T00:30:00Z|first 02:30", "2026-10-25T01:30:00Z|second 02:30", "2026-10-26T01:30:00Z"}},
		{"Santiago: a day without midnight follows the gap rule", "America/Santiago", "0 0 * * *", DST{}, "2025-09-05T12:00:00-04:00",
			[]string{"2025-09-06T04:00:00Z", "2025-09-07T04:00:00Z|shifted from 00:00", "2025-09-08T03:00:00Z"}},
		{"Santiago: skip drops that day", "America/Santiago", "0 0 * * *", DST{Gap: "skip"}, "2025-09-05T12:00:00-04:00",
			[]string{"2025-09-06T04:00:00Z", "2025-09-08T03:00:00Z"}},
		{"Lord Howe: 30-minute gap", "Australia/Lord_Howe", "15 2 * * *", DST{}, "2026-10-03T12:00:00+10:30",
			[]string{"2026-10-03T15:30:00Z|shifted from 02:15", "2026-10-04T15:15:00Z"}},
		{"Lord Howe: 30-minute repeat, both", "Australia/Lord_Howe", "45 1 * * *", DST{Repeat: "both"}, "2026-04-04T12:00:00+11:00",
			[]string{"2026-04-04T14:45:00Z|first 01:45", "2026-04-04T15:15:00Z|second 01:45", "2026-04-05T15:15:00Z"}},
		{"leap day", "UTC", "0 6 29 2 *", DST{}, "2026-01-01T00:00:00Z",
			[]string{"2028-02-29T06:00:00Z", "2032-02-29T06:00:00Z"}},
		{"day of month OR day of week", "UTC", "0 0 13 * 5", DST{}, "2026-03-01T00:00:00Z",
			[]string{"2026-03-06T00:00:00Z", "2026-03-13T00:00:00Z", "2026-03-20T00:00:00Z"}},
		{"seconds field", "UTC", "*/20 * * * * *", DST{}, "2026-03-01T00:00:05Z",
			[]string{"2026-03-01T00:00:20Z", "2026-03-01T00:00:40Z", "2026-03-01T00:01:00Z"}},
		{"@every is aligned to the epoch", "UTC", "@every 90s", DST{}, "2026-03-01T00:00:01Z",
			[]string{"2026-03-01T00:01:30Z", "2026-03-01T00:03:00Z"}},
		{"@daily is wall-clock", "America/New_York", "@daily", DST{}, "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.expr, zone(t, tc.zone), tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			at := utc(tc.from)
			for i, w := range tc.want {
				wantTime, wantNote, _ := strings.Cut(w, "|")
				slot, ok := s.Next(at)
				if !ok {
					t.Fatalf("slot %d: none", i)
				}
				if !slot.Time.Equal(utc(wantTime)) {
					t.Fatalf("slot %d: %s (%s local) %q, want %s", i, slot.Time.Format(time.RFC3339), slot.Time.In(s.Location).Format("2006-01-02 15:04:05 MST"), slot.Note, wantTime)
				}
				if (wantNote == "") != (slot.Note == "") || !strings.Contains(slot.Note, wantNote) {
					t.Fatalf("slot %d note %q, want %q", i, slot.Note, wantNote)
				}
				at = slot.Time
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"0 0 30 2 *", "never fires"},
		{"0 0 31 4 *", "never fires"},
		{"CRON_TZ=UTC", "time zone prefix"},
		{"TZ=0", "time zone prefix"},
		{"0 25 * * *", "cannot parse"},
		{"", "empty"},
		{"@every 10ms", "at least 1s"},
		{"* * *", "cannot parse"},
	} {
		if _, err := Parse(tc.expr, time.UTC, DST{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.expr, err, tc.want)
		}
	}
	if _, err := Parse("0 0 * * *", time.UTC, DST{Gap: "later"}); err == nil {
		t.Error("bad dst.gap accepted")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0 0 * * *", "*/15 * * * * *", "@every 1m", "CRON_TZ=UTC", "0 0 30 2 *", "@yearly", "0 0 29 2 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Parse(expr, time.UTC, DST{})
		if err != nil {
			return
		}
		from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		slot, ok := s.Next(from)
		if !ok || !slot.Time.After(from) {
			t.Fatalf("%q parsed but gives no later slot: %v %v", expr, slot, ok)
		}
	})
}
