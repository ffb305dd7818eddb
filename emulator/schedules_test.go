package emulator

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	aliceUPN    = "alice@contoso.onmicrosoft.com"
	marketingWS = "c0ffee00-0000-4000-8000-000000000105"
	campaignsA  = "c0ffee00-0000-4000-8000-000000000210"
	campaignsB  = "c0ffee00-0000-4000-8000-000000000211"
	reportingDS = "c0ffee00-0000-4000-8000-000000000209"
	financeFlow = "c0ffee00-0000-4000-8000-000000000302"
)

// userToken signs a user in with the password flow (the demo's public
// client).
func (h *harness) userToken(upn string) string {
	h.t.Helper()
	r := h.form("/"+tenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"password"}, "client_id": {publicID}, "username": {upn}, "password": {"demo-password"}, "scope": {pbiScope},
	})
	if r.status != 200 {
		h.t.Fatalf("user token: %d %s", r.status, r.body)
	}
	return r.json(h.t)["access_token"].(string)
}

func schedulePath(ws, ds string) string {
	return "/v1.0/myorg/groups/" + ws + "/datasets/" + ds + "/refreshSchedule"
}

func (h *harness) schedule(tok, ws, ds string) map[string]any {
	h.t.Helper()
	r := h.do("GET", schedulePath(ws, ds), tok, "", "")
	if r.status != 200 {
		h.t.Fatalf("GET schedule: %d %s", r.status, r.body)
	}
	return r.json(h.t)
}

func (h *harness) patchSchedule(tok, ws, ds, body string) resp {
	h.t.Helper()
	return h.do("PATCH", schedulePath(ws, ds), tok, "application/json", body)
}

func TestPatchScheduleValidation(t *testing.T) {
	h := start(t, demo(t, longTokens))
	tok := h.pbiToken()
	for _, tc := range []struct {
		name, ct, body string
		status         int
		msg            string // part of the error message
	}{
		{"spec example: notify option", "application/json", `{"value":{"notifyOption":"NoNotification"}}`, 200, ""},
		{"spec example: days and times", "application/json", `{"value":{"days":["Sunday","Tuesday","Friday","Saturday"],"times":["07:00","11:30","16:00","23:30"],"localTimeZoneId":"UTC"}}`, 200, ""},
		{"spec example: times", "application/json", `{"value":{"times":["08:00","16:00"]}}`, 200, ""},
		{"spec example: disable", "application/json", `{"value":{"enabled":false}}`, 200, ""},
		{"enable alone", "application/json", `{"value":{"enabled":true}}`, 200, ""},
		{"enum values in any case", "application/json", `{"value":{"days":["monday"],"localTimeZoneId":"pacific standard time","NotifyOption":"nonotification"}}`, 200, ""},
		{"no times: the service picks one", "application/json", `{"value":{"times":[]}}`, 200, ""},
		{"empty body", "", ``, 400, "body is required"},
		{"not JSON", "application/json", `{"value":`, 400, "not a valid JSON object"},
		{"array", "application/json", `[]`, 400, "not a valid JSON object"},
		{"schedule not under value", "application/json", `{"days":["Monday"]}`, 400, `"days" is not a property of a refresh schedule request`},
		{"value missing", "application/json", `{}`, 400, "value is required"},
		{"value not an object", "application/json", `{"value":[]}`, 400, "value must be a JSON object"},
		{"value null", "application/json", `{"value":null}`, 400, "value must be a JSON object"},
		{"value empty", "application/json", `{"value":{}}`, 400, "names no property"},
		{"unknown property", "application/json", `{"value":{"enabled":true,"frequency":"daily"}}`, 400, `"frequency" is not a property`},
		{"null property", "application/json", `{"value":{"times":null}}`, 400, "must not be null"},
		{"no day", "application/json", `{"value":{"days":[]}}`, 400, "At least one day must be specified"},
		{"unknown day", "application/json", `{"value":{"days":["Mon"]}}`, 400, `"Mon" is not a day`},
		{"day twice", "application/json", `{"value":{"days":["Monday","MONDAY"]}}`, 400, "lists Monday twice"},
		{"days not strings", "application/json", `{"value":{"days":[1]}}`, 400, "array of strings"},
		{"minutes not 00 or 30", "application/json", `{"value":{"times":["07:15"]}}`, 400, `"07:15" is not a time`},
		{"one-digit hour", "application/json", `{"value":{"times":["7:00"]}}`, 400, `"7:00" is not a time`},
		{"hour 24", "application/json", `{"value":{"times":["24:00"]}}`, 400, `"24:00" is not a time`},
		{"seconds", "application/json", `{"value":{"times":["07:00:00"]}}`, 400, "is not a time"},
		{"time twice", "application/json", `{"value":{"times":["07:00","07:00"]}}`, 400, "lists 07:00 twice"},
		{"enabled as a string", "application/json", `{"value":{"enabled":"false"}}`, 400, "enabled must be true or false"},
		{"disable with another change", "application/json", `{"value":{"enabled":false,"times":["07:00"]}}`, 400, "must contain no other changes"},
		{"disable with notify option", "application/json", `{"value":{"enabled":false,"notifyOption":"NoNotification"}}`, 400, "must contain no other changes"},
		{"IANA name for the zone", "application/json", `{"value":{"localTimeZoneId":"Europe/Berlin"}}`, 400, "is not a Windows time zone id"},
		{"unknown zone", "application/json", `{"value":{"localTimeZoneId":"Central European Time"}}`, 400, "is not a Windows time zone id"},
		{"MailOnCompletion", "application/json", `{"value":{"notifyOption":"MailOnCompletion"}}`, 400, "not a valid value for notifyOption"},
		{"notify option twice", "application/json", `{"value":{"notifyOption":"NoNotification","NotifyOption":"NoNotification"}}`, 400, "given twice"},
		{"service principal asks for mail", "application/json", `{"value":{"notifyOption":"MailOnFailure"}}`, 400, "only set notifyOption NoNotification"},
		{"wrong content type", "text/plain", `{"value":{"enabled":true}}`, 415, "media type"},
		{"trailing data", "application/json", `{"value":{"enabled":true}} x`, 400, "not a valid JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("PATCH", schedulePath(salesWS, salesDS), tok, tc.ct, tc.body)
			if r.status != tc.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.status == 200 {
				if len(r.body) != 0 {
					t.Errorf("200 with a body: %s", r.body)
				}
				return
			}
			e := r.json(t)["error"].(map[string]any)
			if msg, _ := e["message"].(string); !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q does not contain %q", msg, tc.msg)
			}
		})
	}
	reqs := h.emu.Requests()
	if last := reqs[len(reqs)-1]; last.Operation != "schedule.update" {
		t.Errorf("request log operation %q, want schedule.update", last.Operation)
	}
}

