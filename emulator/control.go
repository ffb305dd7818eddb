package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SetBehaviour changes how future refreshes of a dataset (or dataflow)
// behave.
func (e *Emulator) SetBehaviour(id string, b Behaviour) error {
	if errs := b.validate("behaviour"); len(errs) > 0 {
		return errors.Join(errs...)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ds := e.datasets[strings.ToLower(id)]; ds != nil {
		ds.behaviour = b
		return nil
	}
	if df := e.dataflows[strings.ToLower(id)]; df != nil {
		df.behaviour = b
		return nil
	}
	return fmt.Errorf("no dataset or dataflow %s in the scenario", id)
}

// StartExternalRefresh starts a refresh that did not come through the API
// (refreshType Scheduled, or OnDemand for "Refresh now" in the portal),
// lasting d (0: the dataset's behaviour). It ignores the one-at-a-time rule
// the API enforces, as the service's own scheduler does not queue behind
// API calls. It returns the refresh's requestId.
func (e *Emulator) StartExternalRefresh(datasetID, refreshType string, d time.Duration) (string, error) {
	if refreshType != typeScheduled && refreshType != typeOnDemand {
		return "", fmt.Errorf("refresh type %q: use %s or %s", refreshType, typeScheduled, typeOnDemand)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ds := e.datasets[strings.ToLower(datasetID)]
	if ds == nil {
		return "", fmt.Errorf("no dataset %s in the scenario", datasetID)
	}
	b := ds.behaviour
	if d > 0 {
		b.Duration = DurationDist{Min: Duration(d), Max: Duration(d), Dist: "fixed"}
	}
	now := e.Clock.Now()
	e.fireSchedules(ds, now)
	return e.startServiceRefresh(ds, refreshType, b, now, now), nil
}

// Republish models a dataset deleted and published again under its name:
// the dataset with id goes away, and one of the same name, owner, schedule
// and behaviour, with no history, takes newID. Requests for the old id get
// 404 from then on.
func (e *Emulator) Republish(id, newID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.datasets[strings.ToLower(id)]
	if old == nil {
		return fmt.Errorf("no dataset %s in the scenario", id)
	}
	if e.datasets[strings.ToLower(newID)] != nil || e.dataflows[strings.ToLower(newID)] != nil {
		return fmt.Errorf("id %s is taken", newID)
	}
	ds := &dsState{ds: old.ds, ws: old.ws, behaviour: old.behaviour, sched: old.sched, schedChecked: old.schedChecked}
	ds.ds.ID = newID
	for i, d := range old.ws.datasets {
		if d == old {
			old.ws.datasets[i] = ds
		}
	}
	delete(e.datasets, strings.ToLower(id))
	e.datasets[strings.ToLower(newID)] = ds
	return nil
}

// SetFaults replaces the fault rules.
func (e *Emulator) SetFaults(faults ...Fault) error {
	var errs []error
	rules := make([]*Fault, 0, len(faults))
	for i := range faults {
		f := faults[i]
		errs = append(errs, f.validate(fmt.Sprintf("faults[%d]", i))...)
		rules = append(rules, &f)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	e.mu.Lock()
	e.faults = rules
	e.mu.Unlock()
	return nil
}

// SetThrottle sets the per-caller rate limit on Power BI routes (nil: off).
func (e *Emulator) SetThrottle(t *Throttle) error {
	if t != nil && (t.Limit <= 0 || t.Window <= 0) {
		return errors.New("throttle needs a positive limit and window")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if t == nil {
		e.throttle = nil
	} else {
		c := *t
		e.throttle = &c
	}
	clear(e.windows)
	return nil
}

// Storm answers every Power BI request with 429 for d from now (emulator
// clock), with Retry-After counting down to its end.
func (e *Emulator) Storm(d time.Duration) {
	e.mu.Lock()
	e.stormEnd = e.Clock.Now().Add(d)
	e.mu.Unlock()
}

// SetAppSecrets replaces an app registration's client secrets.
func (e *Emulator) SetAppSecrets(clientID string, secrets ...Secret) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.apps[strings.ToLower(clientID)]
	if a == nil {
		return fmt.Errorf("no app %s in the scenario", clientID)
	}
	a.Secrets = append([]Secret(nil), secrets...)
	return nil
}

// SetTenantSwitches sets a tenant's Power BI admin switches.
func (e *Emulator) SetTenantSwitches(tenantID string, servicePrincipalsAllowed, adminAPIs bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenants[strings.ToLower(tenantID)]
	if t == nil {
		return fmt.Errorf("no tenant %s in the scenario", tenantID)
	}
	t.ServicePrincipalsAllowed = &servicePrincipalsAllowed
	t.AdminAPIsForServicePrincipals = adminAPIs
	return nil
}

// SetMember adds, changes (role) or removes (role "") a workspace member.
func (e *Emulator) SetMember(workspaceID, principal, role string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws := e.workspace[strings.ToLower(workspaceID)]
	if ws == nil {
		return fmt.Errorf("no workspace %s in the scenario", workspaceID)
	}
	if role == "" {
		delete(ws.members, strings.ToLower(principal))
	} else {
		ws.members[strings.ToLower(principal)] = strings.ToLower(role)
	}
	return nil
}

// controlRoutes is the control API under /_emulator/: the same knobs as the
// methods above, for tests of the built binary and for curl. It is not
// logged in the request log.
func (e *Emulator) controlRoutes() http.Handler {
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, status int, err error) {
		writeJSON(w, status, map[string]string{"error": err.Error()})
	}
	decode := func(r *http.Request, v any) error {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			return err
		}
		return jsonUnmarshalStrict(b, v)
	}
	mux.HandleFunc("GET /_emulator/requests", func(w http.ResponseWriter, r *http.Request) {
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		writeJSON(w, http.StatusOK, e.RequestsSince(since))
	})
	mux.HandleFunc("DELETE /_emulator/requests", func(w http.ResponseWriter, r *http.Request) {
		e.ResetRequests()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_emulator/ca.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(e.CAPEM())
	})
	mux.HandleFunc("GET /_emulator/clock", func(w http.ResponseWriter, r *http.Request) {
		_, fake := e.Clock.(*FakeClock)
		writeJSON(w, http.StatusOK, map[string]any{"now": e.Clock.Now().UTC(), "fake": fake})
	})
	mux.HandleFunc("POST /_emulator/clock", func(w http.ResponseWriter, r *http.Request) {
		fc, ok := e.Clock.(*FakeClock)
		if !ok {
			fail(w, http.StatusConflict, errors.New("the emulator runs on the wall clock; start it with --fake-clock to move time"))
			return
		}
		var body struct {
			Advance Duration  `json:"advance"`
			Set     time.Time `json:"set"`
		}
		if err := decode(r, &body); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		if !body.Set.IsZero() {
			fc.Set(body.Set)
		}
		fc.Advance(body.Advance.D())
		writeJSON(w, http.StatusOK, map[string]any{"now": fc.Now().UTC()})
	})
	mux.HandleFunc("PUT /_emulator/datasets/{id}/behaviour", func(w http.ResponseWriter, r *http.Request) {
		var b Behaviour
		if err := decode(r, &b); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		if err := e.SetBehaviour(r.PathValue("id"), b); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_emulator/datasets/{id}/refreshes", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			RefreshType string   `json:"refresh_type"`
			Duration    Duration `json:"duration"`
		}
		if err := decode(r, &body); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		if body.RefreshType == "" {
			body.RefreshType = typeScheduled
		}
		id, err := e.StartExternalRefresh(r.PathValue("id"), body.RefreshType, body.Duration.D())
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"requestId": id})
	})
	mux.HandleFunc("POST /_emulator/datasets/{id}/republish", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			NewID string `json:"new_id"`
		}
		if err := decode(r, &body); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		if err := e.Republish(r.PathValue("id"), body.NewID); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_emulator/datasets/{id}/schedule", func(w http.ResponseWriter, r *http.Request) {
		s, err := e.Schedule(r.PathValue("id"))
		if err != nil {
			fail(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("POST /_emulator/dataflows/{id}/transactions", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			RefreshType string   `json:"refresh_type"`
			Duration    Duration `json:"duration"`
		}
		if err := decode(r, &body); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		if body.RefreshType == "" {
			body.RefreshType = typeScheduled
		}
		id, err := e.StartExternalTransaction(r.PathValue("id"), body.RefreshType, body.Duration.D())
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"transactionId": id})
	})
	mux.HandleFunc("PUT /_emulator/faults", func(w http.ResponseWriter, r *http.Request) {
		var faults []Fault
		if err := decode(r, &faults); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		if err := e.SetFaults(faults...); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /_emulator/throttle", func(w http.ResponseWriter, r *http.Request) {
		var t *Throttle
		if err := decode(r, &t); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		if err := e.SetThrottle(t); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_emulator/throttle/storm", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			For Duration `json:"for"`
		}
		if err := decode(r, &body); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		e.Storm(body.For.D())
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_emulator/vault/secrets/{name}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Value string `json:"value"`
		}
		if err := decode(r, &body); err != nil || body.Value == "" {
			fail(w, http.StatusBadRequest, errors.New(`send {"value": "<new secret value>"}`))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"version": e.RotateSecret(r.PathValue("name"), body.Value)})
	})
	mux.HandleFunc("PUT /_emulator/apps/{id}/secrets", func(w http.ResponseWriter, r *http.Request) {
		var secrets []Secret
		if err := decode(r, &secrets); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		if err := e.SetAppSecrets(r.PathValue("id"), secrets...); err != nil {
			fail(w, http.StatusNotFound, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PATCH /_emulator/tenants/{id}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ServicePrincipalsAllowed      bool `json:"service_principals_allowed"`
			AdminAPIsForServicePrincipals bool `json:"admin_apis_for_service_principals"`
		}
		if err := decode(r, &body); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		if err := e.SetTenantSwitches(r.PathValue("id"), body.ServicePrincipalsAllowed, body.AdminAPIsForServicePrincipals); err != nil {
			fail(w, http.StatusNotFound, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/_emulator/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, errors.New("unknown control endpoint; see the emulator package documentation"))
	})
	return mux
}

// Secret's JSON form, for the control API.
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v struct {
		Value   string    `json:"value"`
		Expires time.Time `json:"expires"`
	}
	if err := jsonUnmarshalStrict(b, &v); err != nil {
		return err
	}
	s.Value, s.Expires = v.Value, v.Expires
	return nil
}

var _ json.Unmarshaler = (*Secret)(nil)
