package refresh_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/pbirefresh/pbirefresh"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/pbirefresh/pbirefresh/emulator"
	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/secrets"
)

// Demo scenario ids (emulator/demo.yaml).
const (
	tenantID     = "c0ffee00-0000-4000-8000-000000000001"
	appID        = "c0ffee00-0000-4000-8000-0000000000a1"
	appSecret    = "demo-client-secret-value"
	readerID     = "c0ffee00-0000-4000-8000-0000000000a2"
	readerSecret = "demo-vault-reader-secret"
	outsiderID   = "c0ffee00-0000-4000-8000-0000000000a3"
	salesWS      = "c0ffee00-0000-4000-8000-000000000101"
	teamWS       = "c0ffee00-0000-4000-8000-000000000102"
	restrictedWS = "c0ffee00-0000-4000-8000-000000000103"
	salesDS      = "c0ffee00-0000-4000-8000-000000000201"
	financeDS    = "c0ffee00-0000-4000-8000-000000000202"
	inventoryDS  = "c0ffee00-0000-4000-8000-000000000203"
	forecastDS   = "c0ffee00-0000-4000-8000-000000000204"
	teamDS       = "c0ffee00-0000-4000-8000-000000000205"
	payrollDS    = "c0ffee00-0000-4000-8000-000000000206"
	archiveDS    = "c0ffee00-0000-4000-8000-000000000208"
	pbiScope     = "https://analysis.windows.net/powerbi/api/.default"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// fakeClock is the emulator's fake clock; Sleep moves it, so a wait of an
// hour takes no time and the emulator sees the hour pass.
type fakeClock struct{ *emulator.FakeClock }

func (f fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d > 0 {
		f.Advance(d)
	}
	return nil
}

// syncBuffer collects log output from concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	t      testing.TB
	emu    *emulator.Emulator
	clock  fakeClock
	hc     *http.Client
	store  *secrets.Store
	cred   *refresh.Credential
	client *refresh.Client
	logs   *syncBuffer
}

// vaultCredential gets a fresh Key Vault token from the emulator on every
// call: azidentity's own cache runs on the wall clock, which a fake-clock
// test would outrun. (The azidentity path itself is covered by the
// emulator's SDK tests and the command's end-to-end test.)
type vaultCredential struct {
	h *harness
}

func (v vaultCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {readerID}, "client_secret": {readerSecret}, "scope": {"https://vault.azure.net/.default"}}
	res, err := v.h.hc.PostForm(v.h.emu.URL()+"/"+tenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.AccessToken == "" {
		return azcore.AccessToken{}, fmt.Errorf("vault token: %d %v", res.StatusCode, err)
	}
	return azcore.AccessToken{Token: body.AccessToken, ExpiresOn: time.Now().Add(time.Second)}, nil
}

func setup(t testing.TB, edit func(*emulator.Scenario)) *harness {
	t.Helper()
	sc, err := emulator.ParseScenario("demo.yaml", emulator.DemoScenarioYAML())
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(sc)
	}
	fc := emulator.NewFakeClock(t0)
	emu := emulator.New(sc)
	emu.Clock = fc
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	h := &harness{t: t, emu: emu, clock: fakeClock{fc}, hc: emu.Client(), logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.store = secrets.New(vaultCredential{h}, secrets.KeyVaultOptions{Transport: h.hc, DisableChallengeResourceVerification: true})
	h.store.Now = fc.Now
	h.store.Logger = logger
	h.cred = h.credential(appID, emu.VaultURL()+"/secrets/pbi-secret")
	h.cred.Logger = logger
	h.client = refresh.NewClient(emu.PowerBIURL(), h.hc, h.cred)
	h.client.Clock, h.client.Logger = h.clock, logger
	h.client.Seed(1)
	t.Cleanup(func() {
		// No secret or token ever reaches a log line.
		out := h.logs.String()
		for _, s := range []string{appSecret, readerSecret, "rotated-secret-value", "eyJ"} {
			if strings.Contains(out, s) {
				t.Errorf("logs contain a secret or token (%.6s…)", s)
			}
		}
	})
	return h
}

func (h *harness) credential(clientID, ref string) *refresh.Credential {
	c := refresh.NewSecretCredential("demo", tenantID, clientID, ref, h.store,
		refresh.Authority{Host: h.emu.AuthorityHost(), Scope: pbiScope}, h.hc)
	c.Clock = h.clock
	return c
}

func jobPolicy(timeout time.Duration) refresh.Policy {
	return refresh.Policy{Timeout: timeout, OnTimeout: pbirefresh.TimeoutCancel, WhenBusy: pbirefresh.BusyWait, MinInterval: 5 * time.Second, MaxInterval: 2 * time.Minute}
}

func enhanced() refresh.Options { return refresh.Options{Enhanced: true, Type: "Full"} }

func ds(ws, d string) refresh.Dataset { return refresh.Dataset{WorkspaceID: ws, DatasetID: d} }

// requests returns the emulator's log for one operation.
func (h *harness) requests(op string) []emulator.Request {
	var out []emulator.Request
	for _, r := range h.emu.Requests() {
		if r.Operation == op {
			out = append(out, r)
		}
	}
	return out
}

// pbiToken gets a Power BI token directly, for acting as "someone else".
func (h *harness) pbiToken() string {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret}, "scope": {pbiScope}}
	res, err := h.hc.PostForm(h.emu.URL()+"/"+tenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&body)
	return body.AccessToken
}
