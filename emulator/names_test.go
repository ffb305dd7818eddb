package emulator

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// namesScenario adds workspaces whose names need care in OData literals.
func namesScenario(t *testing.T) *Scenario {
	return demo(t, func(sc *Scenario) {
		for i, name := range []string{"O'Brien", "Zürich Ventes", "Sales and Marketing", "it's 'quoted'"} {
			sc.Workspaces = append(sc.Workspaces, Workspace{
				ID: "c0ffee00-0000-4000-8000-00000000019" + string(rune('0'+i)), Name: name,
				Members: []Member{{Principal: appID, Role: "Viewer"}},
			})
		}
	})
}

func TestGroupFilters(t *testing.T) {
	h := start(t, namesScenario(t))
	tok := h.pbiToken()
	list := func(query string) (int, string) {
		t.Helper()
		r := h.do("GET", "/v1.0/myorg/groups"+query, tok, "", "")
		if r.status != 200 {
			return r.status, string(r.body)
		}
		var out struct{ Value []map[string]any }
		json.Unmarshal(r.body, &out)
		var n []string
		for _, v := range out.Value {
			n = append(n, v["name"].(string))
		}
		return 200, strings.Join(n, "|")
	}
	for _, tc := range []struct {
		name, filter, extra string
		want                string
	}{
		{"everything, sorted", "", "", "O'Brien|Sales|Sales and Marketing|Team|Zürich Ventes|it's 'quoted'"},
		{"doubled quote", "name eq 'O''Brien'", "", "O'Brien"},
		{"doubled quotes twice", "name eq 'it''s ''quoted'''", "", "it's 'quoted'"},
		{"tolower with a quote", "tolower(name) eq 'o''brien'", "", "O'Brien"},
		{"contains a quote", "contains(name,'''')", "", "O'Brien|it's 'quoted'"},
		{"non-ASCII", "name eq 'Zürich Ventes'", "", "Zürich Ventes"},
		{"non-ASCII lower-cased", "tolower(name) eq 'zürich ventes'", "", "Zürich Ventes"},
		{"tolower compares the literal as given", "tolower(name) eq 'ZÜRICH VENTES'", "", ""},
		{"name eq is exact", "name eq 'sales'", "", ""},
		{"and inside a literal", "name eq 'Sales and Marketing'", "", "Sales and Marketing"},
		{"or inside a literal", "contains(name,' or ') or name eq 'Team'", "", "Team"},
		{"or after a doubled quote", "name eq 'O''Brien' or name eq 'Team'", "", "O'Brien|Team"},
		{"and", "contains(name,'Sales') and contains(name,'Marketing')", "", "Sales and Marketing"},
		{"$top", "contains(name,'a')", "&$top=2", "Sales|Sales and Marketing"},
		{"$skip and $top", "contains(name,'a')", "&$skip=1&$top=2", "Sales and Marketing|Team"},
		{"$skip past the end", "", "&$skip=50", ""},
		{"no match is an empty list", "name eq 'Nope'", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Encoded as url.Values does (spaces as +) and as %20.
			for _, q := range []string{
				"?" + url.Values{"$filter": {tc.filter}}.Encode() + tc.extra,
				"?$filter=" + url.PathEscape(tc.filter) + tc.extra,
			} {
				if tc.filter == "" {
					q = "?" + strings.TrimPrefix(tc.extra, "&")
				}
				status, got := list(q)
				if status != 200 || got != tc.want {
					t.Errorf("%s: %d %q, want %q", q, status, got, tc.want)
				}
			}
		})
	}
	for _, q := range []string{
		"?$filter=" + url.QueryEscape("name eq 'O'Brien'"), // quote not doubled
		"?$filter=" + url.QueryEscape("name eq O''Brien"),
		"?$filter=" + url.QueryEscape("startswith(name,'S')"),
		"?$top=0", "?$top=x", "?$skip=-1",
	} {
		if status, body := list(q); status != 400 {
			t.Errorf("%s: %d %s, want 400", q, status, body)
		}
	}
}