func TestPatchScheduleIsRecorded(t *testing.T) {
	h := start(t, demo(t, longTokens))
	tok := h.pbiToken()
	// Finance Model has no schedule: GET shows the defaults; enabling it
	// without a day is refused.
	s := h.schedule(tok, salesWS, financeDS)
	if s["enabled"] != false || len(s["days"].([]any)) != 0 || s["localTimeZoneId"] != "UTC" || s["notifyOption"] != "NoNotification" {
		t.Fatalf("unconfigured schedule: %v", s)
	}
	if r := h.patchSchedule(tok, salesWS, financeDS, `{"value":{"enabled":true}}`); r.status != 400 || !strings.Contains(string(r.body), "At least one day") {
		t.Fatalf("enable without days: %d %s", r.status, r.body)
	}
	if r := h.patchSchedule(tok, salesWS, financeDS, `{"value":{"enabled":true,"days":["friday","Monday"],"times":["06:30"],"localTimeZoneId":"tokyo standard time"}}`); r.status != 200 {
		t.Fatalf("PATCH: %d %s", r.status, r.body)
	}
	s = h.schedule(tok, salesWS, financeDS)
	b, _ := json.Marshal([]any{s["days"], s["times"], s["enabled"], s["localTimeZoneId"], s["notifyOption"]})
	if string(b) != `[["Friday","Monday"],["06:30"],true,"Tokyo Standard Time","NoNotification"]` {
		t.Fatalf("after PATCH: %s", b)
	}
	// Disabling keeps days and times; GET and the Go read agree.
	if r := h.patchSchedule(tok, salesWS, financeDS, `{"value":{"enabled":false}}`); r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	s = h.schedule(tok, salesWS, financeDS)
	got, err := h.emu.Schedule(financeDS)
	if err != nil || s["enabled"] != false || len(s["days"].([]any)) != 2 || got.Enabled || len(got.Times) != 1 || got.TimeZone != "Tokyo Standard Time" {
		t.Fatalf("after disable: %v / %+v %v", s, got, err)
	}
	// The control API reads it too; the scenario itself is untouched.
	r := h.do("GET", "/_emulator/datasets/"+financeDS+"/schedule", "", "", "")
	if r.status != 200 || r.json(t)["localTimeZoneId"] != "Tokyo Standard Time" {
		t.Fatalf("control read: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/_emulator/datasets/00000000-0000-4000-8000-000000000000/schedule", "", "", ""); r.status != 404 {
		t.Errorf("control read of an unknown dataset: %d", r.status)
	}
	if sc := h.emu.Scenario().Workspaces[0].Datasets[1].Schedule; sc != nil {
		t.Errorf("PATCH wrote into the scenario: %+v", sc)
	}
	// Shared capacity: 8 slots a day at most.
	nine := `{"value":{"days":["Monday"],"times":["00:00","01:00","02:00","03:00","04:00","05:00","06:00","07:00","08:00"]}}`
	if r := h.patchSchedule(tok, teamWS, teamDS, nine); r.status != 400 || !strings.Contains(string(r.body), "at most 8 times a day") {
		t.Fatalf("9 slots on shared: %d %s", r.status, r.body)
	}
	if r := h.patchSchedule(tok, salesWS, salesDS, nine); r.status != 200 {
		t.Fatalf("9 slots on Premium: %d %s", r.status, r.body)
	}
}

func TestPatchScheduleOwnerOnly(t *testing.T) {
	sc := demo(t, func(sc *Scenario) {
		longTokens(sc)
		sc.Workspaces[0].Datasets[1].Refreshable = new(bool) // Finance Model: DirectQuery
	})
	h := start(t, sc)
	tok := h.pbiToken()
	outsider := h.token(outsiderID, "demo-outsider-secret", pbiScope)
	alice := h.userToken(aliceUPN)
	body := `{"value":{"times":["09:00"]}}`
	// A member who does not own the dataset: refused, and GET still works.
	h.emu.SetMember(salesWS, outsiderID, "Admin")
	for name, who := range map[string]string{"workspace admin": outsider, "member user": alice} {
		r := h.patchSchedule(who, salesWS, salesDS, body)
		if r.status != 401 || errorCode(t, r) != "PowerBINotAuthorizedException" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if s := h.schedule(alice, salesWS, salesDS); s["times"].([]any)[0] != "05:00" {
		t.Errorf("a refused PATCH changed the schedule: %v", s)
	}
	// Not in the workspace: 404 as everywhere.
	if r := h.patchSchedule(outsider, restrictedWS, payrollDS, body); r.status != 404 {
		t.Errorf("outside the workspace: %d", r.status)
	}
	// The owner is a user: alice owns Payroll (first Admin) and her My
	// workspace model (its user), and may ask for mail.
	if r := h.patchSchedule(alice, restrictedWS, payrollDS, `{"value":{"days":["Monday"],"notifyOption":"MailOnFailure"}}`); r.status != 200 {
		t.Errorf("owner user: %d %s", r.status, r.body)
	}
	if r := h.do("PATCH", "/v1.0/myorg/datasets/"+aliceDS+"/refreshSchedule", alice, "application/json", body); r.status != 200 {
		t.Errorf("my workspace: %d %s", r.status, r.body)
	}
	// A model without import refresh has no schedule to change.
	if r := h.patchSchedule(tok, salesWS, financeDS, body); r.status != 400 || !strings.Contains(string(r.body), "not refreshable") {
		t.Errorf("DirectQuery model: %d %s", r.status, r.body)
	}
}

// firing returns the demo with schedules firing and long tokens.
func firing(edit func(*Scenario)) func(*Scenario) {
	return func(sc *Scenario) {
		longTokens(sc)
		sc.Settings.FireSchedules = true
		if edit != nil {
			edit(sc)
		}
	}
}

func scheduledStarts(h *harness, tok, ws, ds string) []string {
	var out []string
	for _, e := range h.history(tok, ws, ds) {
		if e["refreshType"] == "Scheduled" {
			out = append(out, e["startTime"].(string))
		}
	}
	return out
}

func TestSchedulesFire(t *testing.T) {
	// t0 is Sunday 2026-03-01 10:00 UTC. Sales Model: Monday to Friday at
	// 05:00 and 17:30 W. Europe time (UTC+1, UTC+2 from 29 March).
	t.Run("off by default", func(t *testing.T) {
		h := start(t, demo(t, longTokens))
		tok := h.pbiToken()
		h.clock.Advance(48 * time.Hour)
		if got := scheduledStarts(h, tok, salesWS, salesDS); len(got) != 0 {
			t.Fatalf("schedules fired without fire_schedules: %v", got)
		}
	})
	t.Run("local times and weekdays", func(t *testing.T) {
		h := start(t, demo(t, firing(nil)))
		tok := h.pbiToken()
		h.clock.Advance(18 * time.Hour) // Monday 04:00 UTC = 05:00 in Berlin
		got := scheduledStarts(h, tok, salesWS, salesDS)
		if len(got) != 1 || got[0] != "2026-03-02T04:00:00.0000000Z" {
			t.Fatalf("Monday 05:00: %v", got)
		}
		e := h.history(tok, salesWS, salesDS)[0]
		if e["status"] != "Unknown" || e["requestId"] == "" {
			t.Errorf("a refresh that started now is running: %v", e)
		}
		// A POST during the scheduled refresh is busy.
		if r, _ := h.post(tok, salesWS, salesDS, ""); r.status != 400 || !strings.Contains(string(r.body), "already executing") {
			t.Errorf("POST during a scheduled refresh: %d %s", r.status, r.body)
		}
		h.clock.Advance(5*24*time.Hour + 12*time.Hour) // Saturday 16:00 UTC
		got = scheduledStarts(h, tok, salesWS, salesDS)
		if len(got) != 10 || got[0] != "2026-03-06T16:30:00.0000000Z" || got[9] != "2026-03-02T04:00:00.0000000Z" {
			t.Fatalf("Monday to Friday, twice a day, newest first: %d %v", len(got), got)
		}
	})
	t.Run("daylight saving time and the horizon", func(t *testing.T) {
		h := start(t, demo(t, firing(nil)))
		tok := h.pbiToken()
		// Jump four weeks: only the last 7 days are materialised.
		h.clock.Set(time.Date(2026, 3, 30, 4, 0, 0, 0, time.UTC))
		got := scheduledStarts(h, tok, salesWS, salesDS)
		if len(got) != 10 || got[0] != "2026-03-30T03:00:00.0000000Z" || got[1] != "2026-03-27T16:30:00.0000000Z" || got[9] != "2026-03-23T16:30:00.0000000Z" {
			t.Fatalf("after the jump: %d %v", len(got), got)
		}
	})
	t.Run("a PATCH changes what fires next", func(t *testing.T) {
		h := start(t, demo(t, firing(nil)))
		tok := h.pbiToken()
		if r := h.patchSchedule(tok, salesWS, salesDS, `{"value":{"enabled":false}}`); r.status != 200 {
			t.Fatal(r.status)
		}
		h.clock.Advance(24 * time.Hour)
		if got := scheduledStarts(h, tok, salesWS, salesDS); len(got) != 0 {
			t.Fatalf("disabled schedule fired: %v", got)
		}
		// Enabled again at Monday 10:00 UTC: the 05:00 slot that passed while
		// it was off does not fire late; 17:30 does.
		if r := h.patchSchedule(tok, salesWS, salesDS, `{"value":{"enabled":true}}`); r.status != 200 {
			t.Fatal(r.status)
		}
		h.clock.Advance(8 * time.Hour)
		if got, err := h.emu.Schedule(salesDS); err != nil || !got.Enabled {
			t.Fatal(got, err)
		}
		if got := scheduledStarts(h, tok, salesWS, salesDS); len(got) != 1 || got[0] != "2026-03-02T16:30:00.0000000Z" {
			t.Fatalf("after re-enabling: %v", got)
		}
	})
	t.Run("shared capacity quota counts scheduled refreshes", func(t *testing.T) {
		h := start(t, demo(t, firing(nil)))
		tok := h.pbiToken()
		if r, _ := h.post(tok, teamWS, teamDS, ""); r.status != 202 {
			t.Fatal(r.status)
		}
		// Eight slots, 11:00 to 14:30 UTC every day: with the API refresh
		// at 10:00, the eighth slot is past the daily limit and skipped.
		if r := h.patchSchedule(tok, teamWS, teamDS, `{"value":{"enabled":true,"days":["Sunday","Monday","Tuesday","Wednesday","Thursday","Friday","Saturday"],
			"times":["11:00","11:30","12:00","12:30","13:00","13:30","14:00","14:30"],"localTimeZoneId":"UTC"}}`); r.status != 200 {
			t.Fatalf("PATCH: %d %s", r.status, r.body)
		}
		h.clock.Advance(5 * time.Hour)
		got := scheduledStarts(h, tok, teamWS, teamDS)
		if len(got) != 7 || got[0] != "2026-03-01T14:00:00.0000000Z" {
			t.Fatalf("scheduled refreshes on shared capacity: %v", got)
		}
		r, _ := h.post(tok, teamWS, teamDS, "")
		if r.status != 400 || r.json(t)["error"].(map[string]any)["message"] != "Invalid dataset refresh request. Number of refresh requests in last 24 hours exceeded limit" {
			t.Fatalf("POST past the quota: %d %s", r.status, r.body)
		}
		// The next day the window has moved: 10:00 frees one.
		h.clock.Advance(19*time.Hour + time.Minute) // Monday 10:01
		if r, _ := h.post(tok, teamWS, teamDS, ""); r.status != 202 {
			t.Fatalf("POST a day later: %d %s", r.status, r.body)
		}
	})
	t.Run("premium capacity has no cap", func(t *testing.T) {
		h := start(t, demo(t, firing(nil)))
		tok := h.pbiToken()
		var all []string
		for hh := 0; hh < 24; hh++ {
			all = append(all, `"`+time.Date(0, 1, 1, hh, 0, 0, 0, time.UTC).Format("15:04")+`"`, `"`+time.Date(0, 1, 1, hh, 30, 0, 0, time.UTC).Format("15:04")+`"`)
		}
		if r := h.patchSchedule(tok, salesWS, salesDS, `{"value":{"days":["Sunday","Monday"],"times":[`+strings.Join(all, ",")+`]}}`); r.status != 200 {
			t.Fatalf("48 slots: %d %s", r.status, r.body)
		}
		h.clock.Advance(24*time.Hour + 10*time.Minute)
		if got := scheduledStarts(h, tok, salesWS, salesDS); len(got) != 48 {
			t.Fatalf("%d scheduled refreshes in a day, want 48", len(got))
		}
		if r, _ := h.post(tok, salesWS, salesDS, ""); r.status != 202 {
			t.Fatalf("POST after 48 scheduled refreshes: %d %s", r.status, r.body)
		}
	})
}

func TestScheduleSlotsAcrossDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	s := ScheduleInfo{Days: []string{"Sunday"}, Times: []string{"01:30", "02:00", "02:30", "03:00"}}
	// 2026-03-08: 02:00 to 03:00 does not exist; 02:00 and 02:30 move on
	// by the gap, and 02:00 lands on 03:00, which fires once.
	got := scheduleSlots(s, ny, time.Date(2026, 3, 7, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC))
	var f []string
	for _, x := range got {
		f = append(f, x.UTC().Format("15:04"))
	}
	if strings.Join(f, " ") != "06:30 07:00 07:30" {
		t.Errorf("spring forward: %v", f)
	}
	// 2026-11-01: 01:30 happens twice; it fires once, at the first.
	got = scheduleSlots(s, ny, time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC))
	f = f[:0]
	for _, x := range got {
		f = append(f, x.UTC().Format("15:04"))
	}
	if strings.Join(f, " ") != "05:30 07:00 07:30 08:00" {
		t.Errorf("fall back: %v", f)
	}
}

