package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pbirefresh/pbirefresh"
)

// Workspaces and datasets by name (docs/powerbi.md, "Workspaces and datasets
// by name"): Get Groups takes an OData $filter and lists only the caller's
// workspaces; Get Datasets In Group has no filter, and dataset names are not
// unique in a workspace.

var (
	// ErrNameNotFound: no workspace or dataset visible to the caller has
	// the name.
	ErrNameNotFound = errors.New("no match for the name")
	// ErrNameAmbiguous: the name matches more than one workspace or
	// dataset, and none of them exactly.
	ErrNameAmbiguous = errors.New("the name matches more than one")
)

// nameError is a failed lookup; errors.Is finds its kind.
type nameError struct {
	msg  string
	kind error
}

func (e *nameError) Error() string { return e.msg }
func (e *nameError) Unwrap() error { return e.kind }

// Workspace is a workspace (group) as Get Groups describes it.
type Workspace struct {
	ID, Name string
	// Dedicated is isOnDedicatedCapacity: Premium, Embedded or Fabric
	// capacity, where enhanced refresh is possible and the shared 8-a-day
	// quota does not apply.
	Dedicated bool
}

// DatasetInfo is a dataset (semantic model) as Get Datasets describes it.
type DatasetInfo struct {
	ID, Name string
	// ConfiguredBy is the owner: a user's UPN or an app's client id. Only
	// the owner may change the dataset's refresh schedule.
	ConfiguredBy string
	// Refreshable is false for DirectQuery and live-connection models.
	Refreshable bool
}

type groupJSON struct {
	ID                    string `json:"id"`
	Name                  string `json:"name"`
	IsOnDedicatedCapacity bool   `json:"isOnDedicatedCapacity"`
}

func (g groupJSON) workspace() Workspace {
	return Workspace{ID: g.ID, Name: g.Name, Dedicated: g.IsOnDedicatedCapacity}
}

// defaultLookup bounds a lookup whose context has no deadline.
const defaultLookup = 2 * time.Minute

// deadlineOf is the context's deadline, or defaultLookup from now.
func (c *Client) deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return c.clock().Now().Add(defaultLookup)
}

// getJSON GETs path and decodes a 200 answer into v.
func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	r, err := c.do(ctx, http.MethodGet, path, nil, c.deadlineOf(ctx))
	if err != nil {
		return err
	}
	if r.status != http.StatusOK {
		return apiError(http.MethodGet, path, r)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("GET %s: unreadable body: %w", path, err)
	}
	return nil
}

// odataString writes s as an OData string literal: in quotes, with each
// quote doubled.
func odataString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// queryEscape percent-encodes a query value with %20 for spaces: a "+" is
// read as a space by some servers and as a plus by others.
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// fold is the case-insensitive comparison key: the lower case that OData's
// tolower gives, so the client agrees with the service's filter.
func fold(s string) string { return strings.ToLower(s) }

// PickByName applies the naming rule the daemon resolves names by: the
// items named exactly name if there are any, else those named so without
// regard to case. One match is the answer; none or several are the
// caller's error to report. (import matches jobs written with names by it.)
func PickByName[T any](items []T, name string, nameOf func(T) string) (T, []T) {
	var exact, folded []T
	for _, it := range items {
		switch n := nameOf(it); {
		case n == name:
			exact = append(exact, it)
		case fold(n) == fold(name):
			folded = append(folded, it)
		}
	}
	list := exact
	if len(list) == 0 {
		list = folded
	}
	var zero T
	if len(list) == 1 {
		return list[0], list
	}
	return zero, list
}

// ResolveWorkspace finds the workspace called name among those the caller
// is a member of, as MicrosoftPowerBIMgmt's Get-PowerBIWorkspace -Name does
// (tolower(name) eq '...'). An exact match wins; otherwise a match without
// regard to case is taken only if it is the only one. The error for no
// match or several wraps ErrNameNotFound or ErrNameAmbiguous and carries a
// hint.
func (c *Client) ResolveWorkspace(ctx context.Context, name string) (Workspace, error) {
	if strings.TrimSpace(name) == "" {
		return Workspace{}, pbirefresh.WithHint(&nameError{"the workspace name is empty", ErrNameNotFound}, "give the workspace's name as Power BI shows it, or its id")
	}
	path := "/v1.0/myorg/groups?$filter=" + queryEscape("tolower(name) eq "+odataString(fold(name)))
	var out struct {
		Value []groupJSON `json:"value"`
	}
	if err := c.getJSON(ctx, path, &out); err != nil {
		return Workspace{}, err
	}
	found, list := PickByName(out.Value, name, func(g groupJSON) string { return g.Name })
	switch {
	case len(list) == 1:
		return found.workspace(), nil
	case len(list) == 0:
		return Workspace{}, pbirefresh.WithHint(
			&nameError{fmt.Sprintf("no workspace named %q is visible to this app", name), ErrNameNotFound},
			"add the service principal to the workspace (Member or Admin; a new membership can take a few minutes to show) and check the name as Power BI shows it")
	}
	ids := make([]string, len(list))
	for i, g := range list {
		ids[i] = fmt.Sprintf("%q (%s)", g.Name, g.ID)
	}
	return Workspace{}, pbirefresh.WithHint(
		&nameError{fmt.Sprintf("workspace name %q matches %d workspaces: %s", name, len(list), strings.Join(ids, ", ")), ErrNameAmbiguous},
		"give the workspace id instead of its name (workspace_id: the id in app.powerbi.com/groups/<id>/...)")
}

