package emulator

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// The names, schedule and dataflow endpoints against the spec: responses
// in every state, and the request bodies the emulator accepts.

func TestNamesAndDataflowsMatchSpec(t *testing.T) {
	s := loadSpec(t)
	v := &validator{s: s, extras: responseExtras, enumExtras: detailEnumExtras}
	h := start(t, namesScenario(t))
	tok := h.pbiToken()
	var checked int
	check := func(r resp, def string) {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("%s: status %d: %s", def, r.status, r.body)
		}
		var val any
		if err := json.Unmarshal(r.body, &val); err != nil {
			t.Fatalf("%s: %v", def, err)
		}
		for _, e := range v.check(val, def) {
			t.Errorf("%s %s", def, e)
		}
		checked++
	}
	g := "/v1.0/myorg/groups/"
	check(h.do("GET", "/v1.0/myorg/groups?"+url.Values{"$filter": {"name eq 'O''Brien' or tolower(name) eq 'zürich ventes'"}}.Encode()+"&$top=5&$skip=0", tok, "", ""), "Groups")
	check(h.do("GET", g+teamWS, tok, "", ""), "Group")
	check(h.do("GET", g+teamWS+"/datasets", tok, "", ""), "Datasets")
	check(h.do("GET", g+teamWS+"/datasets/"+reportingDS, tok, "", ""), "Dataset")
	check(h.do("GET", g+teamWS+"/datasets/upstreamDataflows", tok, "", ""), "DatasetToDataflowLinksResponse")
	check(h.do("GET", g+salesWS+"/datasets/upstreamDataflows", tok, "", ""), "DatasetToDataflowLinksResponse")
	if r := h.patchSchedule(tok, salesWS, financeDS, `{"value":{"days":["Monday"],"times":["07:30"],"enabled":true,"localTimeZoneId":"India Standard Time"}}`); r.status != 200 {
		t.Fatalf("PATCH: %d %s", r.status, r.body)
	}
	check(h.do("GET", schedulePath(salesWS, financeDS), tok, "", ""), "RefreshSchedule")
	check(h.do("GET", schedulePath(salesWS, inventoryDS), tok, "", ""), "RefreshSchedule") // never configured

	// Transactions in every state: Success, Failed, Cancelled, InProgress,
	// an external Scheduled one.
	flow := flowPath(salesWS, salesFlow)
	h.refreshFlow(tok, salesWS, salesFlow)
	check(h.do("GET", flow+"/transactions", tok, "", ""), "DataflowTransactions")
	h.clock.Advance(time.Minute)
	h.emu.SetBehaviour(salesFlow, Behaviour{Duration: DurationDist{Min: Duration(time.Second), Max: Duration(time.Second)}, Outcome: "failed"})
	h.refreshFlow(tok, salesWS, salesFlow)
	h.clock.Advance(time.Minute)
	h.emu.SetBehaviour(salesFlow, Behaviour{Duration: DurationDist{Min: Duration(time.Hour), Max: Duration(time.Hour)}})
	h.refreshFlow(tok, salesWS, salesFlow)
	var tx struct{ Value []map[string]any }
	json.Unmarshal(h.do("GET", flow+"/transactions", tok, "", "").body, &tx)
	cancel := g + salesWS + "/dataflows/transactions/" + url.PathEscape(tx.Value[0]["id"].(string)) + "/cancel"
	check(h.do("POST", cancel, tok, "", ""), "DataflowTransactionStatus") // successfullyMarked
	check(h.do("POST", cancel, tok, "", ""), "DataflowTransactionStatus") // alreadyConcluded
	check(h.do("POST", g+salesWS+"/dataflows/transactions/"+url.PathEscape("x@y$1")+"/cancel", tok, "", ""), "DataflowTransactionStatus")
	h.clock.Advance(time.Minute)
	if _, err := h.emu.StartExternalTransaction(salesFlow, "Scheduled", 0); err != nil {
		t.Fatal(err)
	}
	h.refreshFlow(tok, salesWS, salesFlow) // busy: refused
	check(h.do("GET", flow+"/transactions", tok, "", ""), "DataflowTransactions")
	statuses := map[string]bool{}
	json.Unmarshal(h.do("GET", flow+"/transactions", tok, "", "").body, &tx)
	for _, x := range tx.Value {
		statuses[fmt.Sprint(x["status"], "/", x["refreshType"])] = true
	}
	for _, want := range []string{"Success/OnDemand", "Failed/OnDemand", "Cancelled/OnDemand", "InProgress/Scheduled"} {
		if !statuses[want] {
			t.Errorf("no %s transaction was checked: %v", want, statuses)
		}
	}
	t.Logf("%d responses checked against the spec", checked)
}

