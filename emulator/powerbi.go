package emulator

import (
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// authPBI checks the bearer token of a Power BI request and the tenant
// switch; on failure it writes the error and returns nil.
func (e *Emulator) authPBI(w http.ResponseWriter, r *http.Request, c *call) *claims {
	tok := bearer(r.Header.Get("Authorization"))
	cl, err := e.verifyToken(tok, c.now)
	switch {
	case err == errTokenExpired:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="The access token has expired"`)
		pbiError(w, e.sc.Settings.ExpiredTokenStatus, "TokenExpired", "")
		return nil
	case err != nil:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		pbiError(w, http.StatusUnauthorized, "PowerBINotAuthorizedException", "")
		return nil
	case !isPowerBIAudience(cl.Aud):
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="The audience is invalid"`)
		pbiError(w, http.StatusUnauthorized, "PowerBINotAuthorizedException", "")
		return nil
	}
	if cl.IDTyp == "app" {
		e.mu.Lock()
		t := e.tenants[cl.Tid]
		allowed := t != nil && *t.ServicePrincipalsAllowed
		e.mu.Unlock()
		if !allowed {
			// Status from the docs; the body shape was never captured, so the
			// pbi.error form is used.
			pbiError(w, http.StatusUnauthorized, "ServicePrincipalIsNotAllowedByTenantAdminSwitch", "")
			return nil
		}
	}
	c.claims = cl
	return cl
}

func notFound(w http.ResponseWriter) {
	pbiError(w, http.StatusNotFound, "PowerBIEntityNotFound", "")
}

// workspaceFor resolves the workspace of a request: /groups/{groupId} for a
// member, or the caller's My workspace. Must hold e.mu.
func (e *Emulator) workspaceFor(w http.ResponseWriter, r *http.Request, cl *claims) (*wsState, string) {
	g := r.PathValue("groupId")
	if g == "" {
		// "My workspace" routes are not for service principals: the service
		// answers 403 {"Message":"API is not accessible for application"}.
		if cl.IDTyp == "app" {
			writeJSON(w, http.StatusForbidden, map[string]string{"Message": "API is not accessible for application"})
			return nil, ""
		}
		for _, ws := range e.workspace {
			if strings.EqualFold(ws.ws.PersonalOf, cl.UPN) {
				return ws, "admin"
			}
		}
		notFound(w)
		return nil, ""
	}
	ws := e.workspace[strings.ToLower(g)]
	if ws == nil || ws.ws.PersonalOf != "" {
		notFound(w)
		return nil, ""
	}
	role, ok := ws.members[cl.principal()]
	if !ok {
		// A service principal outside the workspace sees 404, not 403.
		notFound(w)
		return nil, ""
	}
	return ws, role
}

// datasetFor resolves {datasetId} inside the request's workspace, and
// first starts the scheduled refreshes due by the request's time. Must hold
// e.mu.
func (e *Emulator) datasetFor(w http.ResponseWriter, r *http.Request, c *call, cl *claims) (*dsState, string) {
	ws, role := e.workspaceFor(w, r, cl)
	if ws == nil {
		return nil, ""
	}
	ds := e.datasets[strings.ToLower(r.PathValue("datasetId"))]
	if ds == nil || ds.ws != ws {
		notFound(w)
		return nil, ""
	}
	e.fireSchedules(ds, c.now)
	return ds, role
}

func canWrite(role string) bool { return role != "viewer" }

