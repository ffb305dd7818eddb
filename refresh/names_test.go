package refresh_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/emulator"
	"github.com/pbirefresh/pbirefresh/refresh"
)

// Workspaces and datasets added to the demo scenario for name lookups:
// quotes, OData's and the URL's special characters, letters outside ASCII,
// and dataset names that repeat or differ only in case.
const (
	quoteWS   = "c0ffee00-0000-4000-8000-000000000401"
	accentWS  = "c0ffee00-0000-4000-8000-000000000402"
	symbolWS  = "c0ffee00-0000-4000-8000-000000000403"
	namesWS   = "c0ffee00-0000-4000-8000-000000000404"
	twinA     = "c0ffee00-0000-4000-8000-000000000411"
	twinB     = "c0ffee00-0000-4000-8000-000000000412"
	caseUpper = "c0ffee00-0000-4000-8000-000000000413"
	caseLower = "c0ffee00-0000-4000-8000-000000000414"
	uniqueDS  = "c0ffee00-0000-4000-8000-000000000415"
	ddqDS     = "c0ffee00-0000-4000-8000-000000000416"
)

func namesScenario(sc *emulator.Scenario) {
	member := []emulator.Member{{Principal: appID, Role: "Admin"}}
	no := false
	ds := func(id, name string) emulator.Dataset {
		return emulator.Dataset{ID: id, Name: name, Behaviour: emulator.Behaviour{Duration: emulator.DurationDist{Min: emulator.Duration(3e9), Max: emulator.Duration(3e9), Dist: "fixed"}}}
	}
	direct := ds(ddqDS, "Live Sales")
	direct.Refreshable = &no
	sc.Workspaces = append(sc.Workspaces,
		emulator.Workspace{ID: quoteWS, Name: "Bob's Team", Capacity: "shared", Members: member},
		emulator.Workspace{ID: accentWS, Name: "Équipe Données Été", Members: member},
		emulator.Workspace{ID: symbolWS, Name: "R&D #1 + 50% = a/b?", Members: member},
		emulator.Workspace{ID: namesWS, Name: "Names", Members: member, Datasets: []emulator.Dataset{
			ds(twinA, "Campaigns"), ds(twinB, "Campaigns"),
			ds(caseUpper, "Budget"), ds(caseLower, "BUDGET"),
			ds(uniqueDS, "Prévisions Été"), direct,
		}},
	)
}

func TestResolveWorkspace(t *testing.T) {
	h := setup(t, namesScenario)
	ctx := context.Background()
	for _, tc := range []struct {
		name, id  string
		dedicated bool
	}{
		{"Sales", salesWS, true},
		{"sales", salesWS, true}, // one match without regard to case
		{"SALES", salesWS, true},
		{"Team", teamWS, false},
		{"Bob's Team", quoteWS, false},
		{"bob's team", quoteWS, false},
		{"Équipe Données Été", accentWS, true},
		{"équipe données été", accentWS, true}, // lower case outside ASCII
		{"ÉQUIPE DONNÉES ÉTÉ", accentWS, true},
		{"R&D #1 + 50% = a/b?", symbolWS, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := h.client.ResolveWorkspace(ctx, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if ws.ID != tc.id || ws.Dedicated != tc.dedicated || ws.Name == "" {
				t.Fatalf("got %+v, want id %s dedicated %v", ws, tc.id, tc.dedicated)
			}
		})
	}

	// The filter is the one MicrosoftPowerBIMgmt sends: lowered, quotes
	// doubled, percent-encoded, with %20 for spaces.
	var raw []string
	for _, r := range h.requests("groups.list") {
		raw = append(raw, r.Query)
		q, err := url.ParseQuery(r.Query)
		if err != nil {
			t.Fatal(err)
		}
		if f := q.Get("$filter"); !strings.HasPrefix(f, "tolower(name) eq '") || strings.ToLower(f) != f {
			t.Errorf("filter %q", f)
		}
	}
	want := "$filter=tolower%28name%29%20eq%20%27bob%27%27s%20team%27"
	if !slices.Contains(raw, want) {
		t.Errorf("no query %s among %q", want, raw)
	}
}

