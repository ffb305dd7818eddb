package emulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func flowPath(ws, df string) string { return "/v1.0/myorg/groups/" + ws + "/dataflows/" + df }

func (h *harness) transactions(tok, ws, df string) []map[string]any {
	h.t.Helper()
	r := h.do("GET", flowPath(ws, df)+"/transactions", tok, "", "")
	if r.status != 200 {
		h.t.Fatalf("transactions: %d %s", r.status, r.body)
	}
	var out struct{ Value []map[string]any }
	if err := json.Unmarshal(r.body, &out); err != nil {
		h.t.Fatal(err)
	}
	return out.Value
}

func (h *harness) refreshFlow(tok, ws, df string) resp {
	h.t.Helper()
	return h.do("POST", flowPath(ws, df)+"/refreshes", tok, "application/json", `{"notifyOption":"NoNotification"}`)
}

func TestDataflowRefreshRequests(t *testing.T) {
	h := start(t, demo(t, longTokens))
	tok := h.pbiToken()
	for _, tc := range []struct {
		name, query, ct, body string
		status                int
		msg                   string
	}{
		{"spec example", "?processType=default", "application/json", `{"notifyOption":"MailOnFailure"}`, 200, ""},
		{"process full", "?processType=processFull", "application/json", `{"notifyOption":"NoNotification"}`, 200, ""},
		{"enum in any case", "", "application/json", `{"notifyOption":"nonotification"}`, 200, ""},
		{"no body", "", "", ``, 400, "body is required"},
		{"no notifyOption", "", "application/json", `{}`, 400, "notifyOption is required"},
		{"MailOnCompletion", "", "application/json", `{"notifyOption":"MailOnCompletion"}`, 400, "not a valid value for notifyOption"},
		{"another property", "", "application/json", `{"notifyOption":"NoNotification","type":"Full"}`, 400, `"type" is not a property`},
		{"not an object", "", "application/json", `"NoNotification"`, 400, "not a valid JSON object"},
		{"bad processType", "?processType=incremental", "application/json", `{"notifyOption":"NoNotification"}`, 400, "processType"},
		{"wrong content type", "", "text/plain", `{"notifyOption":"NoNotification"}`, 415, "media type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("POST", flowPath(salesWS, salesFlow)+"/refreshes"+tc.query, tok, tc.ct, tc.body)
			if r.status != tc.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.status == 200 {
				if len(r.body) != 0 || r.header.Get("Location") != "" {
					t.Errorf("200 with a body or Location: %v %s", r.header, r.body)
				}
				h.clock.Advance(time.Minute) // Sales Staging runs 5 s
				return
			}
			if msg := r.json(t)["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q does not contain %q", msg, tc.msg)
			}
		})
	}
	if n := len(h.transactions(tok, salesWS, salesFlow)); n != 3 {
		t.Errorf("%d transactions, want one per accepted POST", n)
	}
}

