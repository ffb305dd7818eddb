package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh/internal/windowszones"
)

func FuzzParseRefreshRequest(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"notifyOption":"MailOnFailure"}`, `{"type":"full","objects":[{"table":"a","partition":"b"}]}`,
		`{"timeout":"01:30:00","retryCount":2,"maxParallelism":4}`, `{"applyRefreshPolicy":"false"}`, `[`, `{"type":null}`, `{"objects":[{}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseRefreshRequest(body)
		if err != nil {
			if err.status != 400 || err.msg == "" {
				t.Fatalf("error without status or message: %+v", err)
			}
			return
		}
		// Accepted: the body is empty or a JSON object, and the mode follows
		// the rule "enhanced iff some property other than notifyOption".
		var m map[string]json.RawMessage
		if len(bytes.TrimSpace(body)) == 0 {
			if req.enhanced {
				t.Fatal("empty body parsed as enhanced")
			}
			return
		}
		if json.Unmarshal(body, &m) != nil {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
		_, notify := m["notifyOption"]
		if want := len(m) > 1 || (len(m) == 1 && !notify); req.enhanced != want {
			t.Fatalf("enhanced=%v for %q", req.enhanced, body)
		}
		if req.timeout < 0 || req.retryCount < 0 || req.maxParallelism < 1 {
			t.Fatalf("out-of-range values accepted: %+v", req)
		}
	})
}

func FuzzParseScheduleRequest(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"value":{}}`, `{"value":{"enabled":false}}`, `{"value":{"notifyOption":"NoNotification"}}`,
		`{"value":{"days":["Sunday","tuesday"],"times":["07:00","23:30"],"localTimeZoneId":"UTC"}}`, `{"value":{"times":[]}}`,
		`{"value":{"enabled":false,"times":["07:00"]}}`, `{"value":{"NotifyOption":"MailOnFailure","notifyOption":"x"}}`,
		`{"value":{"localTimeZoneId":"w. europe standard time"}}`, `{"value":null}`, `{"value":{"days":[null]}}`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parseScheduleRequest(body)
		if err != nil {
			if err.status != 400 || err.msg == "" {
				t.Fatalf("error without status or message: %+v", err)
			}
			return
		}
		// Accepted: {"value": {...}} with at least one known property, each
		// valid by the documented rules.
		var top map[string]map[string]json.RawMessage
		if json.Unmarshal(body, &top) != nil || len(top) != 1 || len(top["value"]) == 0 {
			t.Fatalf("accepted a body without a non-empty value object: %q", body)
		}
		if p.enabled != nil && !*p.enabled && len(top["value"]) != 1 {
			t.Fatalf("accepted a disabling request with other changes: %q", body)
		}
		if p.days != nil {
			if len(*p.days) == 0 {
				t.Fatalf("accepted no day: %q", body)
			}
			seen := map[string]bool{}
			for _, d := range *p.days {
				if c, ok := canonicalDay(d); !ok || c != d || seen[d] {
					t.Fatalf("accepted day %q (twice: %v) in %q", d, seen[d], body)
				}
				seen[d] = true
			}
		}
		if p.times != nil {
			seen := map[string]bool{}
			for _, tm := range *p.times {
				if !scheduleTimeRE.MatchString(tm) || seen[tm] {
					t.Fatalf("accepted time %q in %q", tm, body)
				}
				seen[tm] = true
			}
		}
		if p.timeZone != nil {
			if _, ok := windowszones.IANA(*p.timeZone); !ok {
				t.Fatalf("accepted time zone %q", *p.timeZone)
			}
		}
		if p.notifyOption != nil && *p.notifyOption != "NoNotification" && *p.notifyOption != "MailOnFailure" {
			t.Fatalf("accepted notify option %q", *p.notifyOption)
		}
		// Written back in the service's spelling, it parses to the same.
		v := map[string]any{}
		if p.days != nil {
			v["days"] = *p.days
		}
		if p.times != nil {
			v["times"] = *p.times
		}
		if p.enabled != nil {
			v["enabled"] = *p.enabled
		}
		if p.timeZone != nil {
			v["localTimeZoneId"] = *p.timeZone
		}
		if p.notifyOption != nil {
			v["notifyOption"] = *p.notifyOption
		}
		again, _ := json.Marshal(map[string]any{"value": v})
		q, err := parseScheduleRequest(again)
		if err != nil {
			t.Fatalf("%q parsed, its canonical form %s did not: %v", body, again, err)
		}
		if a, b := p.apply(ScheduleInfo{}), q.apply(ScheduleInfo{}); fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("%q and its canonical form differ: %v / %v", body, a, b)
		}
	})
}

func FuzzParseDataflowRefreshRequest(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"notifyOption":"NoNotification"}`, `{"notifyOption":"mailonfailure"}`,
		`{"notifyOption":"MailOnCompletion"}`, `{"notifyOption":null}`, `{"notifyOption":"NoNotification","x":1}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		opt, err := parseDataflowRefreshRequest(body)
		if err != nil {
			if err.status != 400 || err.msg == "" {
				t.Fatalf("error without status or message: %+v", err)
			}
			return
		}
		var m map[string]string
		if json.Unmarshal(body, &m) != nil || len(m) != 1 || !strings.EqualFold(m["notifyOption"], opt) {
			t.Fatalf("accepted %q as %q", body, opt)
		}
		if opt != "NoNotification" && opt != "MailOnFailure" {
			t.Fatalf("accepted notify option %q", opt)
		}
	})
}

func FuzzParseScenario(f *testing.F) {
	f.Add(demoScenario)
	f.Add([]byte("tenants: [{id: x}]\n"))
	f.Add([]byte("workspaces:\n  - id: c0ffee00-0000-4000-8000-000000000101\n    datasets: [{id: 1, behaviour: {duration: {min: 2h, max: 1s}}}]\n"))
	f.Add([]byte("faults: [{endpoint: nope}]\nthrottle: {limit: -1}\n"))
	f.Add([]byte("users: [{upn: a@b, tenant: t}]\nworkspaces:\n  - id: c0ffee00-0000-4000-8000-000000000101\n    name: A\n    members: [{principal: a@b, role: admin}]\n" +
		"    dataflows: [{id: c0ffee00-0000-4000-8000-000000000301}]\n    datasets: [{id: c0ffee00-0000-4000-8000-000000000201, owner: A@B,\n" +
		"      upstream_dataflows: [c0ffee00-0000-4000-8000-000000000301], schedule: {days: [monday], times: ['07:00'], enabled: true, time_zone: utc}}]\n" +
		"  - {id: c0ffee00-0000-4000-8000-000000000102, name: a}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := ParseScenario("fuzz.yaml", b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// A scenario that validates must validate again (defaults are
		// idempotent) and build its state.
		if err := sc.Validate(); err != nil {
			t.Fatalf("a validated scenario fails a second validation: %v", err)
		}
		if err := New(sc).prepare(); err != nil {
			t.Fatalf("valid scenario failed to prepare: %v", err)
		}
	})
}

// FuzzHandler sends arbitrary requests through the whole handler: no
// panic, no 500, and JSON error bodies where there is a body.
func FuzzHandler(f *testing.F) {
	e := New(nil)
	e.Clock = NewFakeClock(t0)
	if err := e.Start(); err != nil {
		f.Fatal(err)
	}
	defer e.Close()
	handler := e.srv.Handler
	tok := e.signToken(&claims{Aud: powerBIAudiences[0], Tid: tenantID, AppID: appID, IDTyp: "app", Exp: t0.Add(1e6 * 1e9).Unix()})
	for _, s := range []struct{ method, path, ct, body string }{
		{"POST", refreshesPath(salesWS, salesDS), "application/json", `{"type":"full"}`},
		{"GET", refreshesPath(salesWS, salesDS) + "?$top=2", "", ""},
		{"DELETE", refreshesPath(salesWS, salesDS) + "/x", "", ""},
		{"POST", "/" + tenantID + "/oauth2/v2.0/token", "application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=" + appID},
		{"GET", "/secrets/pbi-secret/?api-version=1", "", ""},
		{"GET", "/v1.0/myorg/groups?$filter=name eq 'a''b'", "", ""},
		{"POST", "/v1.0/myorg/groups/" + salesWS + "/dataflows/transactions/%40/cancel", "", ""},
		{"PATCH", "/v1.0/myorg/groups/" + salesWS + "/datasets/" + salesDS + "/refreshSchedule", "application/json", `{"value":{"days":["Monday"],"times":["07:00"]}}`},
		{"GET", "/v1.0/myorg/groups/" + teamWS + "/datasets/upstreamDataflows", "", ""},
		{"POST", "/v1.0/myorg/groups/" + salesWS + "/dataflows/" + salesFlow + "/refreshes?processType=default", "application/json", `{"notifyOption":"NoNotification"}`},
	} {
		f.Add(s.method, s.path, s.ct, s.body, true)
	}
	f.Fuzz(func(t *testing.T, method, path, ct, body string, auth bool) {
		if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "/_emulator") {
			return
		}
		req, err := http.NewRequest(method, "https://127.0.0.1"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s → %d %s", method, path, rec.Code, rec.Body)
		}
		if rec.Body.Len() > 0 && strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("invalid JSON body: %s", rec.Body)
		}
	})
}

// TestPlanIsBounded: a huge retryCount with instant failures must not spin.
func TestPlanIsBounded(t *testing.T) {
	r := &refresh{posted: t0, req: refreshRequest{enhanced: true, retryCount: 1 << 30, timeout: time.Hour, typ: "Full", commitMode: "Transactional"}}
	plan(r, Behaviour{Outcome: "failed", ErrorCode: "x"}, true, nil)
	if len(r.attempts) != maxAttempts || r.status != "Failed" {
		t.Fatalf("%d attempts, status %s", len(r.attempts), r.status)
	}
	if _, err := ParseScenario("s.yaml", []byte("settings: {request_log_size: 900000000000}\n")); err == nil || !strings.Contains(err.Error(), "s.yaml:1:") {
		t.Fatalf("huge request log accepted or unpositioned: %v", err)
	}
}