func TestResolveWorkspaceErrors(t *testing.T) {
	h := setup(t, namesScenario)
	ctx := context.Background()
	for _, name := range []string{"Restricted", "Marketing", "Nowhere", "Bob's", "Sales'", "' or '1' eq '1"} {
		t.Run(name, func(t *testing.T) {
			_, err := h.client.ResolveWorkspace(ctx, name)
			if !errors.Is(err, refresh.ErrNameNotFound) {
				t.Fatalf("got %v, want ErrNameNotFound", err)
			}
			if !strings.Contains(err.Error(), name) || !strings.Contains(pbirefresh.Hint(err), "add the service principal to the workspace") {
				t.Fatalf("error %q, hint %q", err, pbirefresh.Hint(err))
			}
		})
	}
	if _, err := h.client.ResolveWorkspace(ctx, " "); !errors.Is(err, refresh.ErrNameNotFound) {
		t.Fatalf("empty name: %v", err)
	}
}

func TestNamesWorkspaceByID(t *testing.T) {
	h := setup(t, namesScenario)
	ctx := context.Background()
	ws, err := h.client.Workspace(ctx, quoteWS)
	if err != nil || ws != (refresh.Workspace{ID: quoteWS, Name: "Bob's Team", Dedicated: false}) {
		t.Fatalf("%+v %v", ws, err)
	}
	_, err = h.client.Workspace(ctx, restrictedWS)
	var ae *refresh.APIError
	if !errors.As(err, &ae) || ae.Status != 404 || !strings.Contains(pbirefresh.Hint(err), "add the service principal") {
		t.Fatalf("not a member: %v", err)
	}
}

func TestNamesDatasetList(t *testing.T) {
	h := setup(t, namesScenario)
	list, err := h.client.Datasets(context.Background(), salesWS)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range list {
		names = append(names, d.Name)
		if d.ID == salesDS && (d.ConfiguredBy != appID || !d.Refreshable) {
			t.Errorf("Sales Model: %+v", d)
		}
	}
	if want := []string{"Sales Model", "Finance Model", "Inventory Model", "Forecast Model", "Archive Model"}; !slices.Equal(names, want) {
		t.Fatalf("names %q, want %q", names, want)
	}
	list, _ = h.client.Datasets(context.Background(), namesWS)
	for _, d := range list {
		if d.Refreshable != (d.ID != ddqDS) {
			t.Errorf("%s refreshable %v", d.Name, d.Refreshable)
		}
	}
}

func TestResolveDataset(t *testing.T) {
	h := setup(t, namesScenario)
	ctx := context.Background()
	for _, tc := range []struct{ name, id string }{
		{"Sales Model", salesDS},
		{"sales model", salesDS},
		{"Budget", caseUpper}, // the exact match wins over one in another case
		{"BUDGET", caseLower},
		{"Prévisions Été", uniqueDS},
		{"PRÉVISIONS ÉTÉ", uniqueDS},
	} {
		ws := salesWS
		if tc.id != salesDS {
			ws = namesWS
		}
		d, err := h.client.ResolveDataset(ctx, ws, tc.name)
		if err != nil || d.ID != tc.id {
			t.Errorf("%q: got %+v %v, want %s", tc.name, d, err, tc.id)
		}
	}

	// Two datasets of one name: an error listing both ids, never a guess.
	_, err := h.client.ResolveDataset(ctx, namesWS, "Campaigns")
	if !errors.Is(err, refresh.ErrNameAmbiguous) || !strings.Contains(err.Error(), twinA) || !strings.Contains(err.Error(), twinB) ||
		!strings.Contains(pbirefresh.Hint(err), "dataset_id") {
		t.Fatalf("twins: %v (hint %q)", err, pbirefresh.Hint(err))
	}
	// Two matches without regard to case and none exact: ambiguous too.
	_, err = h.client.ResolveDataset(ctx, namesWS, "budget")
	if !errors.Is(err, refresh.ErrNameAmbiguous) || !strings.Contains(err.Error(), caseUpper) || !strings.Contains(err.Error(), caseLower) {
		t.Fatalf("budget: %v", err)
	}
	_, err = h.client.ResolveDataset(ctx, salesWS, "Nope")
	if !errors.Is(err, refresh.ErrNameNotFound) || !strings.Contains(err.Error(), `"Sales Model"`) || pbirefresh.Hint(err) == "" {
		t.Fatalf("none: %v", err)
	}
	_, err = h.client.ResolveDataset(ctx, restrictedWS, "Payroll Model")
	var ae *refresh.APIError
	if !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("not a member: %v", err)
	}
}
