package emulator

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
	"github.com/golang-jwt/jwt/v5"
)

// sdkClient is what a daemon builds from a CA file: the system roots plus
// the emulator's CA.
func sdkClient(t *testing.T, h *harness) *http.Client {
	t.Helper()
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(h.emu.CAPEM()) {
		t.Fatal("CA PEM did not parse")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestMSALConfidentialClientSecret(t *testing.T) {
	h := start(t, nil)
	hc := sdkClient(t, h)
	ctx := context.Background()
	cred, err := confidential.NewCredFromSecret(appSecret)
	if err != nil {
		t.Fatal(err)
	}
	client, err := confidential.New(h.emu.AuthorityHost()+"/"+tenantID, appID, cred,
		confidential.WithInstanceDiscovery(false), confidential.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.AcquireTokenByCredential(ctx, []string{pbiScope})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(res.ExpiresOn); d < 50*time.Minute || d > time.Hour {
		t.Errorf("token lifetime %s, want about an hour", d)
	}
	// The token works on Power BI.
	if r := h.do("GET", "/v1.0/myorg/groups", res.AccessToken, "", ""); r.status != 200 {
		t.Fatalf("groups with MSAL token: %d %s", r.status, r.body)
	}
	// A second call is served from MSAL's cache: one token request in all.
	if _, err := client.AcquireTokenByCredential(ctx, []string{pbiScope}); err != nil {
		t.Fatal(err)
	}
	if n := countOps(h.emu.Requests(), "token"); n != 1 {
		t.Errorf("token endpoint hit %d times, want 1 (cache)", n)
	}

	// A wrong secret surfaces as a CallErr whose body names AADSTS7000215.
	bad, _ := confidential.NewCredFromSecret("the-secret-id-not-the-value")
	badClient, _ := confidential.New(h.emu.AuthorityHost()+"/"+tenantID, appID, bad,
		confidential.WithInstanceDiscovery(false), confidential.WithHTTPClient(hc))
	_, err = badClient.AcquireTokenByCredential(ctx, []string{pbiScope})
	var ce msalerrors.CallErr
	if !errors.As(err, &ce) || ce.Resp.StatusCode != 401 || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Fatalf("wrong secret: got %v", err)
	}
}

func countOps(reqs []Request, op string) int {
	n := 0
	for _, r := range reqs {
		if r.Operation == op {
			n++
		}
	}
	return n
}

func selfSignedRSA(t *testing.T) (*x509.Certificate, *rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "pbirefresh test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestMSALConfidentialClientCertificate(t *testing.T) {
	cert, key, certPEM := selfSignedRSA(t)
	otherCert, otherKey, _ := selfSignedRSA(t)
	h := start(t, demo(t, func(sc *Scenario) { sc.Apps[0].Certificates = []string{certPEM} }))
	hc := sdkClient(t, h)
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		key  *rsa.PrivateKey
		ok   bool
	}{{"registered certificate", cert, key, true}, {"unregistered certificate", otherCert, otherKey, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cred, err := confidential.NewCredFromCert([]*x509.Certificate{tc.cert}, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			client, err := confidential.New(h.emu.AuthorityHost()+"/"+tenantID, appID, cred,
				confidential.WithInstanceDiscovery(false), confidential.WithHTTPClient(hc))
			if err != nil {
				t.Fatal(err)
			}
			_, err = client.AcquireTokenByCredential(context.Background(), []string{pbiScope})
			if tc.ok && err != nil {
				t.Fatalf("certificate credential: %v", err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "AADSTS700027")) {
				t.Fatalf("signature by an unregistered key: got %v, want AADSTS700027", err)
			}
		})
	}
}

func TestMSALPasswordFlow(t *testing.T) {
	h := start(t, nil)
	hc := sdkClient(t, h)
	ctx := context.Background()
	client, err := public.New(publicID, public.WithAuthority(h.emu.AuthorityHost()+"/"+tenantID),
		public.WithInstanceDiscovery(false), public.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.AcquireTokenByUsernamePassword(ctx, []string{pbiScope}, "alice@contoso.onmicrosoft.com", "demo-password")
	if err != nil {
		t.Fatal(err)
	}
	// Alice's token opens her My workspace.
	if r := h.do("GET", "/v1.0/myorg/datasets/"+aliceDS+"/refreshes", res.AccessToken, "", ""); r.status != 200 {
		t.Fatalf("my workspace history with user token: %d %s", r.status, r.body)
	}
	accts, err := client.Accounts(ctx)
	if err != nil || len(accts) != 1 || accts[0].PreferredUsername != "alice@contoso.onmicrosoft.com" {
		t.Fatalf("accounts = %+v, %v", accts, err)
	}
	if _, err := client.AcquireTokenSilent(ctx, []string{pbiScope}, public.WithSilentAccount(accts[0])); err != nil {
		t.Fatalf("silent: %v", err)
	}
	for _, tc := range []struct{ user, pw, want string }{
		{"alice@contoso.onmicrosoft.com", "wrong", "AADSTS50126"},
		{"bob@contoso.onmicrosoft.com", "demo-password", "AADSTS50076"},
		{"nobody@contoso.onmicrosoft.com", "x", "AADSTS50034"},
	} {
		_, err := client.AcquireTokenByUsernamePassword(ctx, []string{pbiScope}, tc.user, tc.pw)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %s", tc.user, err, tc.want)
		}
	}
}

func TestAzidentityAndAzsecrets(t *testing.T) {
	h := start(t, nil)
	hc := sdkClient(t, h)
	ctx := context.Background()
	newCred := func(id, secret string) *azidentity.ClientSecretCredential {
		cred, err := azidentity.NewClientSecretCredential(tenantID, id, secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: h.emu.AuthorityHost() + "/"}, Transport: hc},
			DisableInstanceDiscovery: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		return cred
	}
	newVault := func(cred azcore.TokenCredential) *azsecrets.Client {
		c, err := azsecrets.NewClient(h.emu.VaultURL(), cred, &azsecrets.ClientOptions{
			ClientOptions: azcore.ClientOptions{Transport: hc}, DisableChallengeResourceVerification: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	vault := newVault(newCred(readerID, readerSecret))
	got, err := vault.GetSecret(ctx, "pbi-secret", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Value != appSecret || got.ID.Name() != "pbi-secret" || len(got.ID.Version()) != 32 {
		t.Fatalf("secret = %q name %q version %q", *got.Value, got.ID.Name(), got.ID.Version())
	}
	// The challenge flow: first request without a token (401), then a token
	// for the vault, then the retried GET.
	var kv []Request
	for _, r := range h.emu.Requests() {
		if r.Operation == "keyvault.get" {
			kv = append(kv, r)
		}
	}
	if len(kv) != 2 || kv[0].Status != 401 || kv[1].Status != 200 || kv[0].Header.Get("Authorization") != "" {
		t.Fatalf("key vault requests: %+v", kv)
	}

	// Rotation: the next read returns the new value; the old version stays readable.
	oldVersion := got.ID.Version()
	newVersion := h.emu.RotateSecret("pbi-secret", "rotated-value")
	got, err = vault.GetSecret(ctx, "pbi-secret", "", nil)
	if err != nil || *got.Value != "rotated-value" || got.ID.Version() != newVersion {
		t.Fatalf("after rotation: %v %v", got, err)
	}
	old, err := vault.GetSecret(ctx, "pbi-secret", oldVersion, nil)
	if err != nil || *old.Value != appSecret {
		t.Fatalf("old version: %v", err)
	}

	var re *azcore.ResponseError
	_, err = vault.GetSecret(ctx, "no-such-secret", "", nil)
	if !errors.As(err, &re) || re.StatusCode != 404 || re.ErrorCode != "SecretNotFound" {
		t.Fatalf("missing secret: %v", err)
	}
	_, err = vault.GetSecret(ctx, "old-secret", "", nil)
	if !errors.As(err, &re) || re.StatusCode != 403 {
		t.Fatalf("disabled secret: %v", err)
	}
	// An identity without the Key Vault Secrets User role gets 403.
	_, err = newVault(newCred(appID, appSecret)).GetSecret(ctx, "pbi-secret", "", nil)
	if !errors.As(err, &re) || re.StatusCode != 403 || re.ErrorCode != "Forbidden" {
		t.Fatalf("no role: %v", err)
	}
	// A wrong credential secret fails in azidentity with the Entra error.
	_, err = newVault(newCred(readerID, "wrong")).GetSecret(ctx, "pbi-secret", "", nil)
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) || afe.RawResponse.StatusCode != 401 || !strings.Contains(err.Error(), "7000215") {
		t.Fatalf("wrong reader secret: %v", err)
	}
}

func TestManagedIdentityEndpoint(t *testing.T) {
	h := start(t, nil)
	t.Setenv("IDENTITY_ENDPOINT", h.emu.URL()+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "demo-identity-header")
	hc := sdkClient(t, h)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: hc}})
	if err != nil {
		t.Fatal(err)
	}
	vault, _ := azsecrets.NewClient(h.emu.VaultURL(), cred, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: hc}, DisableChallengeResourceVerification: true,
	})
	got, err := vault.GetSecret(context.Background(), "pbi-secret", "", nil)
	if err != nil || *got.Value != appSecret {
		t.Fatalf("managed identity read: %v", err)
	}
}

