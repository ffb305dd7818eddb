package emulator

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestTokenEndpointErrors(t *testing.T) {
	h := start(t, demo(t, func(sc *Scenario) {
		sc.Apps[2].Secrets = []Secret{{Value: "expired-secret", Expires: t0.Add(-time.Hour)}}
	}))
	v2 := "/" + tenantID + "/oauth2/v2.0/token"
	cc := func(id, secret, scope string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "scope": {scope}}
		if secret != "" {
			v.Set("client_secret", secret)
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		path   string
		form   url.Values
		status int
		err    string
		code   int
	}{
		{"wrong secret", v2, cc(appID, "nope", pbiScope), 401, "invalid_client", 7000215},
		{"expired secret", v2, cc(outsiderID, "expired-secret", pbiScope), 401, "invalid_client", 7000222},
		{"unknown app", v2, cc("00000000-0000-4000-8000-00000000dead", "x", pbiScope), 400, "unauthorized_client", 700016},
		{"no secret", v2, cc(appID, "", pbiScope), 401, "invalid_client", 7000218},
		{"scope without .default", v2, cc(appID, appSecret, "https://analysis.windows.net/powerbi/api/Dataset.Read.All"), 400, "invalid_scope", 1002012},
		{"unknown resource", v2, cc(appID, appSecret, "https://graph.example.com/.default"), 400, "invalid_resource", 500011},
		{"unknown tenant", "/00000000-0000-4000-8000-000000000bad/oauth2/v2.0/token", cc(appID, appSecret, pbiScope), 400, "invalid_tenant", 90002},
		{"unsupported grant", v2, url.Values{"grant_type": {"device_code"}, "client_id": {appID}, "scope": {pbiScope}}, 400, "unsupported_grant_type", 70003},
		{"missing grant", v2, url.Values{"client_id": {appID}}, 400, "invalid_request", 900144},
		{"wrong password", v2, url.Values{"grant_type": {"password"}, "client_id": {publicID}, "username": {"alice@contoso.onmicrosoft.com"}, "password": {"x"}, "scope": {pbiScope}}, 400, "invalid_grant", 50126},
		{"password on a confidential app without secret", v2, url.Values{"grant_type": {"password"}, "client_id": {appID}, "username": {"alice@contoso.onmicrosoft.com"}, "password": {"demo-password"}, "scope": {pbiScope}}, 401, "invalid_client", 7000218},
		{"v1 without resource", "/" + tenantID + "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret}}, 400, "invalid_request", 900144},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.form(tc.path, tc.form)
			m := r.json(t)
			codes, _ := m["error_codes"].([]any)
			if r.status != tc.status || m["error"] != tc.err || len(codes) != 1 || codes[0] != float64(tc.code) {
				t.Fatalf("%d %s, want %d %s %d", r.status, r.body, tc.status, tc.err, tc.code)
			}
			desc := m["error_description"].(string)
			if !strings.HasPrefix(desc, "AADSTS") || !strings.Contains(desc, "Trace ID: ") || m["trace_id"] == "" || m["correlation_id"] == "" {
				t.Fatalf("error body shape: %s", r.body)
			}
		})
	}
	// A non-form body is refused, not a panic.
	if r := h.do("POST", v2, "", "application/json", `{"grant_type":"client_credentials"}`); r.status != 400 {
		t.Errorf("JSON body: %d", r.status)
	}
}

