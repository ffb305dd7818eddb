package emulator

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Audiences the emulated resources accept. Power BI takes both the
// analysis.windows.net resource every working client requests and the
// api.powerbi.com one the enhanced-refresh article names
// (https://learn.microsoft.com/power-bi/connect-data/asynchronous-refresh).
var (
	powerBIAudiences = []string{"https://analysis.windows.net/powerbi/api", "https://api.powerbi.com"}
	vaultAudience    = "https://vault.azure.net"
)

func isPowerBIAudience(aud string) bool {
	for _, a := range powerBIAudiences {
		if strings.EqualFold(strings.TrimSuffix(aud, "/"), a) {
			return true
		}
	}
	return false
}

func knownResource(res string) bool {
	return isPowerBIAudience(res) || strings.EqualFold(strings.TrimSuffix(res, "/"), vaultAudience)
}

func (e *Emulator) lookupTenant(seg string) *Tenant {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tenants[strings.ToLower(seg)]
}

// openIDConfig serves /{tenant}/v2.0/.well-known/openid-configuration (and
// the v1 twin). MSAL requires token_endpoint, authorization_endpoint and an
// issuer on the authority's host (or on one of Microsoft's hosts).
func (e *Emulator) openIDConfig(v2 bool) func(http.ResponseWriter, *http.Request, *call) {
	return func(w http.ResponseWriter, r *http.Request, c *call) {
		seg := r.PathValue("tenant")
		tid := seg
		switch strings.ToLower(seg) {
		case "common", "organizations", "consumers":
			tid = "{tenantid}"
		default:
			t := e.lookupTenant(seg)
			if t == nil {
				tokenError(w, http.StatusBadRequest, "invalid_tenant", 90002,
					fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", seg))
				return
			}
			tid = t.ID
		}
		root := e.base + "/" + seg
		cfg := map[string]any{
			"token_endpoint":                        root + "/oauth2/v2.0/token",
			"authorization_endpoint":                root + "/oauth2/v2.0/authorize",
			"device_authorization_endpoint":         root + "/oauth2/v2.0/devicecode",
			"end_session_endpoint":                  root + "/oauth2/v2.0/logout",
			"jwks_uri":                              root + "/discovery/v2.0/keys",
			"issuer":                                e.base + "/" + tid + "/v2.0",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"subject_types_supported":               []string{"pairwise"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
			"tenant_region_scope":                   "EU",
			"cloud_instance_name":                   "microsoftonline.com",
		}
		if !v2 {
			cfg["token_endpoint"] = root + "/oauth2/token"
			cfg["authorization_endpoint"] = root + "/oauth2/authorize"
			cfg["issuer"] = "https://sts.windows.net/" + tid + "/"
		}
		writeJSON(w, http.StatusOK, cfg)
	}
}

// userRealm answers MSAL's ROPC home-realm lookup: always a managed
// (non-federated) account, so MSAL never starts WS-Trust.
func (e *Emulator) userRealm(w http.ResponseWriter, r *http.Request, c *call) {
	user := r.PathValue("user")
	domain := user
	if _, d, ok := strings.Cut(user, "@"); ok {
		domain = d
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"ver": "1.0", "account_type": "Managed", "domain_name": domain,
		"cloud_instance_name": "microsoftonline.com", "cloud_audience_urn": "urn:federation:MicrosoftOnline",
	})
}

// instanceDiscovery is served for completeness; clients pointed at the
// emulator should switch discovery off (it always goes to
// login.microsoftonline.com).
func (e *Emulator) instanceDiscovery(w http.ResponseWriter, r *http.Request, c *call) {
	host := strings.TrimPrefix(e.base, "https://")
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": e.base + "/common/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata":                  []map[string]any{{"preferred_network": host, "preferred_cache": host, "aliases": []string{host}}},
	})
}

// tokenError writes Entra ID's error body: error, error_description with
// the AADSTS code, error_codes, timestamp, trace and correlation ids,
// error_uri.
// https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
func tokenError(w http.ResponseWriter, status int, code string, aadsts int, msg string) {
	now := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	trace, corr := newGUID(), newGUID()
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", aadsts, msg, trace, corr, now),
		"error_codes":       []int{aadsts},
		"timestamp":         now,
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         "https://login.microsoftonline.com/error?code=" + strconv.Itoa(aadsts),
	})
}

