package emulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Demo ids, as in demo.yaml.
const (
	tenantID     = "c0ffee00-0000-4000-8000-000000000001"
	appID        = "c0ffee00-0000-4000-8000-0000000000a1"
	appSecret    = "demo-client-secret-value"
	readerID     = "c0ffee00-0000-4000-8000-0000000000a2"
	readerSecret = "demo-vault-reader-secret"
	outsiderID   = "c0ffee00-0000-4000-8000-0000000000a3"
	publicID     = "c0ffee00-0000-4000-8000-0000000000a4"
	salesWS      = "c0ffee00-0000-4000-8000-000000000101"
	teamWS       = "c0ffee00-0000-4000-8000-000000000102"
	restrictedWS = "c0ffee00-0000-4000-8000-000000000103"
	salesDS      = "c0ffee00-0000-4000-8000-000000000201"
	financeDS    = "c0ffee00-0000-4000-8000-000000000202"
	inventoryDS  = "c0ffee00-0000-4000-8000-000000000203"
	forecastDS   = "c0ffee00-0000-4000-8000-000000000204"
	teamDS       = "c0ffee00-0000-4000-8000-000000000205"
	payrollDS    = "c0ffee00-0000-4000-8000-000000000206"
	aliceDS      = "c0ffee00-0000-4000-8000-000000000207"
	archiveDS    = "c0ffee00-0000-4000-8000-000000000208"
	salesFlow    = "c0ffee00-0000-4000-8000-000000000301"
	pbiScope     = "https://analysis.windows.net/powerbi/api/.default"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// harness is a started emulator on a fake clock plus an HTTP client.
type harness struct {
	t     *testing.T
	emu   *Emulator
	clock *FakeClock
	hc    *http.Client
}

// start runs the emulator with the scenario (nil: demo) on a fake clock.
func start(t *testing.T, sc *Scenario) *harness {
	t.Helper()
	clock := NewFakeClock(t0)
	emu := New(sc)
	emu.Clock = clock
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	return &harness{t: t, emu: emu, clock: clock, hc: emu.Client()}
}

// demo returns a fresh copy of the demo scenario, editable by a test.
func demo(t *testing.T, edit func(*Scenario)) *Scenario {
	t.Helper()
	sc, err := ParseScenario("demo.yaml", demoScenario)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(sc)
	}
	return sc
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

func newRequest(method, url, body string) (*http.Request, error) {
	return http.NewRequest(method, url, strings.NewReader(body))
}

func (h *harness) do(method, path, token, contentType, body string) resp {
	h.t.Helper()
	req, err := newRequest(method, h.emu.URL()+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return h.send(req)
}

func (h *harness) send(req *http.Request) resp {
	h.t.Helper()
	res, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func (h *harness) form(path string, v url.Values) resp {
	h.t.Helper()
	return h.do(http.MethodPost, path, "", "application/x-www-form-urlencoded", v.Encode())
}

// token gets a client-credentials token through the v2 endpoint.
func (h *harness) token(clientID, secret, scope string) string {
	h.t.Helper()
	r := h.form("/"+tenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {scope},
	})
	if r.status != 200 {
		h.t.Fatalf("token: %d %s", r.status, r.body)
	}
	return r.json(h.t)["access_token"].(string)
}

func (h *harness) pbiToken() string { return h.token(appID, appSecret, pbiScope) }

func refreshesPath(ws, ds string) string {
	return "/v1.0/myorg/groups/" + ws + "/datasets/" + ds + "/refreshes"
}

// post starts a refresh and returns its id from the headers.
func (h *harness) post(tok, ws, ds, body string) (resp, string) {
	h.t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	r := h.do(http.MethodPost, refreshesPath(ws, ds), tok, ct, body)
	id := r.header.Get("x-ms-request-id")
	if id == "" {
		id = r.header.Get("RequestId")
	}
	return r, id
}

func (h *harness) history(tok, ws, ds string) []map[string]any {
	h.t.Helper()
	r := h.do(http.MethodGet, refreshesPath(ws, ds), tok, "", "")
	if r.status != 200 {
		h.t.Fatalf("history: %d %s", r.status, r.body)
	}
	var out struct {
		Value []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		h.t.Fatal(err)
	}
	return out.Value
}

func (h *harness) entry(tok, ws, ds, id string) map[string]any {
	for _, e := range h.history(tok, ws, ds) {
		if e["requestId"] == id {
			return e
		}
	}
	return nil
}

func errorCode(t *testing.T, r resp) string {
	t.Helper()
	m := r.json(t)
	if e, ok := m["error"].(map[string]any); ok {
		c, _ := e["code"].(string)
		return c
	}
	if e, ok := m["error"].(string); ok {
		return e
	}
	return ""
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
