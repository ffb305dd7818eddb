package emulator

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

type secretState struct {
	name     string
	versions []secretVersion // oldest first
	disabled bool
}

type secretVersion struct {
	id      string // 32 hex digits
	value   string
	created time.Time
}

func newVersionID() string { return strings.ReplaceAll(newGUID(), "-", "") }

func kvError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// keyVault serves GET /secrets/{name}/ and /secrets/{name}/{version}
// as azsecrets calls them: api-version required, the 401 challenge for
// requests without a token, then the secret.
func (e *Emulator) keyVault(w http.ResponseWriter, r *http.Request, c *call) {
	if r.Method != http.MethodGet {
		kvError(w, http.StatusMethodNotAllowed, "BadParameter", "The emulator's vault serves GET only.")
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		kvError(w, http.StatusBadRequest, "BadParameter", "The request URI contains an invalid or missing api-version query parameter.")
		return
	}
	v := e.sc.Vault
	if v == nil {
		kvError(w, http.StatusNotFound, "VaultNotFound", "No vault is configured in this emulator scenario.")
		return
	}
	challenge := func(msg string) {
		// authorization must carry the tenant as a path segment: without one
		// azsecrets panics.
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, e.base, strings.ToLower(v.Tenant), vaultAudience))
		kvError(w, http.StatusUnauthorized, "Unauthorized", msg)
	}
	tok := bearer(r.Header.Get("Authorization"))
	if tok == "" {
		challenge("AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	cl, err := e.verifyToken(tok, c.now)
	switch {
	case err == errTokenExpired:
		challenge("[TokenExpired] Error validating token: 'S2S12086'.")
		return
	case err != nil:
		challenge("AKV10032: Invalid issuer or signature. (token is not valid)")
		return
	case !strings.EqualFold(strings.TrimSuffix(cl.Aud, "/"), vaultAudience):
		challenge(fmt.Sprintf("AKV10022: Invalid audience. Expected %s, found: %s.", vaultAudience, cl.Aud))
		return
	case !strings.EqualFold(cl.Tid, v.Tenant):
		challenge(fmt.Sprintf("AKV10032: Invalid issuer. Expected one of https://sts.windows.net/%s/, found https://sts.windows.net/%s/.", strings.ToLower(v.Tenant), cl.Tid))
		return
	}
	c.claims = cl

	rest := strings.TrimPrefix(r.URL.Path, "/secrets/")
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if rest == "" || len(parts) > 2 || parts[0] == "" {
		kvError(w, http.StatusBadRequest, "BadParameter", "The request URI is not a secret URI: /secrets/{name}[/{version}].")
		return
	}
	name, version := parts[0], ""
	if len(parts) == 2 {
		version = parts[1]
	}

	e.mu.Lock()
	allowed := false
	for _, a := range v.Access {
		allowed = allowed || strings.EqualFold(a, cl.principal())
	}
	s := e.vault[strings.ToLower(name)]
	var sv secretVersion
	found, disabled := false, false
	if s != nil {
		disabled = s.disabled
		for i := len(s.versions) - 1; i >= 0; i-- {
			if version == "" || strings.EqualFold(s.versions[i].id, version) {
				sv, found = s.versions[i], true
				break
			}
		}
	}
	e.mu.Unlock()

	if !allowed {
		writeJSON(w, http.StatusForbidden, map[string]any{"error": map[string]any{
			"code": "Forbidden",
			"message": fmt.Sprintf("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=%s;oid=%s\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/vaults/%s/secrets/%s'\r\nAssignment: (not found)",
				cl.AppID, cl.OID, strings.ToLower(v.Name), strings.ToLower(name)),
			"innererror": map[string]string{"code": "ForbiddenByRbac"},
		}})
		return
	}
	if !found {
		kvError(w, http.StatusNotFound, "SecretNotFound",
			fmt.Sprintf("A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", name))
		return
	}
	if disabled {
		writeJSON(w, http.StatusForbidden, map[string]any{"error": map[string]any{
			"code": "Forbidden", "message": "Operation get is not allowed on a disabled secret.",
			"innererror": map[string]string{"code": "SecretDisabled"},
		}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"value": sv.value,
		"id":    fmt.Sprintf("%s/secrets/%s/%s", e.base, s.name, sv.id),
		"attributes": map[string]any{
			"enabled": true, "created": sv.created.Unix(), "updated": sv.created.Unix(),
			"recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90,
		},
		"tags": map[string]string{},
	})
}

// RotateSecret adds a new current version to a vault secret (creating the
// secret if needed) and returns the version id.
func (e *Emulator) RotateSecret(name, value string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.vault[strings.ToLower(name)]
	if s == nil {
		s = &secretState{name: name}
		e.vault[strings.ToLower(name)] = s
	}
	id := newVersionID()
	s.versions = append(s.versions, secretVersion{id: id, value: value, created: e.Clock.Now()})
	return id
}

// SetSecretEnabled enables or disables a vault secret.
func (e *Emulator) SetSecretEnabled(name string, enabled bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.vault[strings.ToLower(name)]
	if s == nil {
		return fmt.Errorf("vault secret %q does not exist", name)
	}
	s.disabled = !enabled
	return nil
}

// SetVaultAccess replaces the principals allowed to read vault secrets.
func (e *Emulator) SetVaultAccess(principals ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sc.Vault != nil {
		e.sc.Vault.Access = append([]string(nil), principals...)
	}
}