func TestGroupCapacity(t *testing.T) {
	h := start(t, nil)
	tok := h.pbiToken()
	for ws, premium := range map[string]bool{salesWS: true, teamWS: false} {
		g := h.do("GET", "/v1.0/myorg/groups/"+ws, tok, "", "").json(t)
		_, hasCapacity := g["capacityId"]
		if g["isOnDedicatedCapacity"] != premium || hasCapacity != premium {
			t.Errorf("%s: %v", ws, g)
		}
	}
}

func TestWorkspaceNamesUnique(t *testing.T) {
	with := func(extra string) error {
		text := strings.Replace(string(demoScenario), "\nfaults: []", extra+"\nfaults: []", 1)
		_, err := ParseScenario("demo.yaml", []byte(text))
		return err
	}
	err := with("\n  - {id: c0ffee00-0000-4000-8000-000000000199, name: sALES}")
	if err == nil || !strings.Contains(err.Error(), `: workspaces[5].name: workspace name "sALES" is already used by workspaces[0] ("Sales"); Power BI workspace names are unique without regard to case`) ||
		!strings.HasPrefix(err.Error(), "demo.yaml:") {
		t.Fatalf("duplicate name: %v", err)
	}
	if err := with("\n  - {id: c0ffee00-0000-4000-8000-000000000199, name: ' '}"); err == nil || !strings.Contains(err.Error(), "a workspace needs a name") {
		t.Fatalf("blank name: %v", err)
	}
	// Every user's "My workspace" shares the name.
	if err := with("\n  - {id: c0ffee00-0000-4000-8000-000000000199, name: My workspace, personal_of: bob@contoso.onmicrosoft.com}"); err != nil {
		t.Fatalf("a second My workspace: %v", err)
	}
}

func TestDatasetNamesAndOwners(t *testing.T) {
	h := start(t, nil)
	alice := h.userToken(aliceUPN)
	r := h.do("GET", "/v1.0/myorg/groups/"+marketingWS+"/datasets", alice, "", "")
	var out struct{ Value []map[string]any }
	json.Unmarshal(r.body, &out)
	if r.status != 200 || len(out.Value) != 2 || out.Value[0]["name"] != "Campaigns" || out.Value[1]["name"] != "Campaigns" ||
		out.Value[0]["id"] != campaignsA || out.Value[1]["id"] != campaignsB {
		t.Fatalf("two datasets of one name: %d %s", r.status, r.body)
	}
	tok := h.pbiToken()
	for _, tc := range []struct{ tok, path, owner string }{
		{tok, "/v1.0/myorg/groups/" + salesWS + "/datasets/" + salesDS, appID},             // given
		{tok, "/v1.0/myorg/groups/" + salesWS + "/datasets/" + financeDS, appID},           // first Admin
		{tok, "/v1.0/myorg/groups/" + teamWS + "/datasets/" + teamDS, appID},               // no Admin: first member
		{alice, "/v1.0/myorg/groups/" + marketingWS + "/datasets/" + campaignsA, aliceUPN}, // first Admin
		{alice, "/v1.0/myorg/datasets/" + aliceDS, aliceUPN},                               // My workspace
	} {
		if got := h.do("GET", tc.path, tc.tok, "", "").json(t)["configuredBy"]; got != tc.owner {
			t.Errorf("%s: configuredBy %v, want %s", tc.path, got, tc.owner)
		}
	}
	// An owner must be declared; a workspace without members leaves it empty.
	_, err := ParseScenario("s.yaml", []byte(strings.Replace(string(demoScenario), "owner: c0ffee00-0000-4000-8000-0000000000a1", "owner: nobody@contoso.onmicrosoft.com", 1)))
	if err == nil || !strings.Contains(err.Error(), `workspaces[0].datasets[0].owner: principal "nobody@contoso.onmicrosoft.com" is not declared`) {
		t.Fatalf("undeclared owner: %v", err)
	}
	sc := demo(t, func(sc *Scenario) {
		sc.Workspaces = append(sc.Workspaces, Workspace{ID: "c0ffee00-0000-4000-8000-000000000199", Name: "Empty",
			Datasets: []Dataset{{ID: "c0ffee00-0000-4000-8000-000000000299", Name: "Orphan"}}})
	})
	if err := sc.Validate(); err != nil || sc.Workspaces[len(sc.Workspaces)-1].Datasets[0].Owner != "" {
		t.Fatalf("orphan dataset: %v", err)
	}
}