var txnIDRE = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z)@([0-9a-f-]{36})\$(\d+)$`)

func TestDataflowTransactions(t *testing.T) {
	h := start(t, demo(t, longTokens))
	tok := h.pbiToken()
	if r := h.refreshFlow(tok, salesWS, salesFlow); r.status != 200 {
		t.Fatal(r.status)
	}
	// Busy while the transaction runs.
	r := h.refreshFlow(tok, salesWS, salesFlow)
	if r.status != 400 || r.json(t)["error"].(map[string]any)["message"] != "Invalid dataflow refresh request. Another refresh request is already executing" {
		t.Fatalf("POST while running: %d %s", r.status, r.body)
	}
	tx := h.transactions(tok, salesWS, salesFlow)
	if len(tx) != 1 || tx[0]["status"] != "InProgress" || tx[0]["refreshType"] != "OnDemand" || tx[0]["endTime"] != nil || tx[0]["startTime"] != "2026-03-01T10:00:00.0000000Z" {
		t.Fatalf("running transaction: %v", tx)
	}
	h.clock.Advance(10 * time.Second)
	h.emu.SetBehaviour(salesFlow, Behaviour{Duration: DurationDist{Min: Duration(time.Minute), Max: Duration(time.Minute)}, Outcome: "failed"})
	h.refreshFlow(tok, salesWS, salesFlow)
	h.clock.Advance(2 * time.Minute)
	h.emu.SetBehaviour(salesFlow, Behaviour{Duration: DurationDist{Min: Duration(time.Hour), Max: Duration(time.Hour)}})
	h.refreshFlow(tok, salesWS, salesFlow)
	tx = h.transactions(tok, salesWS, salesFlow)
	if len(tx) != 3 {
		t.Fatalf("%d transactions", len(tx))
	}
	// Newest first, with the statuses the emulator uses.
	if got := []any{tx[0]["status"], tx[1]["status"], tx[2]["status"]}; got[0] != "InProgress" || got[1] != "Failed" || got[2] != "Success" {
		t.Fatalf("statuses newest first: %v", got)
	}
	if tx[1]["endTime"] != "2026-03-01T10:01:10.0000000Z" || tx[2]["endTime"] != "2026-03-01T10:00:05.0000000Z" {
		t.Errorf("end times: %v %v", tx[1]["endTime"], tx[2]["endTime"])
	}
	// Ids: start time @ a new GUID (not the dataflow's) $ a sequence number.
	guids := map[string]bool{}
	for i, x := range tx {
		m := txnIDRE.FindStringSubmatch(x["id"].(string))
		if m == nil {
			t.Fatalf("id %q does not look like 2020-08-27T16:07:47.2487692Z@<guid>$2", x["id"])
		}
		if m[1] != x["startTime"] || m[3] != []string{"3", "2", "1"}[i] || strings.EqualFold(m[2], salesFlow) || guids[m[2]] {
			t.Errorf("id %q: start %s, sequence, or GUID reused", x["id"], x["startTime"])
		}
		guids[m[2]] = true
	}
	// Cancel: marked, then Cancelled with an end time.
	cancel := flowPath(salesWS, "transactions") + "/" + url.PathEscape(tx[0]["id"].(string)) + "/cancel"
	if r := h.do("POST", cancel, tok, "", ""); r.status != 200 || r.json(t)["status"] != "successfullyMarked" {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	h.clock.Advance(time.Second)
	if x := h.transactions(tok, salesWS, salesFlow)[0]; x["status"] != "Cancelled" || x["endTime"] != "2026-03-01T10:02:10.0000000Z" {
		t.Fatalf("after cancel: %v", x)
	}
	if r := h.refreshFlow(tok, salesWS, salesFlow); r.status != 200 {
		t.Fatalf("POST after the cancel: %d %s", r.status, r.body)
	}
}

func TestDataflowCancelEncodings(t *testing.T) {
	h := start(t, demo(t, longTokens))
	tok := h.pbiToken()
	for _, tc := range []struct {
		name   string
		encode func(string) string
	}{
		{"raw", func(s string) string { return s }},
		{"url.PathEscape", url.PathEscape},
		{"every reserved character escaped", func(s string) string {
			return strings.NewReplacer(":", "%3A", "@", "%40", "$", "%24").Replace(s)
		}},
		{"lower-case escapes", func(s string) string {
			return strings.NewReplacer(":", "%3a", "@", "%40", "$", "%24").Replace(s)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.clock.Advance(time.Minute)
			if r := h.refreshFlow(tok, salesWS, salesFlow); r.status != 200 {
				t.Fatal(r.status)
			}
			id := h.transactions(tok, salesWS, salesFlow)[0]["id"].(string)
			path := flowPath(salesWS, "transactions") + "/" + tc.encode(id) + "/cancel"
			req, err := http.NewRequest("POST", h.emu.URL()+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			r := h.send(req)
			if m := r.json(t); r.status != 200 || m["status"] != "successfullyMarked" || m["transactionId"] != id {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
		})
	}
	r := h.do("POST", flowPath(salesWS, "transactions")+"/"+url.PathEscape("2020-01-01T00:00:00.0000000Z@00000000-0000-4000-8000-000000000000$1")+"/cancel", tok, "", "")
	if r.status != 200 || r.json(t)["status"] != "notFound" {
		t.Fatalf("unknown transaction: %d %s", r.status, r.body)
	}
}

func TestDataflowTransactionDelay(t *testing.T) {
	h := start(t, demo(t, func(sc *Scenario) { sc.Settings.TransactionDelay = Duration(2 * time.Second) }))
	tok := h.pbiToken()
	if r := h.refreshFlow(tok, salesWS, salesFlow); r.status != 200 {
		t.Fatal(r.status)
	}
	if tx := h.transactions(tok, salesWS, salesFlow); len(tx) != 0 {
		t.Fatalf("transaction visible inside the delay: %v", tx)
	}
	// Still busy, and the request log knows the id the client cannot see.
	if r := h.refreshFlow(tok, salesWS, salesFlow); r.status != 400 {
		t.Fatalf("POST inside the delay: %d", r.status)
	}
	var id string
	for _, q := range h.emu.Requests() {
		if q.Operation == "dataflow.refresh" && q.Status == 200 {
			id = q.RefreshID
		}
	}
	cancel := flowPath(salesWS, "transactions") + "/" + url.PathEscape(id) + "/cancel"
	if r := h.do("POST", cancel, tok, "", ""); r.json(t)["status"] != "notFound" {
		t.Fatalf("cancel inside the delay: %s", r.body)
	}
	h.clock.Advance(2 * time.Second) // the refresh runs 5 s
	tx := h.transactions(tok, salesWS, salesFlow)
	if len(tx) != 1 || tx[0]["id"] != id || tx[0]["status"] != "InProgress" {
		t.Fatalf("after the delay: %v", tx)
	}
}

func TestExternalDataflowTransactions(t *testing.T) {
	h := start(t, demo(t, longTokens))
	tok := h.pbiToken()
	id, err := h.emu.StartExternalTransaction(salesFlow, "Scheduled", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tx := h.transactions(tok, salesWS, salesFlow)
	if len(tx) != 1 || tx[0]["id"] != id || tx[0]["refreshType"] != "Scheduled" || tx[0]["status"] != "InProgress" {
		t.Fatalf("external transaction: %v", tx)
	}
	// A client's POST meets someone else's refresh.
	if r := h.refreshFlow(tok, salesWS, salesFlow); r.status != 400 {
		t.Fatalf("POST during someone else's refresh: %d", r.status)
	}
	h.clock.Advance(11 * time.Minute)
	for _, tc := range []struct {
		id, body string
		status   int
	}{
		{salesFlow, `{"refresh_type":"OnDemand","duration":"1m"}`, 201},
		{salesFlow, `{}`, 201}, // Scheduled, the dataflow's own duration
		{salesFlow, `{"refresh_type":"ViaApi"}`, 400},
		{"00000000-0000-4000-8000-000000000000", `{}`, 400},
		{salesFlow, `{"refresh":"x"}`, 400},
	} {
		r := h.do("POST", "/_emulator/dataflows/"+tc.id+"/transactions", "", "application/json", tc.body)
		if r.status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.body, r.status, r.body, tc.status)
		}
		if tc.status == 201 && !txnIDRE.MatchString(r.json(t)["transactionId"].(string)) {
			t.Errorf("control API id: %s", r.body)
		}
	}
	tx = h.transactions(tok, salesWS, salesFlow)
	if len(tx) != 3 || tx[1]["refreshType"] != "OnDemand" || tx[0]["refreshType"] != "Scheduled" {
		t.Fatalf("after the control API: %v", tx)
	}
}

func TestSharedDataflowQuota(t *testing.T) {
	h := start(t, demo(t, longTokens))
	tok := h.pbiToken()
	// A portal refresh does not count; a scheduled one does.
	if _, err := h.emu.StartExternalTransaction(financeFlow, "OnDemand", time.Second); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	if _, err := h.emu.StartExternalTransaction(financeFlow, "Scheduled", time.Second); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	for i := 0; i < 7; i++ {
		if r := h.refreshFlow(tok, teamWS, financeFlow); r.status != 200 {
			t.Fatalf("refresh %d: %d %s", i+2, r.status, r.body)
		}
		h.clock.Advance(time.Hour)
	}
	r := h.refreshFlow(tok, teamWS, financeFlow)
	if r.status != 400 || errorCode(t, r) != "DailyDataflowRefreshLimitExceeded" ||
		r.json(t)["error"].(map[string]any)["message"] != "Skipping dataflow refresh as number of auto refreshes in last 24 hours (8) exceeded allowed limit 8" {
		t.Fatalf("9th refresh: %d %s", r.status, r.body)
	}
	h.clock.Advance(18 * time.Hour)
	if r := h.refreshFlow(tok, teamWS, financeFlow); r.status != 200 {
		t.Fatalf("a day later: %d %s", r.status, r.body)
	}
	// Premium has no cap.
	for i := 0; i < 10; i++ {
		if r := h.refreshFlow(tok, salesWS, salesFlow); r.status != 200 {
			t.Fatalf("premium refresh %d: %d %s", i+1, r.status, r.body)
		}
		h.clock.Advance(time.Minute)
	}
}

func TestUpstreamDataflows(t *testing.T) {
	h := start(t, nil)
	tok := h.pbiToken()
	links := func(ws string) string {
		t.Helper()
		r := h.do("GET", "/v1.0/myorg/groups/"+ws+"/datasets/upstreamDataflows", tok, "", "")
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var out struct{ Value []linkJSON }
		json.Unmarshal(r.body, &out)
		var s []string
		for _, l := range out.Value {
			s = append(s, l.DatasetObjectID[24:]+">"+l.DataflowObjectID[24:]+"@"+l.WorkspaceObjectID[24:])
		}
		return strings.Join(s, " ")
	}
	// Finance Reporting (Team) reads Finance Dataflow (Team) and Sales
	// Staging (Sales); the link names the dataflow's workspace.
	if got := links(teamWS); got != "000000000209>000000000302@000000000102 000000000209>000000000301@000000000101" {
		t.Errorf("Team links: %s", got)
	}
	if got := links(salesWS); got != "" {
		t.Errorf("Sales links: %s", got)
	}
	// The literal route does not shadow datasets.get, nor the reverse.
	if r := h.do("GET", "/v1.0/myorg/groups/"+teamWS+"/datasets/"+reportingDS, tok, "", ""); r.status != 200 || r.json(t)["name"] != "Finance Reporting" {
		t.Errorf("datasets.get beside the literal route: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/v1.0/myorg/groups/"+teamWS+"/datasets/upstreamdataflows", tok, "", ""); r.status != 404 {
		t.Errorf("another spelling is a dataset id: %d", r.status)
	}
	outsider := h.token(outsiderID, "demo-outsider-secret", pbiScope)
	if r := h.do("GET", "/v1.0/myorg/groups/"+teamWS+"/datasets/upstreamDataflows", outsider, "", ""); r.status != 404 {
		t.Errorf("outsider: %d", r.status)
	}
	var ops []string
	for _, q := range h.emu.Requests() {
		if strings.HasSuffix(q.Path, "/upstreamDataflows") {
			ops = append(ops, q.Operation)
		}
	}
	if strings.Join(ops, ",") != "datasets.upstream,datasets.upstream,datasets.upstream" {
		t.Errorf("operations: %v", ops)
	}
}

func TestUpstreamDataflowsValidation(t *testing.T) {
	for _, tc := range []struct{ name, list, want string }{
		{"unknown dataflow", "[c0ffee00-0000-4000-8000-000000000399]",
			`workspaces[1].datasets[1].upstream_dataflows[0]: dataflow "c0ffee00-0000-4000-8000-000000000399" is not declared under any workspace's dataflows`},
		{"listed twice", "[c0ffee00-0000-4000-8000-000000000302, C0FFEE00-0000-4000-8000-000000000302]",
			`workspaces[1].datasets[1].upstream_dataflows[1]: dataflow C0FFEE00-0000-4000-8000-000000000302 is listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, line := replaceUpstream(t, tc.list)
			_, err := ParseScenario("demo.yaml", []byte(text))
			re := regexp.MustCompile(`^demo\.yaml:` + strconv.Itoa(line) + `:\d+: ` + regexp.QuoteMeta(tc.want) + `$`)
			if err == nil || !re.MatchString(err.Error()) {
				t.Fatalf("got  %v\nwant demo.yaml:%d:<col>: %s", err, line, tc.want)
			}
		})
	}
}

// replaceUpstream swaps Finance Reporting's upstream list in demo.yaml for
// a flow-style one and returns the text and the list's line.
func replaceUpstream(t *testing.T, list string) (string, int) {
	t.Helper()
	const block = "        upstream_dataflows:             # the dataflows it reads, in any workspace\n" +
		"          - c0ffee00-0000-4000-8000-000000000302\n" +
		"          - c0ffee00-0000-4000-8000-000000000301\n"
	text := string(demoScenario)
	i := strings.Index(text, block)
	if i < 0 {
		t.Fatal("demo.yaml changed: no upstream_dataflows block")
	}
	return text[:i] + "        upstream_dataflows: " + list + "\n" + text[i+len(block):], strings.Count(text[:i], "\n") + 1
}