// tokenEndpoint serves /{tenant}/oauth2/v2.0/token (v2) and
// /{tenant}/oauth2/token (v1, resource instead of scope, numbers as strings).
func (e *Emulator) tokenEndpoint(v2 bool) func(http.ResponseWriter, *http.Request, *call) {
	return func(w http.ResponseWriter, r *http.Request, c *call) {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		form, err := url.ParseQuery(string(c.body))
		if ct != "application/x-www-form-urlencoded" || err != nil {
			tokenError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
			return
		}
		seg := r.PathValue("tenant")
		grant := form.Get("grant_type")
		if grant == "" {
			tokenError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
			return
		}
		clientID, secret := form.Get("client_id"), form.Get("client_secret")
		if u, p, ok := r.BasicAuth(); ok {
			clientID, _ = url.QueryUnescape(u)
			secret, _ = url.QueryUnescape(p)
		}
		if clientID == "" {
			tokenError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
			return
		}
		// The resource: v1 names it; v2 takes the first scope that is a URL.
		var resource, scope string
		if v2 {
			scope = form.Get("scope")
			for _, s := range strings.Fields(scope) {
				if strings.Contains(s, "://") {
					if grant == "client_credentials" && !strings.HasSuffix(s, "/.default") {
						tokenError(w, http.StatusBadRequest, "invalid_scope", 1002012,
							fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", s))
						return
					}
					resource = s[:strings.LastIndexByte(s, '/')]
					break
				}
			}
			if resource == "" && grant != "refresh_token" {
				tokenError(w, http.StatusBadRequest, "invalid_scope", 70011, "The provided request must include a 'scope' input parameter.")
				return
			}
		} else {
			resource = form.Get("resource")
			if resource == "" && grant != "refresh_token" {
				tokenError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'resource'.")
				return
			}
		}
		if resource != "" && !knownResource(resource) {
			tokenError(w, http.StatusBadRequest, "invalid_resource", 500011,
				fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", resource, seg))
			return
		}

		e.mu.Lock()
		tenant := e.tenants[strings.ToLower(seg)]
		app := e.apps[strings.ToLower(clientID)]
		var appCopy App
		if app != nil {
			appCopy = *app
			appCopy.Secrets = append([]Secret(nil), app.Secrets...)
		}
		e.mu.Unlock()
		orgs := strings.EqualFold(seg, "organizations")
		if tenant == nil && !(orgs && grant == "password") {
			tokenError(w, http.StatusBadRequest, "invalid_tenant", 90002,
				fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", seg))
			return
		}
		if app == nil || (tenant != nil && !strings.EqualFold(appCopy.Tenant, tenant.ID)) {
			dir := seg
			if tenant != nil {
				dir = tenant.ID
			}
			tokenError(w, http.StatusBadRequest, "unauthorized_client", 700016,
				fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, dir))
			return
		}

		var cl *claims
		switch grant {
		case "client_credentials":
			if !e.authenticateClient(w, &appCopy, secret, form, r, c.now) {
				return
			}
			cl = e.appClaims(&appCopy, resource, c.now)
		case "password":
			// MSAL Go sends no client secret on this grant, even from a
			// confidential client, so an app must allow public client flows
			// unless it authenticates.
			if secret != "" || form.Get("client_assertion") != "" {
				if !e.authenticateClient(w, &appCopy, secret, form, r, c.now) {
					return
				}
			} else if !appCopy.AllowPublicClient {
				tokenError(w, http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
				return
			}
			var ok bool
			cl, ok = e.userClaims(w, form.Get("username"), form.Get("password"), &appCopy, resource, c.now)
			if !ok {
				return
			}
		case "refresh_token":
			rc, err := e.verifyToken(form.Get("refresh_token"), c.now)
			if err != nil || rc.TokenUse != "refresh" || !strings.EqualFold(rc.AppID, appCopy.ClientID) {
				tokenError(w, http.StatusBadRequest, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
				return
			}
			if resource == "" {
				resource = powerBIAudiences[0]
			}
			cl = &claims{Aud: resource, Tid: rc.Tid, AppID: rc.AppID, OID: rc.OID, IDTyp: "user", UPN: rc.UPN, Scp: rc.Scp}
		default:
			tokenError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '"+grant+"'.")
			return
		}
		e.writeToken(w, cl, v2, scope, c.now)
	}
}

// authenticateClient checks a client secret or a certificate assertion and
// writes the Entra ID error when neither is good.
func (e *Emulator) authenticateClient(w http.ResponseWriter, app *App, secret string, form url.Values, r *http.Request, now time.Time) bool {
	if secret != "" {
		expired := false
		for _, s := range app.Secrets {
			if s.Value != secret {
				continue
			}
			if s.Expires.IsZero() || now.Before(s.Expires) {
				return true
			}
			expired = true
		}
		if expired {
			tokenError(w, http.StatusUnauthorized, "invalid_client", 7000222,
				fmt.Sprintf("The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", app.ClientID))
			return false
		}
		tokenError(w, http.StatusUnauthorized, "invalid_client", 7000215,
			fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", app.ClientID))
		return false
	}
	if a := form.Get("client_assertion"); a != "" {
		endpoint := e.base + r.URL.Path
		// MSAL stamps assertions with the wall clock, so they are checked
		// against it, not against a (possibly fake) emulator clock.
		if code, msg := verifyAssertion(a, app, endpoint, time.Now()); msg != "" {
			tokenError(w, http.StatusUnauthorized, "invalid_client", code, msg)
			return false
		}
		return true
	}
	tokenError(w, http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	return false
}

// verifyAssertion checks a certificate client assertion as MSAL builds it:
// PS256 (or RS256) signed, x5t#S256 (or x5t) naming a registered
// certificate, aud the token endpoint, iss and sub the client id. It
// returns the AADSTS code and message of a refusal: 700024 for an
// assertion outside its time range (Entra ID's "Client assertion is not
// within its valid time range"), 700027 otherwise.
func verifyAssertion(assertion string, app *App, endpoint string, now time.Time) (int, string) {
	var certs []*x509.Certificate
	for _, p := range app.Certificates {
		if c, err := parseCertPEM(p); err == nil {
			certs = append(certs, c)
		}
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"PS256", "RS256"}), jwt.WithTimeFunc(func() time.Time { return now }), jwt.WithLeeway(5*time.Minute))
	var mc jwt.MapClaims
	_, err := parser.ParseWithClaims(assertion, &mc, func(t *jwt.Token) (any, error) {
		for _, c := range certs {
			s256 := sha256.Sum256(c.Raw)
			s1 := sha1.Sum(c.Raw)
			if t.Header["x5t#S256"] == base64.StdEncoding.EncodeToString(s256[:]) ||
				t.Header["x5t#S256"] == base64.RawURLEncoding.EncodeToString(s256[:]) ||
				t.Header["x5t"] == base64.StdEncoding.EncodeToString(s1[:]) ||
				t.Header["x5t"] == base64.RawURLEncoding.EncodeToString(s1[:]) {
				if k, ok := c.PublicKey.(*rsa.PublicKey); ok {
					return k, nil
				}
			}
		}
		return nil, fmt.Errorf("no registered certificate matches the assertion's thumbprint")
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return 700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s. [Reason - %v.]", now.UTC().Format(time.RFC3339), err)
	case err != nil:
		return 700027, fmt.Sprintf("Client assertion contains an invalid signature. [Reason - %v, Thumbprint of key used by client: not registered for app '%s'.]", err, app.ClientID)
	}
	if aud, _ := mc.GetAudience(); len(aud) == 0 || !strings.EqualFold(aud[0], endpoint) {
		return 700027, fmt.Sprintf("Client assertion audience claim does not match Realm issuer. Expected %s.", endpoint)
	}
	if iss, _ := mc.GetIssuer(); !strings.EqualFold(iss, app.ClientID) {
		return 700027, "Client assertion issuer must be the client id."
	}
	if sub, _ := mc.GetSubject(); !strings.EqualFold(sub, app.ClientID) {
		return 700027, "Client assertion subject must be the client id."
	}
	return 0, ""
}

// objectID derives a stable object id for a principal.
func objectID(name string) string {
	h := sha256.Sum256([]byte(strings.ToLower(name)))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func (e *Emulator) appClaims(app *App, resource string, now time.Time) *claims {
	return &claims{
		Aud: resource, Tid: strings.ToLower(app.Tenant), AppID: strings.ToLower(app.ClientID),
		OID: objectID("sp:" + app.ClientID), IDTyp: "app",
	}
}

func (e *Emulator) userClaims(w http.ResponseWriter, username, password string, app *App, resource string, now time.Time) (*claims, bool) {
	e.mu.Lock()
	u := e.users[strings.ToLower(username)]
	var user User
	if u != nil {
		user = *u
	}
	e.mu.Unlock()
	if u == nil || !strings.EqualFold(user.Tenant, app.Tenant) {
		tokenError(w, http.StatusBadRequest, "invalid_grant", 50034,
			fmt.Sprintf("The user account {EUII Hidden} does not exist in the %s directory. To sign into this application, the account must be added to the directory.", app.Tenant))
		return nil, false
	}
	if user.Password != password {
		tokenError(w, http.StatusBadRequest, "invalid_grant", 50126, "Error validating credentials due to invalid username or password.")
		return nil, false
	}
	if user.MFA {
		tokenError(w, http.StatusBadRequest, "invalid_grant", 50076,
			fmt.Sprintf("Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '%s'.", resource))
		return nil, false
	}
	return &claims{
		Aud: resource, Tid: strings.ToLower(user.Tenant), AppID: strings.ToLower(app.ClientID),
		OID: objectID("user:" + user.UPN), IDTyp: "user", UPN: user.UPN,
		Scp: "Dataset.ReadWrite.All Workspace.Read.All Dataflow.ReadWrite.All Tenant.Read.All",
	}, true
}

func (e *Emulator) writeToken(w http.ResponseWriter, cl *claims, v2 bool, scope string, now time.Time) {
	life := e.sc.Settings.TokenLifetime.D()
	cl.Iss = "https://sts.windows.net/" + cl.Tid + "/"
	cl.Iat, cl.Nbf = now.Unix(), now.Add(-5*time.Minute).Unix()
	cl.Exp = now.Add(life).Unix()
	cl.Ver = "1.0"
	access := e.signToken(cl)
	expiresIn := int64(life.Seconds()) - 1 // Entra answers 3599 for an hour
	resp := map[string]any{"token_type": "Bearer", "access_token": access}
	if cl.IDTyp == "user" {
		rc := *cl
		rc.TokenUse, rc.Aud = "refresh", ""
		rc.Exp = now.Add(90 * 24 * time.Hour).Unix()
		resp["refresh_token"] = e.signToken(&rc)
		resp["scope"] = strings.TrimSpace(strings.NewReplacer("openid", "", "offline_access", "", "profile", "").Replace(scope))
		resp["id_token"] = idToken(cl, e.base, now, life)
		ci, _ := json.Marshal(map[string]string{"uid": cl.OID, "utid": cl.Tid})
		resp["client_info"] = base64.RawURLEncoding.EncodeToString(ci)
	}
	if v2 {
		resp["expires_in"] = expiresIn
		resp["ext_expires_in"] = expiresIn
	} else {
		s := func(n int64) string { return strconv.FormatInt(n, 10) }
		resp["expires_in"] = s(expiresIn)
		resp["ext_expires_in"] = s(expiresIn)
		resp["expires_on"] = s(now.Unix() + expiresIn)
		resp["not_before"] = s(cl.Nbf)
		resp["resource"] = cl.Aud
	}
	writeJSON(w, http.StatusOK, resp)
}

// idToken is an unsigned (alg none) id token; MSAL reads its claims for
// the account cache and does not check its signature.
func idToken(cl *claims, base string, now time.Time, life time.Duration) string {
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	body, _ := json.Marshal(map[string]any{
		"aud": cl.AppID, "iss": base + "/" + cl.Tid + "/v2.0", "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(life).Unix(), "name": cl.UPN, "oid": cl.OID, "preferred_username": cl.UPN,
		"sub": cl.OID, "tid": cl.Tid, "ver": "2.0",
	})
	return hdr + "." + base64.RawURLEncoding.EncodeToString(body) + "."
}

// managedIdentity serves the App Service style endpoint
// (IDENTITY_ENDPOINT=<emulator>/msi/token, IDENTITY_HEADER=<header>).
func (e *Emulator) managedIdentity(w http.ResponseWriter, r *http.Request, c *call) {
	mi := e.sc.ManagedIdentity
	if mi == nil || r.Header.Get("X-IDENTITY-HEADER") != mi.Header {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"statusCode": 401, "message": "Unauthorized request"})
		return
	}
	resource := strings.TrimSuffix(r.URL.Query().Get("resource"), "/.default")
	if !knownResource(resource) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"statusCode": 400, "message": "Invalid resource " + resource})
		return
	}
	life := e.sc.Settings.TokenLifetime.D()
	cl := &claims{Aud: resource, Tid: strings.ToLower(mi.Tenant), AppID: strings.ToLower(mi.ClientID), OID: objectID("mi:" + mi.ClientID), IDTyp: "app",
		Iss: "https://sts.windows.net/" + strings.ToLower(mi.Tenant) + "/", Iat: c.now.Unix(), Nbf: c.now.Unix(), Exp: c.now.Add(life).Unix(), Ver: "1.0"}
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token": e.signToken(cl), "expires_on": strconv.FormatInt(cl.Exp, 10),
		"resource": resource, "token_type": "Bearer", "client_id": mi.ClientID,
	})
}