func (e *Emulator) postRefresh(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	if len(strings.TrimSpace(string(c.body))) > 0 {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct != "application/json" && ct != "text/json" {
			pbiError(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "The request entity's media type '"+ct+"' is not supported for this resource; send application/json.")
			return
		}
	}
	req, rerr := parseRefreshRequest(c.body)
	e.mu.Lock()
	defer e.mu.Unlock()
	ds, role := e.datasetFor(w, r, c, cl)
	if ds == nil {
		return
	}
	if !canWrite(role) {
		pbiError(w, http.StatusUnauthorized, "PowerBINotAuthorizedException", "")
		return
	}
	if rerr != nil {
		pbiError(w, rerr.status, "InvalidRequest", rerr.msg)
		return
	}
	if req.enhanced && req.notifyOption != "" && !e.sc.Settings.AcceptNotifyOptionWithEnhanced {
		pbiError(w, http.StatusBadRequest, "InvalidRequest", "notifyOption is not applicable to enhanced refresh; leave it out of a request with enhanced refresh properties.")
		return
	}
	premium := ds.ws.ws.Capacity == "premium"
	if req.enhanced && !premium {
		// Enhanced refresh needs Premium, PPU, Embedded or Fabric capacity;
		// the exact error for shared capacity is unconfirmed.
		pbiError(w, http.StatusBadRequest, "InvalidRequest", "Enhanced refresh is not supported for datasets on shared capacity.")
		return
	}
	if !*ds.ds.Refreshable {
		pbiError(w, http.StatusBadRequest, "InvalidRequest", "Dataset is not refreshable (DirectQuery or live connection).")
		return
	}
	now := c.now
	id := newGUID()
	if b := ds.behaviour.DropBurst; b != nil {
		recent := ds.posts[:0]
		for _, t := range ds.posts {
			if now.Sub(t) < b.Window.D() {
				recent = append(recent, t)
			}
		}
		ds.posts = append(recent, now)
		if len(ds.posts) > b.Limit {
			// Dropped: accepted, never run, never visible.
			c.entry.RefreshID = id
			c.entry.Error = "dropped (burst)"
			e.acceptedHeaders(w, r, req.enhanced, id)
			return
		}
	}
	if ds.runningRefresh(now) != nil {
		pbiError(w, e.sc.Settings.ConflictStatus, "InvalidRequest", "Invalid dataset refresh request. Another refresh request is already executing")
		return
	}
	if !premium && ds.quotaUsed(now) >= sharedDaily {
		pbiError(w, http.StatusBadRequest, "InvalidRequest", "Invalid dataset refresh request. Number of refresh requests in last 24 hours exceeded limit")
		return
	}
	kind := typeViaAPI
	if req.enhanced {
		kind = typeViaEnhancedAPI
	}
	e.startRefresh(ds, id, kind, req, now)
	c.entry.RefreshID = id
	e.acceptedHeaders(w, r, req.enhanced, id)
}