// TestScheduleRequestsMatchSpec: every request example of the spec for
// PATCH refreshSchedule and for the dataflow refresh is accepted, and of
// a few thousand generated PATCH bodies each one accepted is a valid
// RefreshScheduleRequest (enum values in any case), each one refused breaks
// a rule the REST page states.
func TestScheduleRequestsMatchSpec(t *testing.T) {
	s := loadSpec(t)
	h := start(t, demo(t, longTokens))
	tok := h.pbiToken()
	examples := 0
	for path, param := range map[string]string{
		"/v1.0/myorg/groups/{groupId}/datasets/{datasetId}/refreshSchedule": "datasetModelRefreshScheduleRequest",
		"/v1.0/myorg/datasets/{datasetId}/refreshSchedule":                  "datasetModelRefreshScheduleRequest",
		"/v1.0/myorg/groups/{groupId}/dataflows/{dataflowId}/refreshes":     "refreshRequest",
	} {
		op := s.Paths[path]["patch"]
		target := schedulePath(salesWS, salesDS)
		if strings.HasSuffix(path, "/refreshes") {
			op, target = s.Paths[path]["post"], flowPath(salesWS, salesFlow)+"/refreshes?processType=default"
		}
		ex := op.(map[string]any)["x-ms-examples"].(map[string]any)
		names := make([]string, 0, len(ex))
		for k := range ex {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, name := range names {
			body, ok := ex[name].(map[string]any)["parameters"].(map[string]any)[param]
			if !ok {
				t.Fatalf("%s %s: no %s", path, name, param)
			}
			b, _ := json.Marshal(body)
			method := "PATCH"
			if strings.HasSuffix(path, "/refreshes") {
				method = "POST"
			}
			if r := h.do(method, target, tok, "application/json", string(b)); r.status != 200 {
				t.Errorf("%s %s: %s → %d %s", path, name, b, r.status, r.body)
			}
			h.clock.Advance(time.Minute)
			examples++
		}
	}
	if examples < 9 {
		t.Fatalf("only %d spec examples exercised", examples)
	}

	v := &validator{s: s, foldEnums: true}
	values := map[string][]string{
		"days":            {`["Monday"]`, `["sunday","Saturday"]`, `[]`, `["Mon"]`, `["Monday","monday"]`, `"Monday"`},
		"times":           {`["07:00"]`, `["00:30","23:30"]`, `[]`, `["7:00"]`, `["07:15"]`, `["24:00"]`, `[700]`},
		"enabled":         {`true`, `false`, `"true"`, `null`},
		"localTimeZoneId": {`"UTC"`, `"Pacific Standard Time"`, `"utc"`, `"Europe/Paris"`, `5`},
		"notifyOption":    {`"NoNotification"`, `"nonotification"`, `"MailOnFailure"`, `"MailOnCompletion"`},
		"NotifyOption":    {`"NoNotification"`},
		"interval":        {`"daily"`},
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rng := rand.New(rand.NewPCG(11, 11))
	accepted, refused := 0, 0
	for i := 0; i < 2000; i++ {
		parts := []string{}
		for _, k := range keys {
			if rng.IntN(3) == 0 {
				vals := values[k]
				parts = append(parts, fmt.Sprintf("%q:%s", k, vals[rng.IntN(len(vals))]))
			}
		}
		body := `{"value":{` + strings.Join(parts, ",") + `}}`
		r := h.patchSchedule(tok, salesWS, salesDS, body)
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		errs := v.check(m, "RefreshScheduleRequest")
		switch r.status {
		case 200:
			accepted++
			if len(errs) > 0 || !scheduleBodyObeysRules(m["value"].(map[string]any)) {
				t.Errorf("accepted %s, which the spec or the REST page rejects: %v", body, errs)
			}
		case 400:
			refused++
			if len(errs) == 0 && scheduleBodyObeysRules(m["value"].(map[string]any)) {
				t.Errorf("refused %s (%s), which the spec allows", body, r.body)
			}
		default:
			t.Fatalf("%s: %d %s", body, r.status, r.body)
		}
	}
	t.Logf("%d bodies accepted, %d refused", accepted, refused)
	if accepted < 100 || refused < 100 {
		t.Fatalf("generator is lopsided: %d accepted, %d refused", accepted, refused)
	}
}

// scheduleBodyObeysRules applies what the REST page and the spec's
// descriptions state beyond the schema: times hh:mm with minutes 00 or
// 30, at least one day, a disabling request alone, a known Windows zone,
// one notifyOption, and a service principal (the caller here) sending only
// NoNotification. It also applies the emulator's own refusals, each
// documented where parseScheduleRequest is: nulls, duplicates, an empty
// value, enabled as a string.
func scheduleBodyObeysRules(v map[string]any) bool {
	if len(v) == 0 {
		return false
	}
	seen := map[string]bool{}
	for k, x := range v {
		switch k {
		case "days":
			list, ok := x.([]any)
			if !ok || len(list) == 0 {
				return false
			}
			for _, d := range list {
				s, ok := d.(string)
				day, known := canonicalDay(s)
				if !ok || !known || seen["day:"+day] {
					return false
				}
				seen["day:"+day] = true
			}
		case "times":
			list, ok := x.([]any)
			if !ok {
				return false
			}
			for _, tm := range list {
				s, ok := tm.(string)
				if !ok || !scheduleTimeRE.MatchString(s) || seen["time:"+s] {
					return false
				}
				seen["time:"+s] = true
			}
		case "enabled":
			b, ok := x.(bool)
			if !ok || (!b && len(v) > 1) {
				return false
			}
		case "localTimeZoneId":
			s, ok := x.(string)
			if !ok {
				return false
			}
			if _, known := foldEnum(s, []string{"UTC", "Pacific Standard Time"}); !known {
				return false
			}
		case "notifyOption", "NotifyOption":
			if seen["notify"] || !strings.EqualFold(fmt.Sprint(x), "NoNotification") {
				return false
			}
			seen["notify"] = true
		default:
			return false
		}
	}
	return true
}