// TestScheduleDSTReadsTheSameInEveryZone: a time in a spring-forward gap
// fires later by the gap; a repeated time fires once, at its first
// occurrence, in Berlin, Sydney and Los Angeles alike (time.Date alone
// resolves them differently per zone).
func TestScheduleDSTReadsTheSameInEveryZone(t *testing.T) {
	for _, c := range []struct {
		zone     string
		day      string
		h, m     int
		want     string
		sameWall bool
	}{
		{"Europe/Berlin", "2026-03-29", 2, 30, "2026-03-29T01:30:00Z", false}, // gap: 03:30 CEST
		{"Europe/Berlin", "2026-10-25", 2, 30, "2026-10-25T00:30:00Z", true},  // repeat: first, CEST
		{"Australia/Sydney", "2026-10-04", 2, 30, "2026-10-03T16:30:00Z", false},
		{"Australia/Sydney", "2026-04-05", 2, 30, "2026-04-04T15:30:00Z", true},
		{"America/Los_Angeles", "2026-03-08", 2, 30, "2026-03-08T10:30:00Z", false},
		{"America/Los_Angeles", "2026-11-01", 1, 30, "2026-11-01T08:30:00Z", true},
	} {
		loc, _ := time.LoadLocation(c.zone)
		d, _ := time.Parse("2006-01-02", c.day)
		got := wallInstant(d.Year(), d.Month(), d.Day(), c.h, c.m, loc)
		if got.UTC().Format(time.RFC3339) != c.want {
			t.Errorf("%s %s %02d:%02d: %s, want %s", c.zone, c.day, c.h, c.m, got.UTC().Format(time.RFC3339), c.want)
		}
		if l := got.In(loc); c.sameWall && (l.Hour() != c.h || l.Minute() != c.m) {
			t.Errorf("%s: a repeated time fired at %s", c.zone, l)
		}
	}
}