// acceptedHeaders answers 202 with an empty body. Classic: RequestId is the
// refresh id. Enhanced: x-ms-request-id and Location carry it; whether
// RequestId equals them is unconfirmed, so it does not, which catches a
// client that reads the wrong header.
func (e *Emulator) acceptedHeaders(w http.ResponseWriter, r *http.Request, enhanced bool, id string) {
	h := w.Header()
	if enhanced {
		h.Set("x-ms-request-id", id)
		h.Set("Location", e.base+r.URL.Path+"/"+id)
	} else {
		h.Set("RequestId", id)
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// startServiceRefresh records a refresh the service started by itself
// (Scheduled, or OnDemand from the portal) at the instant at: classic,
// visible at once, with behaviour b. Must hold e.mu.
func (e *Emulator) startServiceRefresh(ds *dsState, kind string, b Behaviour, at, now time.Time) string {
	req, _ := parseRefreshRequest(nil)
	id := newGUID()
	e.nextID++
	rf := &refresh{requestID: id, id: e.nextID, ds: ds, refreshType: kind, req: req, posted: at, visibleAt: at}
	plan(rf, b, ds.ws.ws.Capacity == "premium", e.rng)
	ds.history = append(ds.history, rf)
	e.refreshes[strings.ToLower(id)] = rf
	e.prune(ds, now)
	return id
}

// startRefresh plans and records a refresh. Must hold e.mu.
func (e *Emulator) startRefresh(ds *dsState, id, kind string, req refreshRequest, now time.Time) *refresh {
	e.nextID++
	rf := &refresh{
		requestID: id, id: e.nextID, ds: ds, refreshType: kind, req: req,
		posted: now, visibleAt: now.Add(e.sc.Settings.HistoryDelay.D()),
	}
	plan(rf, ds.behaviour, ds.ws.ws.Capacity == "premium", e.rng)
	ds.history = append(ds.history, rf)
	e.refreshes[strings.ToLower(id)] = rf
	e.prune(ds, now)
	return rf
}

func (e *Emulator) odataContext(r *http.Request, set string) string {
	p := r.URL.Path
	if i := strings.LastIndex(p, "/"); i >= 0 {
		p = p[:i]
	}
	return e.base + p + "/$metadata#" + set
}

func (e *Emulator) refreshHistory(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	top := -1
	if v := r.URL.Query().Get("$top"); v != "" || r.URL.Query().Has("$top") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			pbiError(w, http.StatusBadRequest, "InvalidRequest", "$top must be an integer of at least 1.")
			return
		}
		top = n
	}
	e.mu.Lock()
	ds, _ := e.datasetFor(w, r, c, cl)
	if ds == nil {
		e.mu.Unlock()
		return
	}
	e.prune(ds, c.now)
	entries := make([]historyEntry, 0, len(ds.history))
	for i := len(ds.history) - 1; i >= 0 && (top < 0 || len(entries) < top); i-- {
		if rf := ds.history[i]; rf.visible(c.now) {
			entries = append(entries, rf.historyEntry(c.now))
		}
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": e.odataContext(r, "refreshes"), "value": entries})
}

// findRefresh resolves {refreshId} for details and cancel. A refresh still
// inside the history delay is not found here either. Must hold e.mu.
func (e *Emulator) findRefresh(w http.ResponseWriter, r *http.Request, c *call, cl *claims) (*refresh, string) {
	ds, role := e.datasetFor(w, r, c, cl)
	if ds == nil {
		return nil, ""
	}
	id := r.PathValue("refreshId")
	c.entry.RefreshID = id
	rf := e.refreshes[strings.ToLower(id)]
	if rf == nil || rf.ds != ds || !rf.visible(c.now) {
		notFound(w)
		return nil, ""
	}
	return rf, role
}

func (e *Emulator) refreshDetails(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	e.mu.Lock()
	rf, _ := e.findRefresh(w, r, c, cl)
	if rf == nil {
		e.mu.Unlock()
		return
	}
	if !rf.req.enhanced {
		e.mu.Unlock()
		// Execution details are documented for enhanced refreshes only; a
		// client must follow the others in the history.
		// https://learn.microsoft.com/power-bi/connect-data/asynchronous-refresh
		notFound(w)
		return
	}
	d := rf.detail(c.now, e.sc.Settings.DetailsWithoutZone)
	terminal := !rf.running(c.now)
	e.mu.Unlock()
	status := http.StatusAccepted
	if terminal {
		status = http.StatusOK
	}
	writeJSON(w, status, d)
}

func (e *Emulator) cancelRefresh(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rf, role := e.findRefresh(w, r, c, cl)
	if rf == nil {
		return
	}
	if !canWrite(role) {
		pbiError(w, http.StatusUnauthorized, "PowerBINotAuthorizedException", "")
		return
	}
	if !rf.req.enhanced {
		// Only enhanced refreshes can be cancelled; the error for others is
		// undocumented; 400 is the safe guess.
		pbiError(w, http.StatusBadRequest, "InvalidRequest", "Only refreshes started through the enhanced refresh API can be cancelled.")
		return
	}
	if !rf.running(c.now) {
		pbiError(w, http.StatusConflict, "InvalidRequest", fmt.Sprintf("The refresh operation cannot be cancelled because it has already finished (%s).", rf.view(c.now).extStatus))
		return
	}
	rf.cancelledAt = c.now
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

func (e *Emulator) groupJSON(ws *wsState) map[string]any {
	g := map[string]any{
		"id": ws.ws.ID, "name": ws.ws.Name, "isReadOnly": false,
		"isOnDedicatedCapacity": ws.ws.Capacity == "premium",
	}
	if ws.ws.Capacity == "premium" {
		g["capacityId"] = objectID("capacity:" + ws.ws.ID)
	}
	return g
}

func (e *Emulator) listGroups(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	q := r.URL.Query()
	match, err := parseGroupFilter(q.Get("$filter"))
	if err != nil {
		pbiError(w, http.StatusBadRequest, "InvalidRequest", err.Error())
		return
	}
	top, skip, ok := pageParams(w, q.Get("$top"), q.Get("$skip"), false)
	if !ok {
		return
	}
	e.mu.Lock()
	var list []map[string]any
	for _, ws := range e.sortedWorkspaces() {
		if _, member := ws.members[cl.principal()]; member && ws.ws.PersonalOf == "" && match(ws.ws.Name) {
			list = append(list, e.groupJSON(ws))
		}
	}
	e.mu.Unlock()
	list = page(list, top, skip)
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": e.base + "/v1.0/myorg/$metadata#groups", "value": list})
}

func page[T any](list []T, top, skip int) []T {
	if list == nil {
		list = []T{}
	}
	if skip >= len(list) {
		return []T{}
	}
	list = list[skip:]
	if top >= 0 && top < len(list) {
		list = list[:top]
	}
	return list
}

func pageParams(w http.ResponseWriter, topS, skipS string, topRequired bool) (top, skip int, ok bool) {
	top, skip = -1, 0
	if topS == "" && topRequired {
		pbiError(w, http.StatusBadRequest, "InvalidRequest", "The $top query parameter is required (1-5000).")
		return 0, 0, false
	}
	if topS != "" {
		n, err := strconv.Atoi(topS)
		if err != nil || n < 1 || (topRequired && n > 5000) {
			pbiError(w, http.StatusBadRequest, "InvalidRequest", "$top must be an integer of at least 1.")
			return 0, 0, false
		}
		top = n
	}
	if skipS != "" {
		n, err := strconv.Atoi(skipS)
		if err != nil || n < 0 {
			pbiError(w, http.StatusBadRequest, "InvalidRequest", "$skip must be a non-negative integer.")
			return 0, 0, false
		}
		skip = n
	}
	return top, skip, true
}

func (e *Emulator) sortedWorkspaces() []*wsState {
	out := make([]*wsState, 0, len(e.workspace))
	for _, ws := range e.workspace {
		out = append(out, ws)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ws.Name < out[j].ws.Name })
	return out
}

var (
	filterEqRE       = regexp.MustCompile(`^name\s+eq\s+'((?:[^']|'')*)'$`)
	filterLowerEqRE  = regexp.MustCompile(`^tolower\(\s*name\s*\)\s+eq\s+'((?:[^']|'')*)'$`)
	filterContainsRE = regexp.MustCompile(`^contains\(\s*name\s*,\s*'((?:[^']|'')*)'\s*\)$`)
	filterSplitOrRE  = regexp.MustCompile(`\s+or\s+`)
	filterSplitAndRE = regexp.MustCompile(`\s+and\s+`)
)

// parseGroupFilter understands the OData filters seen in the field for
// groups: name eq '…', tolower(name) eq '…', contains(name,'…'), joined by
// and/or (” escapes a quote). Anything else is a 400.
func parseGroupFilter(f string) (func(string) bool, error) {
	f = strings.TrimSpace(f)
	if f == "" {
		return func(string) bool { return true }, nil
	}
	var ors [][]func(string) bool
	for _, orPart := range splitOutsideQuotes(f, filterSplitOrRE) {
		var ands []func(string) bool
		for _, term := range splitOutsideQuotes(orPart, filterSplitAndRE) {
			term = strings.TrimSpace(term)
			unq := func(s string) string { return strings.ReplaceAll(s, "''", "'") }
			if m := filterEqRE.FindStringSubmatch(term); m != nil {
				v := unq(m[1])
				ands = append(ands, func(n string) bool { return n == v })
			} else if m := filterLowerEqRE.FindStringSubmatch(term); m != nil {
				v := unq(m[1])
				ands = append(ands, func(n string) bool { return strings.ToLower(n) == v })
			} else if m := filterContainsRE.FindStringSubmatch(term); m != nil {
				v := unq(m[1])
				ands = append(ands, func(n string) bool { return strings.Contains(n, v) })
			} else {
				return nil, fmt.Errorf("unsupported $filter term %q; use name eq '…', tolower(name) eq '…' or contains(name,'…')", term)
			}
		}
		ors = append(ors, ands)
	}
	return func(n string) bool {
		for _, ands := range ors {
			all := true
			for _, t := range ands {
				all = all && t(n)
			}
			if all {
				return true
			}
		}
		return false
	}, nil
}

// splitOutsideQuotes splits s on sep, ignoring separators inside '…'.
func splitOutsideQuotes(s string, sep *regexp.Regexp) []string {
	var parts []string
	start := 0
	for _, loc := range sep.FindAllStringIndex(s, -1) {
		if strings.Count(s[:loc[0]], "'")%2 == 0 && loc[0] >= start {
			parts = append(parts, s[start:loc[0]])
			start = loc[1]
		}
	}
	return append(parts, s[start:])
}

func (e *Emulator) getGroup(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	e.mu.Lock()
	ws, _ := e.workspaceFor(w, r, cl)
	var g map[string]any
	if ws != nil {
		g = e.groupJSON(ws)
	}
	e.mu.Unlock()
	if ws != nil {
		g["@odata.context"] = e.base + "/v1.0/myorg/$metadata#groups/$entity"
		writeJSON(w, http.StatusOK, g)
	}
}

// datasetJSON is a Dataset of the spec. configuredBy is the owner: a UPN,
// or an app's client id when a service principal owns the dataset; it is
// left out when the scenario gives the dataset no owner.
func (e *Emulator) datasetJSON(ds *dsState) map[string]any {
	d := map[string]any{
		"id": ds.ds.ID, "name": ds.ds.Name, "addRowsAPIEnabled": false,
		"isRefreshable": *ds.ds.Refreshable, "isEffectiveIdentityRequired": false, "isEffectiveIdentityRolesRequired": false,
		"isOnPremGatewayRequired": false, "targetStorageMode": "Abf",
		"webUrl": "https://app.powerbi.com/groups/" + ds.ws.ws.ID + "/datasets/" + ds.ds.ID,
	}
	if ds.ds.Owner != "" {
		d["configuredBy"] = ds.ds.Owner
	}
	return d
}

func (e *Emulator) listDatasets(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	e.mu.Lock()
	ws, _ := e.workspaceFor(w, r, cl)
	var list []map[string]any
	if ws != nil {
		list = []map[string]any{}
		for _, ds := range ws.datasets {
			list = append(list, e.datasetJSON(ds))
		}
	}
	e.mu.Unlock()
	if ws != nil {
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": e.odataContext(r, "datasets") + "", "value": list})
	}
}

func (e *Emulator) getDataset(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	e.mu.Lock()
	ds, _ := e.datasetFor(w, r, c, cl)
	var d map[string]any
	if ds != nil {
		d = e.datasetJSON(ds)
	}
	e.mu.Unlock()
	if ds != nil {
		d["@odata.context"] = e.base + "/v1.0/myorg/$metadata#datasets/$entity"
		writeJSON(w, http.StatusOK, d)
	}
}

func (e *Emulator) adminGroups(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	q := r.URL.Query()
	top, skip, ok := pageParams(w, q.Get("$top"), q.Get("$skip"), true)
	if !ok {
		return
	}
	e.mu.Lock()
	allowed := false
	if cl.IDTyp == "app" {
		t := e.tenants[cl.Tid]
		allowed = t != nil && t.AdminAPIsForServicePrincipals
	} else if u := e.users[strings.ToLower(cl.UPN)]; u != nil {
		allowed = u.Admin
	}
	var list []map[string]any
	if allowed {
		for _, ws := range e.sortedWorkspaces() {
			g := e.groupJSON(ws)
			g["type"], g["state"] = "Workspace", "Active"
			if ws.ws.PersonalOf != "" {
				g["type"] = "PersonalGroup"
			}
			list = append(list, g)
		}
	}
	e.mu.Unlock()
	if !allowed {
		pbiError(w, http.StatusUnauthorized, "PowerBINotAuthorizedException", "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": e.base + "/v1.0/myorg/admin/$metadata#groups", "value": page(list, top, skip)})
}
