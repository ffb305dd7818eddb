package emulator

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// routes dispatches on the first path segment: v1.0 (Power BI), secrets
// (Key Vault), _emulator (control), msi, common; anything else is a tenant
// (Entra ID). ServeMux alone cannot tell "/{tenant}/oauth2/token" from
// "/secrets/{name}/..." without conflicting patterns.
func (e *Emulator) routes() http.Handler {
	pbi := http.NewServeMux()
	for _, prefix := range []string{"/v1.0/myorg/groups/{groupId}", "/v1.0/myorg"} {
		ds := prefix + "/datasets/{datasetId}"
		e.handle(pbi, "POST "+ds+"/refreshes", "refresh.post", true, e.postRefresh)
		e.handle(pbi, "GET "+ds+"/refreshes", "refresh.history", true, e.refreshHistory)
		e.handle(pbi, "GET "+ds+"/refreshes/{refreshId}", "refresh.details", true, e.refreshDetails)
		e.handle(pbi, "DELETE "+ds+"/refreshes/{refreshId}", "refresh.cancel", true, e.cancelRefresh)
		e.handle(pbi, "GET "+ds+"/refreshSchedule", "schedule.get", true, e.refreshSchedule)
		e.handle(pbi, "PATCH "+ds+"/refreshSchedule", "schedule.update", true, e.updateSchedule)
		e.handle(pbi, "GET "+prefix+"/datasets", "datasets.list", true, e.listDatasets)
		e.handle(pbi, "GET "+ds, "datasets.get", true, e.getDataset)
	}
	g := "/v1.0/myorg/groups/{groupId}"
	e.handle(pbi, "GET /v1.0/myorg/groups", "groups.list", true, e.listGroups)
	e.handle(pbi, "GET "+g, "groups.get", true, e.getGroup)
	// A literal segment outranks the {datasetId} wildcard of datasets.get in
	// ServeMux, so this pattern does not conflict with it.
	e.handle(pbi, "GET "+g+"/datasets/upstreamDataflows", "datasets.upstream", true, e.upstreamDataflows)
	e.handle(pbi, "POST "+g+"/dataflows/{dataflowId}/refreshes", "dataflow.refresh", true, e.dataflowRefresh)
	e.handle(pbi, "GET "+g+"/dataflows/{dataflowId}/transactions", "dataflow.transactions", true, e.dataflowTransactions)
	e.handle(pbi, "POST "+g+"/dataflows/transactions/{transactionId}/cancel", "dataflow.cancel", true, e.dataflowCancel)
	e.handle(pbi, "GET /v1.0/myorg/admin/groups", "admin.groups", true, e.adminGroups)
	pbi.Handle("/", e.middleware(route{op: "unknown", powerBI: true, fn: func(w http.ResponseWriter, r *http.Request, c *call) {
		pbiError(w, http.StatusNotFound, "NotFound", "No HTTP resource was found that matches the request URI.")
	}}))

	kv := e.middleware(route{op: "keyvault.get", fn: e.keyVault})
	msi := e.middleware(route{op: "msi", fn: e.managedIdentity})
	realm := e.middleware(route{op: "userrealm", fn: e.userRealm})
	discovery := e.middleware(route{op: "instance_discovery", fn: e.instanceDiscovery})
	oidV2 := e.middleware(route{op: "openid", fn: e.openIDConfig(true)})
	oidV1 := e.middleware(route{op: "openid", fn: e.openIDConfig(false)})
	tokV2 := e.middleware(route{op: "token", fn: e.tokenEndpoint(true)})
	tokV1 := e.middleware(route{op: "token", fn: e.tokenEndpoint(false)})
	unknown := e.middleware(route{op: "unknown", fn: func(w http.ResponseWriter, r *http.Request, c *call) {
		tokenError(w, http.StatusNotFound, "invalid_request", 900561, "The endpoint only accepts the documented token and metadata requests.")
	}})
	control := e.controlRoutes()

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch {
		case segs[0] == "v1.0":
			pbi.ServeHTTP(w, r)
		case segs[0] == "secrets":
			kv.ServeHTTP(w, r)
		case segs[0] == "_emulator":
			// The control API changes what every client sees (faults,
			// clock, secrets): only this host may use it, whatever Addr
			// the emulator listens on.
			if !fromLoopback(r) {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "the control API answers only requests from this host (loopback)"})
				return
			}
			control.ServeHTTP(w, r)
		case segs[0] == "msi" && len(segs) == 2 && segs[1] == "token" && r.Method == http.MethodGet:
			msi.ServeHTTP(w, r)
		case len(segs) == 3 && strings.EqualFold(segs[0], "common") && strings.EqualFold(segs[1], "userrealm") && r.Method == http.MethodGet:
			r.SetPathValue("user", segs[2])
			realm.ServeHTTP(w, r)
		case len(segs) == 3 && strings.EqualFold(segs[0], "common") && segs[1] == "discovery" && segs[2] == "instance" && r.Method == http.MethodGet:
			discovery.ServeHTTP(w, r)
		case len(segs) == 4 && segs[1] == "v2.0" && segs[2] == ".well-known" && segs[3] == "openid-configuration" && r.Method == http.MethodGet:
			r.SetPathValue("tenant", segs[0])
			oidV2.ServeHTTP(w, r)
		case len(segs) == 3 && segs[1] == ".well-known" && segs[2] == "openid-configuration" && r.Method == http.MethodGet:
			r.SetPathValue("tenant", segs[0])
			oidV1.ServeHTTP(w, r)
		case len(segs) == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token" && r.Method == http.MethodPost:
			r.SetPathValue("tenant", segs[0])
			tokV2.ServeHTTP(w, r)
		case len(segs) == 3 && segs[1] == "oauth2" && segs[2] == "token" && r.Method == http.MethodPost:
			r.SetPathValue("tenant", segs[0])
			tokV1.ServeHTTP(w, r)
		default:
			unknown.ServeHTTP(w, r)
		}
	})
}

