package emulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

var stamp7RE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`)

func TestClassicRefreshLifecycle(t *testing.T) {
	h := start(t, nil)
	tok := h.pbiToken()
	r, id := h.post(tok, salesWS, salesDS, "")
	if r.status != 202 || len(r.body) != 0 {
		t.Fatalf("POST: %d %q", r.status, r.body)
	}
	if r.header.Get("RequestId") != id || r.header.Get("x-ms-request-id") != "" || r.header.Get("Location") != "" {
		t.Fatalf("classic headers: %v", r.header)
	}
	// History lag: invisible for history_delay (2 s in the demo).
	if e := h.entry(tok, salesWS, salesDS, id); e != nil {
		t.Fatalf("refresh visible before the history delay: %v", e)
	}
	h.clock.Advance(2 * time.Second)
	e := h.entry(tok, salesWS, salesDS, id)
	if e == nil {
		t.Fatal("refresh not visible after the history delay")
	}
	if e["status"] != "Unknown" || e["refreshType"] != "ViaApi" || e["endTime"] != nil || e["extendedStatus"] != nil {
		t.Fatalf("running classic entry: %v", e)
	}
	if _, ok := e["id"].(float64); !ok {
		t.Errorf("numeric id missing: %v", e)
	}
	if !stamp7RE.MatchString(e["startTime"].(string)) {
		t.Errorf("startTime %q: want UTC with 7 fractional digits", e["startTime"])
	}
	// Classic refreshes are not on the details endpoint.
	if r := h.do("GET", refreshesPath(salesWS, salesDS)+"/"+id, tok, "", ""); r.status != 404 {
		t.Errorf("details of a classic refresh: %d", r.status)
	}
	h.clock.Advance(10 * time.Second) // Sales takes 3-8 s
	e = h.entry(tok, salesWS, salesDS, id)
	if e["status"] != "Completed" || !stamp7RE.MatchString(e["endTime"].(string)) {
		t.Fatalf("finished classic entry: %v", e)
	}
	att := e["refreshAttempts"].([]any)
	if len(att) != 1 || att[0].(map[string]any)["type"] != "Data" {
		t.Errorf("attempts: %v", att)
	}
}

func TestEnhancedRefreshLifecycle(t *testing.T) {
	h := start(t, nil)
	tok := h.pbiToken()
	body := `{"type":"full","commitMode":"transactional","maxParallelism":2,"retryCount":1,"timeout":"01:30:00",
	  "objects":[{"table":"Sales","partition":"Sales-2026"},{"table":"Date"}],"applyRefreshPolicy":"false"}`
	r, id := h.post(tok, salesWS, salesDS, body)
	if r.status != 202 || len(r.body) != 0 {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	if !strings.HasSuffix(r.header.Get("Location"), refreshesPath(salesWS, salesDS)+"/"+id) {
		t.Errorf("Location %q does not end in the refresh id %s", r.header.Get("Location"), id)
	}
	if rid := r.header.Get("RequestId"); rid == "" || rid == id {
		t.Errorf("RequestId %q should be present and differ from x-ms-request-id (unconfirmed equality)", rid)
	}
	details := refreshesPath(salesWS, salesDS) + "/" + id
	if r := h.do("GET", details, tok, "", ""); r.status != 404 {
		t.Errorf("details inside the history delay: %d", r.status)
	}
	h.clock.Advance(2 * time.Second)
	r = h.do("GET", details, tok, "", "")
	if r.status != 202 {
		t.Fatalf("details while running: %d %s", r.status, r.body)
	}
	d := r.json(t)
	if d["status"] != "Unknown" || d["extendedStatus"] != "InProgress" || d["type"] != "Full" || d["commitMode"] != "Transactional" || d["requestId"] != nil {
		t.Fatalf("running details: %v", d)
	}
	if objs := d["objects"].([]any); len(objs) != 2 || objs[0].(map[string]any)["partition"] != "Sales-2026" {
		t.Errorf("objects: %v", objs)
	}
	if e := h.entry(tok, salesWS, salesDS, id); e["refreshType"] != "ViaEnhancedApi" || e["extendedStatus"] != "InProgress" {
		t.Errorf("history entry: %v", e)
	}
	h.clock.Advance(10 * time.Second)
	r = h.do("GET", details, tok, "", "")
	d = r.json(t)
	if r.status != 200 || d["status"] != "Completed" || d["extendedStatus"] != "Completed" || d["endTime"] == nil || d["numberOfAttempts"] != 1.0 {
		t.Fatalf("finished details: %d %v", r.status, d)
	}
}

// longTokens makes tokens outlive the hours a test skips over.
func longTokens(sc *Scenario) { sc.Settings.TokenLifetime = Duration(1000 * time.Hour) }

func TestEnhancedOutcomes(t *testing.T) {
	h := start(t, demo(t, longTokens))
	tok := h.pbiToken()
	follow := func(ds, body string) (map[string]any, map[string]any) {
		t.Helper()
		r, id := h.post(tok, salesWS, ds, body)
		if r.status != 202 {
			t.Fatalf("POST %s: %d %s", body, r.status, r.body)
		}
		h.clock.Advance(3 * time.Hour)
		d := h.do("GET", refreshesPath(salesWS, ds)+"/"+id, tok, "", "")
		if d.status != 200 {
			t.Fatalf("details after 3h: %d %s", d.status, d.body)
		}
		return d.json(t), h.entry(tok, salesWS, ds, id)
	}
	t.Run("failed", func(t *testing.T) {
		d, e := follow(financeDS, `{"type":"full"}`)
		if d["status"] != "Failed" || d["extendedStatus"] != "Failed" || len(d["messages"].([]any)) != 1 {
			t.Fatalf("details: %v", d)
		}
		if e["status"] != "Failed" || !strings.Contains(e["serviceExceptionJson"].(string), "ModelRefreshFailed_CredentialsNotSpecified") {
			t.Fatalf("history: %v", e)
		}
	})
	t.Run("retry exhausts", func(t *testing.T) {
		d, _ := follow(inventoryDS, `{"retryCount":0}`)
		if d["status"] != "Failed" || d["numberOfAttempts"] != 1.0 {
			t.Fatalf("details: %v", d)
		}
	})
	t.Run("retry recovers", func(t *testing.T) {
		d, e := follow(inventoryDS, `{"retryCount":1}`)
		att := d["refreshAttempts"].([]any)
		if d["status"] != "Completed" || d["numberOfAttempts"] != 2.0 || len(att) != 2 || att[0].(map[string]any)["serviceExceptionJson"] == nil {
			t.Fatalf("details: %v", d)
		}
		if e["status"] != "Completed" {
			t.Fatalf("history: %v", e)
		}
	})
	t.Run("timed out", func(t *testing.T) {
		d, e := follow(salesDS, `{"timeout":"00:00:01","retryCount":1}`)
		if d["status"] != "Failed" || d["extendedStatus"] != "TimedOut" || d["numberOfAttempts"] != 2.0 {
			t.Fatalf("details: %v", d)
		}
		if e["status"] != "Failed" || e["extendedStatus"] != "TimedOut" {
			t.Fatalf("history: %v", e)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		d, e := follow(archiveDS, `{"type":"automatic"}`)
		if d["status"] != "Disabled" || e["status"] != "Disabled" {
			t.Fatalf("details %v history %v", d, e)
		}
	})
	t.Run("partial batch with refresh policy fails", func(t *testing.T) {
		d, _ := follow(salesDS, `{"commitMode":"partialBatch"}`)
		if d["status"] != "Failed" || !strings.Contains(d["messages"].([]any)[0].(map[string]any)["message"].(string), "Transactional") {
			t.Fatalf("details: %v", d)
		}
	})
}

func TestBusyDataset(t *testing.T) {
	for _, status := range []int{400, 409} {
		h := start(t, demo(t, func(sc *Scenario) { sc.Settings.ConflictStatus = status }))
		tok := h.pbiToken()
		if r, _ := h.post(tok, salesWS, salesDS, ""); r.status != 202 {
			t.Fatal(r.status)
		}
		r, _ := h.post(tok, salesWS, salesDS, `{"type":"full"}`)
		if r.status != status || errorCode(t, r) != "InvalidRequest" ||
			r.json(t)["error"].(map[string]any)["message"] != "Invalid dataset refresh request. Another refresh request is already executing" {
			t.Fatalf("second POST: %d %s", r.status, r.body)
		}
		h.clock.Advance(time.Minute)
		if r, _ := h.post(tok, salesWS, salesDS, ""); r.status != 202 {
			t.Fatalf("POST after the first ended: %d", r.status)
		}
	}
}

func TestExternalRefreshAndCancel(t *testing.T) {
	h := start(t, nil)
	tok := h.pbiToken()
	extID, err := h.emu.StartExternalRefresh(salesDS, "Scheduled", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := h.post(tok, salesWS, salesDS, ""); r.status != 400 {
		t.Fatalf("POST during a scheduled refresh: %d", r.status)
	}
	if e := h.entry(tok, salesWS, salesDS, extID); e["refreshType"] != "Scheduled" || e["status"] != "Unknown" {
		t.Fatalf("scheduled entry: %v", e)
	}
	// Scheduled refreshes cannot be cancelled.
	if r := h.do("DELETE", refreshesPath(salesWS, salesDS)+"/"+extID, tok, "", ""); r.status != 400 {
		t.Fatalf("DELETE scheduled: %d %s", r.status, r.body)
	}
	h.clock.Advance(11 * time.Minute)

	_, id := h.post(tok, salesWS, forecastDS, `{"type":"full"}`)
	h.clock.Advance(5 * time.Second)
	r := h.do("DELETE", refreshesPath(salesWS, forecastDS)+"/"+id, tok, "", "")
	if r.status != 200 || len(r.body) != 0 {
		t.Fatalf("DELETE running enhanced: %d %s", r.status, r.body)
	}
	e := h.entry(tok, salesWS, forecastDS, id)
	if e["status"] != "Cancelled" || e["extendedStatus"] != "Cancelled" || e["endTime"] == nil {
		t.Fatalf("cancelled entry: %v", e)
	}
	r = h.do("DELETE", refreshesPath(salesWS, forecastDS)+"/"+id, tok, "", "")
	if r.status != 409 || !strings.Contains(string(r.body), "cannot be cancelled") {
		t.Fatalf("DELETE of a finished refresh: %d %s", r.status, r.body)
	}
	// Classic refreshes cannot be cancelled either.
	_, cid := h.post(tok, salesWS, salesDS, "")
	h.clock.Advance(2 * time.Second)
	if r := h.do("DELETE", refreshesPath(salesWS, salesDS)+"/"+cid, tok, "", ""); r.status != 400 {
		t.Fatalf("DELETE classic: %d", r.status)
	}
}

func TestSharedCapacity(t *testing.T) {
	h := start(t, demo(t, longTokens))
	tok := h.pbiToken()
	r, _ := h.post(tok, teamWS, teamDS, `{"type":"full"}`)
	if r.status != 400 || !strings.Contains(string(r.body), "shared capacity") {
		t.Fatalf("enhanced on shared: %d %s", r.status, r.body)
	}
	// Portal "Refresh now" does not count against the 8 a day.
	if _, err := h.emu.StartExternalRefresh(teamDS, "OnDemand", time.Second); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	// A scheduled refresh does.
	if _, err := h.emu.StartExternalRefresh(teamDS, "Scheduled", time.Second); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	for i := 0; i < 7; i++ {
		if r, _ := h.post(tok, teamWS, teamDS, `{"notifyOption":"NoNotification"}`); r.status != 202 {
			t.Fatalf("refresh %d: %d %s", i+2, r.status, r.body)
		}
		h.clock.Advance(time.Hour)
	}
	r, _ = h.post(tok, teamWS, teamDS, "")
	if r.status != 400 || !strings.Contains(string(r.body), "Number of refresh requests in last 24 hours exceeded limit") {
		t.Fatalf("9th refresh: %d %s", r.status, r.body)
	}
	h.clock.Advance(18 * time.Hour)
	if r, _ := h.post(tok, teamWS, teamDS, ""); r.status != 202 {
		t.Fatalf("after 24h: %d %s", r.status, r.body)
	}
}

func TestHistoryOrderTopAndCap(t *testing.T) {
	h := start(t, demo(t, func(sc *Scenario) { sc.Settings.HistoryDelay = 0; longTokens(sc) }))
	tok := h.pbiToken()
	var ids []string
	for i := 0; i < 70; i++ {
		_, id := h.post(tok, salesWS, salesDS, "")
		ids = append(ids, id)
		h.clock.Advance(10 * time.Second)
	}
	all := h.history(tok, salesWS, salesDS)
	if len(all) != 60 {
		t.Fatalf("history holds %d entries, want the cap of 60", len(all))
	}
	if all[0]["requestId"] != ids[69] || all[59]["requestId"] != ids[10] {
		t.Fatalf("history is not newest first: first %v last %v", all[0]["requestId"], all[59]["requestId"])
	}
	r := h.do("GET", refreshesPath(salesWS, salesDS)+"?$top=3", tok, "", "")
	var top struct{ Value []map[string]any }
	json.Unmarshal(r.body, &top)
	if len(top.Value) != 3 || top.Value[0]["requestId"] != ids[69] {
		t.Fatalf("$top=3: %d entries", len(top.Value))
	}
	if r := h.do("GET", refreshesPath(salesWS, salesDS)+"?$top=0", tok, "", ""); r.status != 400 {
		t.Errorf("$top=0: %d", r.status)
	}
	// Older than 3 days: only 20 are kept.
	h.clock.Advance(4 * 24 * time.Hour)
	if n := len(h.history(tok, salesWS, salesDS)); n != 20 {
		t.Errorf("after 4 days %d entries, want 20", n)
	}
	if r := h.do("GET", refreshesPath(salesWS, salesDS)+"/"+ids[0], tok, "", ""); r.status != 404 {
		t.Errorf("details of a pruned refresh: %d", r.status)
	}
}

func TestDroppedBurst(t *testing.T) {
	h := start(t, nil)
	tok := h.pbiToken()
	statuses := []int{}
	var last string
	for i := 0; i < 4; i++ {
		r, id := h.post(tok, salesWS, forecastDS, "")
		statuses = append(statuses, r.status)
		last = id
	}
	// 1: runs; 2, 3: busy; 4: beyond the burst limit of 3: accepted and dropped.
	if want := []int{202, 400, 400, 202}; !equalInts(statuses, want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
	h.clock.Advance(5 * time.Second)
	if e := h.entry(tok, salesWS, forecastDS, last); e != nil {
		t.Fatalf("dropped refresh appeared: %v", e)
	}
	reqs := h.emu.Requests()
	if reqs[len(reqs)-2].Error != "dropped (burst)" {
		t.Errorf("request log does not mark the drop: %+v", reqs[len(reqs)-2])
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPermissions(t *testing.T) {
	h := start(t, nil)
	tok := h.pbiToken()
	outsider := h.token(outsiderID, "demo-outsider-secret", pbiScope)
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		code                      string
	}{
		{"not a member", "POST", refreshesPath(salesWS, salesDS), outsider, 404, "PowerBIEntityNotFound"},
		{"not a member, history", "GET", refreshesPath(salesWS, salesDS), outsider, 404, "PowerBIEntityNotFound"},
		{"workspace without the app", "GET", refreshesPath(restrictedWS, payrollDS), tok, 404, "PowerBIEntityNotFound"},
		{"unknown dataset", "GET", refreshesPath(salesWS, "00000000-0000-4000-8000-000000000000"), tok, 404, "PowerBIEntityNotFound"},
		{"dataset of another workspace", "GET", refreshesPath(salesWS, teamDS), tok, 404, "PowerBIEntityNotFound"},
		{"unknown refresh", "GET", refreshesPath(salesWS, salesDS) + "/00000000-0000-4000-8000-000000000000", tok, 404, "PowerBIEntityNotFound"},
		{"no token", "GET", refreshesPath(salesWS, salesDS), "", 401, "PowerBINotAuthorizedException"},
		{"forged token", "GET", refreshesPath(salesWS, salesDS), tok[:len(tok)-4] + "AAAA", 401, "PowerBINotAuthorizedException"},
		{"vault token", "GET", refreshesPath(salesWS, salesDS), h.token(appID, appSecret, "https://vault.azure.net/.default"), 401, "PowerBINotAuthorizedException"},
		{"unknown route", "GET", "/v1.0/myorg/nothing", tok, 404, "NotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(tc.method, tc.path, tc.token, "", "")
			if r.status != tc.status || errorCode(t, r) != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	t.Run("my workspace routes refuse service principals", func(t *testing.T) {
		r := h.do("GET", "/v1.0/myorg/datasets/"+aliceDS+"/refreshes", tok, "", "")
		if r.status != 403 || string(r.body) != `{"Message":"API is not accessible for application"}` {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("viewer cannot refresh", func(t *testing.T) {
		if err := h.emu.SetMember(salesWS, outsiderID, "Viewer"); err != nil {
			t.Fatal(err)
		}
		r := h.do("POST", refreshesPath(salesWS, salesDS), outsider, "", "")
		if r.status != 401 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if r := h.do("GET", refreshesPath(salesWS, salesDS), outsider, "", ""); r.status != 200 {
			t.Fatalf("viewer history: %d", r.status)
		}
	})
	t.Run("tenant switch off", func(t *testing.T) {
		h.emu.SetTenantSwitches(tenantID, false, false)
		defer h.emu.SetTenantSwitches(tenantID, true, true)
		r := h.do("GET", refreshesPath(salesWS, salesDS), tok, "", "")
		if r.status != 401 || errorCode(t, r) != "ServicePrincipalIsNotAllowedByTenantAdminSwitch" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		for _, status := range []int{401, 403} {
			h := start(t, demo(t, func(sc *Scenario) { sc.Settings.ExpiredTokenStatus = status }))
			tok := h.pbiToken()
			h.clock.Advance(time.Hour)
			r := h.do("GET", refreshesPath(salesWS, salesDS), tok, "", "")
			if r.status != status || errorCode(t, r) != "TokenExpired" {
				t.Fatalf("%d %s", r.status, r.body)
			}
		}
	})
}

func TestBadRefreshRequests(t *testing.T) {
	h := start(t, nil)
	tok := h.pbiToken()
	for _, tc := range []struct {
		name, ct, body string
		status         int
	}{
		{"malformed JSON", "application/json", `{"type":`, 400},
		{"not an object", "application/json", `[1,2]`, 400},
		{"wrong content type", "text/plain", `{"type":"full"}`, 415},
		{"unknown enum", "application/json", `{"type":"add"}`, 400},
		{"unknown property", "application/json", `{"typo":"full"}`, 400},
		{"integer as string", "application/json", `{"retryCount":"x"}`, 400},
		{"negative retries", "application/json", `{"retryCount":-1}`, 400},
		{"timeout over 24h", "application/json", `{"timeout":"24:00:00"}`, 400},
		{"object without table", "application/json", `{"objects":[{"partition":"p"}]}`, 400},
		{"bad bool", "application/json", `{"applyRefreshPolicy":"maybe"}`, 400},
		{"bad date", "application/json", `{"effectiveDate":"yesterday"}`, 400},
		{"date without time", "application/json", `{"effectiveDate":"2026-01-01"}`, 400},
		{"property name in another case", "application/json", `{"Type":"Full"}`, 400},
		{"notifyOption with enhanced", "application/json", `{"notifyOption":"MailOnFailure","retryCount":3}`, 400},
		{"oversized", "application/json", `{"objects":[` + strings.Repeat(`{"table":"t"},`, 100000) + `{"table":"t"}]}`, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("POST", refreshesPath(salesWS, salesDS), tok, tc.ct, tc.body)
			if r.status != tc.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
			}
			if e := r.json(t)["error"].(map[string]any); e["code"] == "" {
				t.Fatalf("no error code: %s", r.body)
			}
		})
	}
	// Accepted shapes: case-insensitive enum values, string booleans,
	// classic with notifyOption.
	for _, body := range []string{
		`{"type":"FULL","commitMode":"transactional","applyRefreshPolicy":"False","effectiveDate":"2026-01-01T00:00:00Z"}`,
		`{"notifyOption":"nonotification"}`,
		``,
	} {
		r, _ := h.post(tok, salesWS, salesDS, body)
		if r.status != 202 {
			t.Fatalf("%s: %d %s", body, r.status, r.body)
		}
		h.clock.Advance(time.Minute)
	}
}

func TestNameResolutionRoutes(t *testing.T) {
	h := start(t, nil)
	tok := h.pbiToken()
	names := func(path string) []string {
		t.Helper()
		r := h.do("GET", path, tok, "", "")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		var out struct{ Value []map[string]any }
		json.Unmarshal(r.body, &out)
		var n []string
		for _, v := range out.Value {
			n = append(n, v["name"].(string))
		}
		return n
	}
	for _, tc := range []struct{ filter, want string }{
		{"", "Sales,Team"},
		{"name eq 'Sales'", "Sales"},
		{"tolower(name) eq 'team'", "Team"},
		{"contains(name,'ale')", "Sales"},
		{"name eq 'Team' or name eq 'Sales'", "Sales,Team"},
		{"name eq 'Restricted'", ""}, // exists, but the app is not a member
	} {
		path := "/v1.0/myorg/groups"
		if tc.filter != "" {
			path += "?$filter=" + strings.ReplaceAll(tc.filter, " ", "%20")
		}
		if got := strings.Join(names(path), ","); got != tc.want {
			t.Errorf("filter %q: %q, want %q", tc.filter, got, tc.want)
		}
	}
	if r := h.do("GET", "/v1.0/myorg/groups?$filter=startswith(name,'S')", tok, "", ""); r.status != 400 {
		t.Errorf("unsupported filter: %d", r.status)
	}
	if got := strings.Join(names("/v1.0/myorg/groups/"+salesWS+"/datasets"), ","); got != "Sales Model,Finance Model,Inventory Model,Forecast Model,Archive Model" {
		t.Errorf("datasets: %s", got)
	}
	r := h.do("GET", "/v1.0/myorg/groups/"+salesWS+"/datasets/"+salesDS, tok, "", "")
	if r.status != 200 || r.json(t)["isRefreshable"] != true {
		t.Errorf("dataset: %d %s", r.status, r.body)
	}
	r = h.do("GET", "/v1.0/myorg/groups/"+salesWS, tok, "", "")
	if r.status != 200 || r.json(t)["isOnDedicatedCapacity"] != true {
		t.Errorf("group: %d %s", r.status, r.body)
	}
	r = h.do("GET", "/v1.0/myorg/groups/"+salesWS+"/datasets/"+salesDS+"/refreshSchedule", tok, "", "")
	if s := r.json(t); r.status != 200 || s["enabled"] != true || len(s["times"].([]any)) != 2 {
		t.Errorf("schedule: %d %s", r.status, r.body)
	}
	// The admin probe: $top required.
	if r := h.do("GET", "/v1.0/myorg/admin/groups", tok, "", ""); r.status != 400 {
		t.Errorf("admin groups without $top: %d", r.status)
	}
	if got := names("/v1.0/myorg/admin/groups?$top=1"); len(got) != 1 {
		t.Errorf("admin groups $top=1: %v", got)
	}
	h.emu.SetTenantSwitches(tenantID, true, false)
	if r := h.do("GET", "/v1.0/myorg/admin/groups?$top=1", tok, "", ""); r.status != 401 {
		t.Errorf("admin groups without the admin API switch: %d", r.status)
	}
}

func TestDataflows(t *testing.T) {
	h := start(t, nil)
	tok := h.pbiToken()
	base := "/v1.0/myorg/groups/" + salesWS + "/dataflows/" + salesFlow
	r := h.do("POST", base+"/refreshes?processType=default", tok, "application/json", `{"notifyOption":"NoNotification"}`)
	if r.status != 200 {
		t.Fatalf("dataflow refresh: %d %s", r.status, r.body)
	}
	if r := h.do("POST", base+"/refreshes", tok, "application/json", `{"notifyOption":"MailOnCompletion"}`); r.status != 400 {
		t.Errorf("MailOnCompletion is unsupported for dataflows: %d", r.status)
	}
	var tx struct{ Value []map[string]any }
	json.Unmarshal(h.do("GET", base+"/transactions", tok, "", "").body, &tx)
	if len(tx.Value) != 1 || tx.Value[0]["status"] != "InProgress" {
		t.Fatalf("transactions: %+v", tx)
	}
	id := tx.Value[0]["id"].(string)
	cancel := "/v1.0/myorg/groups/" + salesWS + "/dataflows/transactions/" + strings.NewReplacer("@", "%40", "$", "%24").Replace(id) + "/cancel"
	r = h.do("POST", cancel, tok, "", "")
	if r.status != 200 || r.json(t)["status"] != "successfullyMarked" {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if r := h.do("POST", cancel, tok, "", ""); r.json(t)["status"] != "alreadyConcluded" {
		t.Fatalf("second cancel: %s", r.body)
	}
}

func TestThrottling(t *testing.T) {
	h := start(t, demo(t, func(sc *Scenario) { sc.Throttle = &Throttle{Limit: 3, Window: Duration(time.Minute)} }))
	tok := h.pbiToken()
	path := refreshesPath(salesWS, salesDS)
	for i := 0; i < 3; i++ {
		if r := h.do("GET", path, tok, "", ""); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	h.clock.Advance(20 * time.Second)
	r := h.do("GET", path, tok, "", "")
	if r.status != 429 || r.header.Get("Retry-After") != "40" ||
		r.json(t)["message"] != "You have exceeded the amount of requests allowed in the current time frame and further requests will fail. Retry in 40 seconds." {
		t.Fatalf("4th request: %d %v %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	// Another caller has its own window.
	other := h.token(outsiderID, "demo-outsider-secret", pbiScope)
	if r := h.do("GET", "/v1.0/myorg/groups", other, "", ""); r.status != 200 {
		t.Fatalf("other caller: %d", r.status)
	}
	h.clock.Advance(40 * time.Second)
	if r := h.do("GET", path, tok, "", ""); r.status != 200 {
		t.Fatalf("after Retry-After: %d", r.status)
	}
	// A storm refuses everyone until it ends, counting down.
	h.emu.SetThrottle(nil)
	h.emu.Storm(90 * time.Second)
	h.clock.Advance(30 * time.Second)
	if r := h.do("GET", path, tok, "", ""); r.status != 429 || r.header.Get("Retry-After") != "60" {
		t.Fatalf("storm: %d %s", r.status, r.header.Get("Retry-After"))
	}
	h.clock.Advance(60 * time.Second)
	if r := h.do("GET", path, tok, "", ""); r.status != 200 {
		t.Fatalf("after the storm: %d", r.status)
	}
	// The log records what each 429 asked for.
	n := 0
	for _, q := range h.emu.Requests() {
		if q.Status == 429 && q.RetryAfter > 0 {
			n++
		}
	}
	if n != 2 {
		t.Errorf("logged %d 429s with Retry-After, want 2", n)
	}
}

func TestFaults(t *testing.T) {
	h := start(t, nil)
	tok := h.pbiToken()
	path := refreshesPath(salesWS, salesDS)
	if err := h.emu.SetFaults(Fault{Endpoint: "refresh.history", Status: 503, Count: 2, RetryAfter: 7}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		r := h.do("GET", path, tok, "", "")
		if r.status != 503 || r.header.Get("Retry-After") != "7" || r.header.Get("RequestId") == "" {
			t.Fatalf("fault %d: %d %v", i, r.status, r.header)
		}
	}
	if r := h.do("GET", path, tok, "", ""); r.status != 200 {
		t.Fatalf("after the fault's count: %d", r.status)
	}
	// Other endpoints are untouched by an endpoint-specific fault.
	h.emu.SetFaults(Fault{Endpoint: "refresh.details", Status: 500})
	if r := h.do("GET", path, tok, "", ""); r.status != 200 {
		t.Fatalf("history under a details fault: %d", r.status)
	}
	// Connection reset: the client gets a transport error, not a response.
	h.emu.SetFaults(Fault{Endpoint: "*", Reset: true, Count: 1})
	req, _ := http.NewRequest("GET", h.emu.URL()+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if res, err := h.hc.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("reset fault answered %d", res.StatusCode)
	}
	// Latency and slow bodies delay, and the body still arrives whole.
	h.emu.SetFaults(Fault{Endpoint: "refresh.history", Latency: Duration(50 * time.Millisecond), SlowBody: Duration(50 * time.Millisecond)})
	began := time.Now()
	r := h.do("GET", path, tok, "", "")
	if el := time.Since(began); r.status != 200 || el < 90*time.Millisecond {
		t.Fatalf("latency fault: %d after %s", r.status, el)
	}
	r.json(t)
	// Processed, then answered late: the refresh exists before the client
	// hears of it.
	h.clock.Advance(time.Hour)
	tok = h.pbiToken()
	h.emu.SetFaults(Fault{Endpoint: "refresh.post", AfterHandler: true, Latency: Duration(100 * time.Millisecond)})
	began = time.Now()
	pr, id := h.post(tok, salesWS, salesDS, `{"type":"full"}`)
	if pr.status != 202 || id == "" || time.Since(began) < 90*time.Millisecond {
		t.Fatalf("late answer: %d %q after %s", pr.status, id, time.Since(began))
	}
	if err := h.emu.SetFaults(Fault{Endpoint: "refresh.post", AfterHandler: true}); err == nil {
		t.Error("after_handler without reset or latency was accepted")
	}
	if err := h.emu.SetFaults(Fault{Endpoint: "nope", Status: 500}); err == nil {
		t.Error("an unknown endpoint name was accepted")
	}
}

func TestRequestLogHoldsNoCredentials(t *testing.T) {
	h := start(t, nil)
	tok := h.pbiToken()
	h.post(tok, salesWS, salesDS, "")
	h.form("/"+publicID+"/oauth2/token", nil)
	h.form("/"+tenantID+"/oauth2/v2.0/token", map[string][]string{
		"grant_type": {"password"}, "client_id": {publicID}, "username": {"alice@contoso.onmicrosoft.com"},
		"password": {"demo-password"}, "scope": {pbiScope},
	})
	b, _ := json.Marshal(h.emu.Requests())
	for _, secret := range []string{tok, appSecret, "demo-password", tok[strings.LastIndexByte(tok, '.')+1:]} {
		if strings.Contains(string(b), secret) {
			t.Fatalf("request log contains a credential (%.12s…)", secret)
		}
	}
	if !strings.Contains(string(b), "client_secret=REDACTED") || !strings.Contains(string(b), "Bearer REDACTED") {
		t.Fatalf("request log lost the shape of the credentials: %s", b)
	}
}

func TestControlAPI(t *testing.T) {
	h := start(t, demo(t, longTokens))
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"PUT", "/_emulator/datasets/" + salesDS + "/behaviour", `{"duration":"2h","outcome":"failed"}`, 204},
		{"PUT", "/_emulator/datasets/" + salesDS + "/behaviour", `{"outcome":"exploded"}`, 400},
		{"POST", "/_emulator/datasets/" + financeDS + "/refreshes", `{"refresh_type":"Scheduled","duration":"1m"}`, 201},
		{"PUT", "/_emulator/faults", `[{"endpoint":"token","status":503,"count":1}]`, 204},
		{"PUT", "/_emulator/throttle", `{"limit":100,"window":"1m"}`, 204},
		{"PUT", "/_emulator/throttle", `null`, 204},
		{"POST", "/_emulator/throttle/storm", `{"for":"0s"}`, 204},
		{"POST", "/_emulator/vault/secrets/pbi-secret", `{"value":"v2"}`, 200},
		{"PUT", "/_emulator/apps/" + appID + "/secrets", `[{"value":"new","expires":"2030-01-01T00:00:00Z"}]`, 204},
		{"PATCH", "/_emulator/tenants/" + tenantID, `{"service_principals_allowed":true}`, 204},
		{"POST", "/_emulator/clock", `{"advance":"1h"}`, 200},
		{"GET", "/_emulator/requests?since=0", ``, 200},
		{"GET", "/_emulator/nothing", ``, 404},
	} {
		r := h.do(tc.method, tc.path, "", "application/json", tc.body)
		if r.status != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, r.status, r.body, tc.status)
		}
	}
	// The fault on the token endpoint fires once.
	if r := h.form("/"+tenantID+"/oauth2/v2.0/token", nil); r.status != 503 {
		t.Errorf("token under the injected fault: %d", r.status)
	}
	if r := h.form("/"+tenantID+"/oauth2/v2.0/token", nil); r.status != 400 {
		t.Errorf("token after the fault's count: %d", r.status)
	}
	if got := h.clock.Now(); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("clock after advance: %s", got)
	}
	// The behaviour change took effect: a 2 h refresh that fails.
	tok := h.token(appID, "new", pbiScope)
	_, id := h.post(tok, salesWS, salesDS, `{"type":"full"}`)
	h.clock.Advance(time.Hour)
	if r := h.do("GET", refreshesPath(salesWS, salesDS)+"/"+id, tok, "", ""); r.status != 202 {
		t.Fatalf("after 1h of a 2h refresh: %d", r.status)
	}
	h.clock.Advance(2 * time.Hour)
	if d := h.do("GET", refreshesPath(salesWS, salesDS)+"/"+id, tok, "", "").json(t); d["status"] != "Failed" {
		t.Fatalf("details: %v", d)
	}
}

// An injected 429 on a Power BI route has the service's 429 body (a
// top-level message, no error wrapper), as the throttle's own answers do,
// and a Date header on the emulator's clock.
func TestInjected429Shape(t *testing.T) {
	h := start(t, demo(t, nil))
	tok := h.pbiToken()
	if err := h.emu.SetFaults(Fault{Endpoint: "refresh.history", Status: 429, RetryAfter: 7, Count: 1}); err != nil {
		t.Fatal(err)
	}
	r := h.do("GET", refreshesPath(salesWS, salesDS), tok, "", "")
	body := r.json(t)
	if r.status != 429 || r.header.Get("Retry-After") != "7" || body["error"] != nil ||
		body["message"] != "You have exceeded the amount of requests allowed in the current time frame and further requests will fail. Retry in 7 seconds." {
		t.Fatalf("injected 429: %d %v %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if d, err := http.ParseTime(r.header.Get("Date")); err != nil || !d.Equal(h.clock.Now().Truncate(time.Second)) {
		t.Fatalf("Date %q (%v), want the emulator's clock %s", r.header.Get("Date"), err, h.clock.Now())
	}
}

// The control API answers only loopback callers, whatever address the
// emulator listens on.
func TestControlAPIOnlyFromLoopback(t *testing.T) {
	h := start(t, demo(t, nil))
	routes := h.emu.routes()
	for _, tc := range []struct {
		remote string
		want   int
	}{
		{"192.0.2.10:40000", http.StatusForbidden},
		{"[2001:db8::1]:40000", http.StatusForbidden},
		{"127.0.0.1:40000", http.StatusOK},
		{"[::1]:40000", http.StatusOK},
		{"[::ffff:127.0.0.1]:40000", http.StatusOK},
	} {
		req := httptest.NewRequest("GET", "/_emulator/requests?since=0", nil)
		req.RemoteAddr = tc.remote
		rec := httptest.NewRecorder()
		routes.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("from %s: %d %s, want %d", tc.remote, rec.Code, rec.Body, tc.want)
		}
	}
}