// Workspace reads one workspace by id.
func (c *Client) Workspace(ctx context.Context, id string) (Workspace, error) {
	var g groupJSON
	if err := c.getJSON(ctx, "/v1.0/myorg/groups/"+url.PathEscape(id), &g); err != nil {
		return Workspace{}, err
	}
	if g.ID == "" {
		g.ID = id
	}
	return g.workspace(), nil
}

// Datasets lists a workspace's datasets in the service's order.
func (c *Client) Datasets(ctx context.Context, workspaceID string) ([]DatasetInfo, error) {
	var out struct {
		Value []struct {
			ID            string `json:"id"`
			Name          string `json:"name"`
			ConfiguredBy  string `json:"configuredBy"`
			IsRefreshable *bool  `json:"isRefreshable"`
		} `json:"value"`
	}
	if err := c.getJSON(ctx, "/v1.0/myorg/groups/"+url.PathEscape(workspaceID)+"/datasets", &out); err != nil {
		return nil, err
	}
	list := make([]DatasetInfo, len(out.Value))
	for i, d := range out.Value {
		// The service always sends isRefreshable; a dataset without it is
		// taken as refreshable, and a refresh would say otherwise.
		list[i] = DatasetInfo{ID: d.ID, Name: d.Name, ConfiguredBy: d.ConfiguredBy, Refreshable: d.IsRefreshable == nil || *d.IsRefreshable}
	}
	return list, nil
}

// ResolveDataset finds the dataset called name in a workspace, by the
// rules of ResolveWorkspace: an exact match wins, else a match without
// regard to case if it is the only one. Dataset names need not be unique,
// so two exact matches are ambiguous too; the error lists their ids.
func (c *Client) ResolveDataset(ctx context.Context, workspaceID, name string) (DatasetInfo, error) {
	list, err := c.Datasets(ctx, workspaceID)
	if err != nil {
		return DatasetInfo{}, err
	}
	return MatchDataset(list, workspaceID, name)
}

// MatchDataset applies ResolveDataset's rules to a workspace's datasets
// listed already (a caller resolving many names in one workspace lists it
// once).
func MatchDataset(list []DatasetInfo, workspaceID, name string) (DatasetInfo, error) {
	found, matches := PickByName(list, name, func(d DatasetInfo) string { return d.Name })
	switch {
	case len(matches) == 1:
		return found, nil
	case len(matches) == 0:
		names := make([]string, 0, len(list))
		for _, d := range list {
			names = append(names, fmt.Sprintf("%q", d.Name))
		}
		slices.Sort(names)
		names = slices.Compact(names)
		have := "it has no datasets"
		if len(names) > 10 {
			names = append(names[:10], "…")
		}
		if len(names) > 0 {
			have = "its datasets: " + strings.Join(names, ", ")
		}
		return DatasetInfo{}, pbirefresh.WithHint(
			&nameError{fmt.Sprintf("no dataset named %q in workspace %s (%s)", name, workspaceID, have), ErrNameNotFound},
			"check the dataset's name as Power BI shows it, or give its id (dataset_id: the id in .../datasets/<id>/details)")
	}
	ids := make([]string, len(matches))
	for i, d := range matches {
		ids[i] = fmt.Sprintf("%q (%s)", d.Name, d.ID)
	}
	return DatasetInfo{}, pbirefresh.WithHint(
		&nameError{fmt.Sprintf("dataset name %q matches %d datasets in workspace %s: %s", name, len(matches), workspaceID, strings.Join(ids, ", ")), ErrNameAmbiguous},
		"dataset names are not unique in a workspace: give the id of the one you mean (dataset_id: the id in .../datasets/<id>/details)")
}