func TestTokenEndpointShapes(t *testing.T) {
	h := start(t, nil)
	// v1: numbers as strings, resource echoed.
	r := h.form("/"+tenantID+"/oauth2/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret},
		"resource": {"https://analysis.windows.net/powerbi/api"},
	})
	m := r.json(t)
	for _, k := range []string{"expires_in", "ext_expires_in", "expires_on", "not_before"} {
		if _, ok := m[k].(string); !ok {
			t.Errorf("v1 %s = %#v, want a string", k, m[k])
		}
	}
	if m["expires_in"] != "3599" || m["resource"] != "https://analysis.windows.net/powerbi/api" || m["token_type"] != "Bearer" {
		t.Errorf("v1 body: %s", r.body)
	}
	// v2: integers; Basic client authentication works too; MSAL's extra
	// scopes and the CAE claims marker are accepted.
	v := url.Values{"grant_type": {"client_credentials"}, "scope": {pbiScope + " openid offline_access profile"},
		"claims": {`{"access_token":{"xms_cc":{"values":["CP1"]}}}`}}
	req := v.Encode()
	res := h.doBasic("/"+tenantID+"/oauth2/v2.0/token", appID, appSecret, req)
	m = res.json(t)
	if res.status != 200 || m["expires_in"] != 3599.0 {
		t.Fatalf("v2 with basic auth: %d %s", res.status, res.body)
	}
	// The api.powerbi.com audience is accepted by Power BI too.
	tok := h.token(appID, appSecret, "https://api.powerbi.com/.default")
	if r := h.do("GET", "/v1.0/myorg/groups", tok, "", ""); r.status != 200 {
		t.Errorf("api.powerbi.com audience: %d", r.status)
	}
	// The domain name works as the tenant; so does the OpenID document.
	if r := h.do("GET", "/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration", "", "", ""); r.status != 200 || !strings.HasSuffix(r.json(t)["token_endpoint"].(string), "/contoso.onmicrosoft.com/oauth2/v2.0/token") {
		t.Errorf("openid by domain: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/nope/v2.0/.well-known/openid-configuration", "", "", ""); r.status != 400 {
		t.Errorf("openid of an unknown tenant: %d", r.status)
	}
	// Token lifetime follows the scenario and the emulator clock.
	h2 := start(t, demo(t, func(sc *Scenario) { sc.Settings.TokenLifetime = Duration(10 * time.Minute) }))
	tok = h2.pbiToken()
	h2.clock.Advance(9 * time.Minute)
	if r := h2.do("GET", "/v1.0/myorg/groups", tok, "", ""); r.status != 200 {
		t.Errorf("token before expiry: %d", r.status)
	}
	h2.clock.Advance(time.Minute)
	if r := h2.do("GET", "/v1.0/myorg/groups", tok, "", ""); r.status != 401 {
		t.Errorf("token at expiry: %d", r.status)
	}
}

func (h *harness) doBasic(path, user, pass, body string) resp {
	h.t.Helper()
	req, _ := newRequest("POST", h.emu.URL()+path, body)
	req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return h.send(req)
}

func TestKeyVaultEdges(t *testing.T) {
	h := start(t, nil)
	kvTok := h.token(readerID, readerSecret, "https://vault.azure.net/.default")
	pbiTok := h.token(readerID, readerSecret, pbiScope)
	for _, tc := range []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"no api-version", "/secrets/pbi-secret/", kvTok, 400, "BadParameter"},
		{"no token: challenge", "/secrets/pbi-secret/?api-version=7.5", "", 401, "Unauthorized"},
		{"Power BI token", "/secrets/pbi-secret/?api-version=7.5", pbiTok, 401, "Unauthorized"},
		{"forged token", "/secrets/pbi-secret/?api-version=7.5", kvTok + "x", 401, "Unauthorized"},
		{"unknown version", "/secrets/pbi-secret/0123456789abcdef0123456789abcdef?api-version=7.5", kvTok, 404, "SecretNotFound"},
		{"bad path", "/secrets/a/b/c?api-version=7.5", kvTok, 400, "BadParameter"},
		{"ok without trailing slash", "/secrets/pbi-secret?api-version=7.5", kvTok, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("GET", tc.path, tc.token, "", "")
			if r.status != tc.status || (tc.code != "" && errorCode(t, r) != tc.code) {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if tc.status == 401 {
				want := `Bearer authorization="` + h.emu.URL() + "/" + tenantID + `", resource="https://vault.azure.net"`
				if got := r.header.Get("WWW-Authenticate"); got != want {
					t.Fatalf("challenge %q, want %q", got, want)
				}
			}
		})
	}
	h.clock.Advance(2 * time.Hour)
	if r := h.do("GET", "/secrets/pbi-secret/?api-version=7.5", kvTok, "", ""); r.status != 401 || !strings.Contains(string(r.body), "TokenExpired") {
		t.Errorf("expired token: %d %s", r.status, r.body)
	}
}