// An assertion outside its valid time range (a host clock far off) is
// refused with AADSTS700024, as Entra ID does, not with the unregistered-
// certificate code 700027: the two call for different fixes.
func TestMSALAssertionOutsideItsTimeRange(t *testing.T) {
	cert, key, certPEM := selfSignedRSA(t)
	h := start(t, demo(t, func(sc *Scenario) { sc.Apps[0].Certificates = []string{certPEM} }))
	hc := sdkClient(t, h)
	endpoint := h.emu.AuthorityHost() + "/" + tenantID + "/oauth2/v2.0/token"
	sum := sha256.Sum256(cert.Raw)
	skewed := time.Now().Add(-2 * time.Hour) // the host's clock two hours behind
	cred := confidential.NewCredFromAssertionCallback(func(context.Context, confidential.AssertionRequestOptions) (string, error) {
		tok := jwt.NewWithClaims(jwt.SigningMethodPS256, jwt.MapClaims{
			"aud": endpoint, "iss": appID, "sub": appID, "jti": "1",
			"nbf": skewed.Unix(), "iat": skewed.Unix(), "exp": skewed.Add(10 * time.Minute).Unix(),
		})
		tok.Header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(sum[:])
		return tok.SignedString(key)
	})
	client, err := confidential.New(h.emu.AuthorityHost()+"/"+tenantID, appID, cred,
		confidential.WithInstanceDiscovery(false), confidential.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.AcquireTokenByCredential(context.Background(), []string{pbiScope})
	if err == nil || !strings.Contains(err.Error(), "AADSTS700024") {
		t.Fatalf("assertion two hours old: got %v, want AADSTS700024", err)
	}
}