// load builds the runtime state from the scenario.
func (e *Emulator) load() {
	e.mu.Lock()
	defer e.mu.Unlock()
	sc := e.sc
	e.tenants = map[string]*Tenant{}
	for i := range sc.Tenants {
		t := &sc.Tenants[i]
		e.tenants[strings.ToLower(t.ID)] = t
		if t.Domain != "" {
			e.tenants[strings.ToLower(t.Domain)] = t
		}
	}
	e.apps = map[string]*App{}
	for i := range sc.Apps {
		e.apps[strings.ToLower(sc.Apps[i].ClientID)] = &sc.Apps[i]
	}
	e.users = map[string]*User{}
	for i := range sc.Users {
		e.users[strings.ToLower(sc.Users[i].UPN)] = &sc.Users[i]
	}
	e.workspace = map[string]*wsState{}
	e.datasets = map[string]*dsState{}
	e.dataflows = map[string]*dfState{}
	e.refreshes = map[string]*refresh{}
	e.nextID = 90000000
	now := e.Clock.Now()
	for i := range sc.Workspaces {
		w := &sc.Workspaces[i]
		ws := &wsState{ws: w, members: map[string]string{}}
		for _, m := range w.Members {
			ws.members[strings.ToLower(m.Principal)] = strings.ToLower(m.Role)
		}
		for _, d := range w.Datasets {
			ds := &dsState{ds: d, ws: ws, behaviour: d.Behaviour, schedChecked: now}
			if d.Schedule != nil {
				ds.sched = *d.Schedule
				ds.sched.Days, ds.sched.Times = slices.Clone(d.Schedule.Days), slices.Clone(d.Schedule.Times)
			}
			ws.datasets = append(ws.datasets, ds)
			e.datasets[strings.ToLower(d.ID)] = ds
		}
		for _, f := range w.Dataflows {
			df := &dfState{df: f, ws: ws, behaviour: f.Behaviour}
			ws.dataflows = append(ws.dataflows, df)
			e.dataflows[strings.ToLower(f.ID)] = df
		}
		e.workspace[strings.ToLower(w.ID)] = ws
	}
	e.vault = map[string]*secretState{}
	if v := sc.Vault; v != nil {
		created := e.Clock.Now().Add(-24 * time.Hour)
		for _, s := range v.Secrets {
			st := &secretState{name: s.Name, disabled: s.Disabled}
			for _, val := range s.Versions {
				st.versions = append(st.versions, secretVersion{id: newVersionID(), value: val, created: created})
			}
			e.vault[strings.ToLower(s.Name)] = st
		}
	}
	e.faults = nil
	for _, f := range sc.Faults {
		f := f
		e.faults = append(e.faults, &f)
	}
	if sc.Throttle != nil {
		t := *sc.Throttle
		e.throttle = &t
	}
	e.windows = map[string]*window{}
}

// fromLoopback reports whether r came from a loopback address.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
