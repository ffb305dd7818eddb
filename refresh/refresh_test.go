package refresh_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"github.com/pbirefresh/pbirefresh"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh/emulator"
	"github.com/pbirefresh/pbirefresh/refresh"
)

func TestClassicAndEnhanced(t *testing.T) {
	h := setup(t, nil)
	ctx := context.Background()
	res := h.client.Run(ctx, ds(salesWS, salesDS), refresh.Options{Enhanced: true, Type: "Full", RetryCount: ptr(1),
		Objects: []refresh.Object{{Table: "Sales", Partition: "Sales-2026"}}}, jobPolicy(time.Hour), nil)
	if res.Outcome != pbirefresh.Completed || res.RefreshID == "" || res.Polls == 0 {
		t.Fatalf("enhanced: %+v", res)
	}
	res2 := h.client.Run(ctx, ds(teamWS, teamDS), refresh.Options{NotifyOption: "NoNotification"}, jobPolicy(time.Hour), nil)
	if res2.Outcome != pbirefresh.Completed {
		t.Fatalf("classic: %+v", res2)
	}
	posts := h.requests("refresh.post")
	if len(posts) != 2 {
		t.Fatalf("%d POSTs", len(posts))
	}
	var enh, classic map[string]any
	json.Unmarshal([]byte(posts[0].Body), &enh)
	json.Unmarshal([]byte(posts[1].Body), &classic)
	if enh["notifyOption"] != nil || enh["type"] != "Full" || enh["retryCount"] != 1.0 || len(classic) != 1 || classic["notifyOption"] != "NoNotification" {
		t.Fatalf("bodies: enhanced %v, classic %v", enh, classic)
	}
	// Enhanced refreshes are followed on the details endpoint, classic ones
	// in the history, each by the id its POST returned.
	for _, r := range h.requests("refresh.details") {
		if r.RefreshID != res.RefreshID {
			t.Errorf("details polled for %s, not our %s", r.RefreshID, res.RefreshID)
		}
	}
	if posts[0].RefreshID != res.RefreshID || posts[1].RefreshID != res2.RefreshID {
		t.Errorf("ids: POSTs created %s, %s; runs followed %s, %s", posts[0].RefreshID, posts[1].RefreshID, res.RefreshID, res2.RefreshID)
	}
}

func ptr[T any](v T) *T { return &v }

func TestOutcomes(t *testing.T) {
	h := setup(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		ds      string
		opts    refresh.Options
		want    pbirefresh.Status
		hintHas string
	}{
		{"failed", financeDS, enhanced(), pbirefresh.Failed, "credentials"},
		{"retries exhausted", inventoryDS, refresh.Options{Enhanced: true, RetryCount: ptr(0)}, pbirefresh.Failed, ""},
		{"retry recovers", inventoryDS, refresh.Options{Enhanced: true, RetryCount: ptr(1)}, pbirefresh.Completed, ""},
		{"service timeout", salesDS, refresh.Options{Enhanced: true, Timeout: "00:00:01"}, pbirefresh.TimedOut, "timeout"},
		{"disabled", archiveDS, enhanced(), pbirefresh.Disabled, "disabled"},
		{"classic failed", financeDS, refresh.Options{}, pbirefresh.Failed, "credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.client.Run(ctx, ds(salesWS, tc.ds), tc.opts, jobPolicy(time.Hour), nil)
			if res.Outcome != tc.want {
				t.Fatalf("outcome %s, want %s: %+v", res.Outcome, tc.want, res)
			}
			if tc.want != pbirefresh.Completed && (res.Err == nil || !strings.Contains(strings.ToLower(res.Hint), tc.hintHas)) {
				t.Fatalf("error %v hint %q, want a hint about %q", res.Err, res.Hint, tc.hintHas)
			}
			if tc.ds == financeDS && !strings.Contains(res.ServiceException, "ModelRefreshFailed_CredentialsNotSpecified") {
				t.Errorf("service exception not carried: %q", res.ServiceException)
			}
		})
	}
}

func TestCancelledBySomeoneElse(t *testing.T) {
	h := setup(t, func(sc *emulator.Scenario) {
		sc.Workspaces[0].Datasets[0].Behaviour.Duration = emulator.DurationDist{Min: emulator.Duration(time.Hour), Max: emulator.Duration(time.Hour)}
	})
	tok := h.pbiToken()
	cancelled := false
	res := h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), jobPolicy(3*time.Hour), func(rf refresh.Refresh, st refresh.Status, polls int) {
		if st.Found && !cancelled {
			cancelled = true
			req, _ := http.NewRequest("DELETE", h.emu.URL()+"/v1.0/myorg/groups/"+salesWS+"/datasets/"+salesDS+"/refreshes/"+rf.ID, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			if r, err := h.hc.Do(req); err != nil || r.StatusCode != 200 {
				t.Fatalf("cancel as someone else: %v", err)
			}
		}
	})
	if res.Outcome != pbirefresh.Cancelled || res.Err == nil {
		t.Fatalf("a refresh cancelled by someone else must not look like success: %+v", res)
	}
	if n := len(h.requests("refresh.cancel")); n != 1 {
		t.Errorf("%d DELETEs; only the foreign one expected", n)
	}
}

func TestThreeHourRefreshWithOneHourTokens(t *testing.T) {
	h := setup(t, func(sc *emulator.Scenario) {
		sc.Workspaces[0].Datasets[0].Behaviour.Duration = emulator.DurationDist{Min: emulator.Duration(3 * time.Hour), Max: emulator.Duration(3 * time.Hour)}
	})
	res := h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), jobPolicy(4*time.Hour), nil)
	if res.Outcome != pbirefresh.Completed {
		t.Fatalf("%+v", res)
	}
	if n := h.cred.Tokens(); n < 3 || n > 5 {
		t.Errorf("%d tokens over 3 h of 1 h tokens, want 3 to 5", n)
	}
	// Renewed before expiry: Power BI never saw an expired token.
	for _, r := range h.emu.Requests() {
		if strings.HasPrefix(r.Operation, "refresh.") && r.Status == 401 {
			t.Fatalf("a request went out with an expired token at %s", r.Time)
		}
	}
	t.Logf("3 h refresh: %d polls, %d tokens", res.Polls, h.cred.Tokens())
}

func TestSecretRotatedMidRun(t *testing.T) {
	h := setup(t, func(sc *emulator.Scenario) {
		sc.Workspaces[0].Datasets[0].Behaviour.Duration = emulator.DurationDist{Min: emulator.Duration(3 * time.Hour), Max: emulator.Duration(3 * time.Hour)}
	})
	h.store.TTL = 24 * time.Hour // keep the old value cached: only the token service's refusal can refresh it
	rotated := false
	res := h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), jobPolicy(4*time.Hour), func(rf refresh.Refresh, st refresh.Status, polls int) {
		if !rotated && h.clock.Now().Sub(t0) > 90*time.Minute {
			rotated = true
			// The operator rotates: a new secret in the app and in the vault;
			// the old one stops working at once.
			h.emu.RotateSecret("pbi-secret", "rotated-secret-value")
			h.emu.SetAppSecrets(appID, emulator.Secret{Value: "rotated-secret-value"})
		}
	})
	if res.Outcome != pbirefresh.Completed || !rotated {
		t.Fatalf("rotated=%v %+v", rotated, res)
	}
	ref := h.emu.VaultURL() + "/secrets/pbi-secret"
	if n := h.store.Reads(ref); n != 2 {
		t.Errorf("vault read %d times, want 2 (start, and once after the refusal)", n)
	}
	refusals := 0
	for _, r := range h.requests("token") {
		if r.Status == 401 {
			refusals++
		}
	}
	if refusals != 1 || !strings.Contains(h.logs.String(), "token service refused the secret; reading it again") {
		t.Errorf("%d refusals; logs: %s", refusals, h.logs.String())
	}
}

func TestHistoryLagAndLost(t *testing.T) {
	t.Run("lag within grace", func(t *testing.T) {
		h := setup(t, func(sc *emulator.Scenario) { sc.Settings.HistoryDelay = emulator.Duration(40 * time.Second) })
		for _, opts := range []refresh.Options{{}, enhanced()} {
			res := h.client.Run(context.Background(), ds(salesWS, salesDS), opts, jobPolicy(time.Hour), nil)
			if res.Outcome != pbirefresh.Completed {
				t.Fatalf("enhanced=%v: %+v", opts.Enhanced, res)
			}
		}
	})
	t.Run("dropped is lost", func(t *testing.T) {
		h := setup(t, func(sc *emulator.Scenario) {
			sc.Workspaces[0].Datasets[0].Behaviour.DropBurst = &emulator.Burst{Limit: 1, Window: emulator.Duration(time.Hour)}
		})
		first := h.client.Run(context.Background(), ds(salesWS, salesDS), refresh.Options{}, jobPolicy(time.Hour), nil)
		if first.Outcome != pbirefresh.Completed {
			t.Fatalf("first: %+v", first)
		}
		for _, opts := range []refresh.Options{{}, enhanced()} {
			began := h.clock.Now()
			res := h.client.Run(context.Background(), ds(salesWS, salesDS), opts, jobPolicy(time.Hour), nil)
			if res.Outcome != pbirefresh.Lost || res.Hint == "" {
				t.Fatalf("enhanced=%v: %+v", opts.Enhanced, res)
			}
			if el := h.clock.Now().Sub(began); el > 3*time.Minute {
				t.Errorf("lost only after %s; the grace is 2 min", el)
			}
		}
	})
}

// TestRetryAfterHonoured: under a 429 storm no request goes out before the
// Retry-After it was given has passed.
func TestRetryAfterHonoured(t *testing.T) {
	h := setup(t, func(sc *emulator.Scenario) {
		sc.Throttle = &emulator.Throttle{Limit: 2, Window: emulator.Duration(3 * time.Minute)}
		sc.Workspaces[0].Datasets[0].Behaviour.Duration = emulator.DurationDist{Min: emulator.Duration(40 * time.Minute), Max: emulator.Duration(40 * time.Minute)}
	})
	h.emu.Storm(5 * time.Minute)
	fast := jobPolicy(2 * time.Hour)
	fast.MaxInterval = 10 * time.Second // poll faster than the limit allows
	res := h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), fast, nil)
	if res.Outcome != pbirefresh.Completed {
		t.Fatalf("%+v", res)
	}
	var notBefore time.Time
	throttled := 0
	for _, r := range h.emu.Requests() {
		if !strings.HasPrefix(r.Path, "/v1.0/") {
			continue
		}
		if r.Time.Before(notBefore) {
			t.Fatalf("%s %s at %s, before the Retry-After ended at %s", r.Method, r.Path, r.Time, notBefore)
		}
		if r.Status == 429 {
			throttled++
			notBefore = r.Time.Add(time.Duration(r.RetryAfter) * time.Second)
		}
	}
	if throttled < 5 {
		t.Fatalf("only %d throttled answers; the test needs several", throttled)
	}
	t.Logf("%d throttled answers, all Retry-Afters honoured", throttled)
	// Throttled past the deadline: could not follow (an error, not success).
	h.emu.Storm(10 * time.Hour)
	res = h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), jobPolicy(30*time.Minute), nil)
	if res.Outcome != pbirefresh.Error || !errors.Is(res.Err, refresh.ErrThrottled) || res.Hint == "" {
		t.Fatalf("throttled past the deadline: %+v", res)
	}
}

func TestTransientFaults(t *testing.T) {
	t.Run("5xx bursts on polls", func(t *testing.T) {
		h := setup(t, nil)
		h.emu.SetFaults(emulator.Fault{Endpoint: "refresh.details", Status: 503, Count: 4}, emulator.Fault{Endpoint: "refresh.history", Status: 500, Count: 2})
		res := h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), jobPolicy(time.Hour), nil)
		if res.Outcome != pbirefresh.Completed {
			t.Fatalf("%+v", res)
		}
	})
	for _, f := range []emulator.Fault{
		{Endpoint: "refresh.post", Status: 503, Count: 1},                     // not processed
		{Endpoint: "refresh.post", Reset: true, Count: 1},                     // not processed, no answer
		{Endpoint: "refresh.post", Reset: true, AfterHandler: true, Count: 1}, // processed, no answer
	} {
		t.Run("ambiguous POST "+describe(f), func(t *testing.T) {
			h := setup(t, nil)
			h.emu.SetFaults(f)
			res := h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), jobPolicy(time.Hour), nil)
			if res.Outcome != pbirefresh.Completed {
				t.Fatalf("%+v", res)
			}
			// Exactly one refresh was started, whatever the fault.
			started := map[string]bool{}
			for _, r := range h.requests("refresh.post") {
				if r.RefreshID != "" {
					started[r.RefreshID] = true
				}
			}
			if len(started) != 1 || !started[res.RefreshID] {
				t.Fatalf("refreshes started %v, followed %s", started, res.RefreshID)
			}
		})
	}
}

func describe(f emulator.Fault) string {
	switch {
	case f.AfterHandler:
		return "processed then reset"
	case f.Reset:
		return "reset"
	}
	return "503"
}

func TestBusy(t *testing.T) {
	for _, tc := range []struct {
		whenBusy pbirefresh.WhenBusy
		want     pbirefresh.Status
	}{{pbirefresh.BusyWait, pbirefresh.Completed}, {pbirefresh.BusySkip, pbirefresh.Skipped}, {pbirefresh.BusyFail, pbirefresh.Error}} {
		t.Run(string(tc.whenBusy), func(t *testing.T) {
			h := setup(t, nil)
			foreign, err := h.emu.StartExternalRefresh(salesDS, "Scheduled", 20*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			p := jobPolicy(time.Hour)
			p.WhenBusy = tc.whenBusy
			res := h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), p, nil)
			if res.Outcome != tc.want {
				t.Fatalf("%+v", res)
			}
			if tc.whenBusy == pbirefresh.BusyFail && !errors.Is(res.Err, refresh.ErrBusy) {
				t.Errorf("error %v is not ErrBusy", res.Err)
			}
			if tc.whenBusy == pbirefresh.BusyWait {
				if !strings.Contains(res.Note, foreign) || h.clock.Now().Sub(t0) < 20*time.Minute {
					t.Errorf("did not wait for %s: %+v", foreign, res)
				}
				// Posted is the POST, after the wait; the run's duration
				// counts from it, not from the start of the wait.
				if res.Posted.Sub(res.Start) < 20*time.Minute || res.Ran() <= 0 || res.Ran() >= 20*time.Minute {
					t.Errorf("start %s, posted %s, ran %s: the wait is counted as the refresh's time", res.Start, res.Posted, res.Ran())
				}
			}
			// Nothing foreign was cancelled, ever.
			if n := len(h.requests("refresh.cancel")); n != 0 {
				t.Fatalf("%d DELETEs during a busy dataset", n)
			}
		})
	}
}

// TestBusyPastTheDeadline: waiting for another refresh that outlasts the
// run's timeout ends the run timed out, having started nothing.
func TestBusyPastTheDeadline(t *testing.T) {
	h := setup(t, nil)
	if _, err := h.emu.StartExternalRefresh(salesDS, "Scheduled", 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	p := jobPolicy(time.Hour)
	p.WhenBusy = pbirefresh.BusyWait
	res := h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), p, nil)
	if res.Outcome != pbirefresh.TimedOut || res.RefreshID != "" || !strings.Contains(res.Note, "nothing was started") {
		t.Fatalf("%+v", res)
	}
	if n := len(h.requests("refresh.post")); n != 1 {
		t.Fatalf("%d POSTs, want the one refused", n)
	}
}

func TestTimeout(t *testing.T) {
	long := func(sc *emulator.Scenario) {
		sc.Workspaces[0].Datasets[0].Behaviour.Duration = emulator.DurationDist{Min: emulator.Duration(5 * time.Hour), Max: emulator.Duration(5 * time.Hour)}
	}
	for _, tc := range []struct {
		name      string
		onTimeout pbirefresh.OnTimeout
		opts      refresh.Options
		deletes   int
		status    string
	}{
		{"cancel our enhanced refresh", pbirefresh.TimeoutCancel, enhanced(), 1, "Cancelled"},
		{"leave it", pbirefresh.TimeoutLeave, enhanced(), 0, "Unknown"},
		{"classic cannot be cancelled", pbirefresh.TimeoutCancel, refresh.Options{}, 0, "Unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, long)
			p := jobPolicy(30 * time.Minute)
			p.OnTimeout = tc.onTimeout
			res := h.client.Run(context.Background(), ds(salesWS, salesDS), tc.opts, p, nil)
			if res.Outcome != pbirefresh.TimedOut || res.Note == "" {
				t.Fatalf("%+v", res)
			}
			dels := h.requests("refresh.cancel")
			if len(dels) != tc.deletes {
				t.Fatalf("%d DELETEs, want %d", len(dels), tc.deletes)
			}
			for _, d := range dels {
				if d.RefreshID != res.RefreshID {
					t.Fatalf("cancelled %s, not our %s", d.RefreshID, res.RefreshID)
				}
			}
			entries, err := h.client.History(context.Background(), ds(salesWS, salesDS), 1, h.clock.Now().Add(time.Hour))
			if err != nil || entries[0].Status != tc.status {
				t.Fatalf("history after timeout: %+v %v", entries, err)
			}
		})
	}
}

func TestHints(t *testing.T) {
	ctx := context.Background()
	t.Run("not a workspace member", func(t *testing.T) {
		h := setup(t, nil)
		res := h.client.Run(ctx, ds(restrictedWS, payrollDS), enhanced(), jobPolicy(time.Hour), nil)
		var api *refresh.APIError
		if res.Outcome != pbirefresh.Error || !errors.As(res.Err, &api) || api.Status != 404 || !strings.Contains(res.Hint, "add the service principal to the workspace") {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("tenant switch off", func(t *testing.T) {
		h := setup(t, nil)
		h.emu.SetTenantSwitches(tenantID, false, false)
		res := h.client.Run(ctx, ds(salesWS, salesDS), enhanced(), jobPolicy(time.Hour), nil)
		if res.Outcome != pbirefresh.Error || !strings.Contains(res.Hint, "Allow service principals to use Power BI APIs") {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("wrong secret in the vault", func(t *testing.T) {
		h := setup(t, nil)
		h.emu.RotateSecret("pbi-secret", "the-secret-id-not-its-value")
		res := h.client.Run(ctx, ds(salesWS, salesDS), enhanced(), jobPolicy(time.Hour), nil)
		var ae *refresh.AuthError
		if res.Outcome != pbirefresh.Error || !errors.As(res.Err, &ae) || ae.Code != 7000215 || !strings.Contains(res.Hint, "not its Secret ID") {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("vault denies the daemon", func(t *testing.T) {
		h := setup(t, nil)
		h.emu.SetVaultAccess() // nobody holds Key Vault Secrets User
		res := h.client.Run(ctx, ds(salesWS, salesDS), enhanced(), jobPolicy(time.Hour), nil)
		if res.Outcome != pbirefresh.Error || !strings.Contains(res.Hint, "Key Vault Secrets User") {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("shared capacity quota", func(t *testing.T) {
		h := setup(t, nil)
		for i := 0; i < 8; i++ {
			if res := h.client.Run(ctx, ds(teamWS, teamDS), refresh.Options{}, jobPolicy(time.Hour), nil); res.Outcome != pbirefresh.Completed {
				t.Fatalf("refresh %d: %+v", i, res)
			}
		}
		res := h.client.Run(ctx, ds(teamWS, teamDS), refresh.Options{}, jobPolicy(time.Hour), nil)
		if res.Outcome != pbirefresh.QuotaExceeded || !errors.Is(res.Err, refresh.ErrQuota) || !strings.Contains(res.Hint, "8 refreshes a day") {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("enhanced on shared capacity", func(t *testing.T) {
		h := setup(t, nil)
		res := h.client.Run(ctx, ds(teamWS, teamDS), enhanced(), jobPolicy(time.Hour), nil)
		if res.Outcome != pbirefresh.Error || !strings.Contains(res.Hint, "Premium") {
			t.Fatalf("%+v", res)
		}
	})
}

func TestCertificateAndPasswordCredentials(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pbirefresh"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	file := filepath.Join(t.TempDir(), "app.pem")
	os.WriteFile(file, append(certPEM, keyPEM...), 0o600)

	h := setup(t, func(sc *emulator.Scenario) { sc.Apps[0].Certificates = []string{string(certPEM)} })
	auth := refresh.Authority{Host: h.emu.AuthorityHost(), Scope: pbiScope}
	cert := refresh.NewCertificateCredential("cert", tenantID, appID, file, auth, h.hc)
	cert.Clock = h.clock
	c := refresh.NewClient(h.emu.PowerBIURL(), h.hc, cert)
	c.Clock = h.clock
	if res := c.Run(context.Background(), ds(salesWS, salesDS), enhanced(), jobPolicy(time.Hour), nil); res.Outcome != pbirefresh.Completed {
		t.Fatalf("certificate: %+v", res)
	}
	missing := refresh.NewCertificateCredential("cert", tenantID, appID, file+".missing", auth, h.hc)
	if _, err := missing.Token(context.Background()); err == nil || !strings.Contains(hintOf(err), "certificate.file") {
		t.Fatalf("missing certificate: %v (hint %q)", err, hintOf(err))
	}

	// The legacy password flow, for alice (a Member of Sales).
	h.store.Getenv = func(k string) string {
		return map[string]string{"ALICE_PW": "demo-password", "BOB_PW": "demo-password"}[k]
	}
	user := refresh.NewPasswordCredential("alice", tenantID, "c0ffee00-0000-4000-8000-0000000000a4", "alice@contoso.onmicrosoft.com", "env:ALICE_PW", h.store, auth, h.hc)
	user.Clock, user.Logger = h.clock, slog.New(slog.NewTextHandler(h.logs, nil))
	c = refresh.NewClient(h.emu.PowerBIURL(), h.hc, user)
	c.Clock = h.clock
	if res := c.Run(context.Background(), ds(salesWS, salesDS), enhanced(), jobPolicy(time.Hour), nil); res.Outcome != pbirefresh.Completed {
		t.Fatalf("password flow: %+v", res)
	}
	if n := strings.Count(h.logs.String(), "the password flow is legacy"); n != 1 {
		t.Errorf("legacy warning logged %d times, want once", n)
	}
	mfa := refresh.NewPasswordCredential("bob", tenantID, "c0ffee00-0000-4000-8000-0000000000a4", "bob@contoso.onmicrosoft.com", "env:BOB_PW", h.store, auth, h.hc)
	var ae *refresh.AuthError
	if _, err := mfa.Token(context.Background()); !errors.As(err, &ae) || ae.Code != 50076 || !strings.Contains(ae.Hint(), "multi-factor") {
		t.Fatalf("MFA user: %v", err)
	}
}

func hintOf(err error) string {
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		return h.Hint()
	}
	return ""
}

// TestGateAskedBeforeEveryPost: a POST throttled with Retry-After is sent
// again only if the gate still holds after the wait (a replica that lost
// its lease meanwhile must not post); the same for datasets and dataflows.
func TestGateAskedBeforeEveryPost(t *testing.T) {
	for _, kind := range []string{"dataset", "dataflow"} {
		t.Run(kind, func(t *testing.T) {
			h := setup(t, nil)
			op := "refresh.post"
			if kind == "dataflow" {
				op = "dataflow.refresh"
			}
			h.emu.SetFaults(emulator.Fault{Endpoint: op, Status: 429, RetryAfter: 4, Count: 1})
			lapsed := errors.New("lease lapsed")
			calls := 0
			p := jobPolicy(time.Hour)
			p.Gate = func() error {
				calls++
				if len(h.requests(op)) > 0 {
					return lapsed // the lease ran out during the Retry-After
				}
				return nil
			}
			var res refresh.Result
			if kind == "dataflow" {
				res = h.client.RunDataflow(context.Background(), flow(salesWS, salesFlow), refresh.DataflowOptions{}, p, nil)
			} else {
				res = h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), p, nil)
			}
			posts := h.requests(op)
			if res.Outcome != pbirefresh.Error || !errors.Is(res.Err, lapsed) || len(posts) != 1 || posts[0].Status != 429 || calls != 2 {
				t.Fatalf("outcome %s (%v), %d POSTs, gate asked %d times", res.Outcome, res.Err, len(posts), calls)
			}
		})
	}
}

// A token service that fails for a moment while a refresh is followed
// (503, or a dropped connection) is retried with backoff like a Power BI
// 5xx; it does not end a run whose refresh is still going.
func TestTokenServiceBlipMidFollow(t *testing.T) {
	for _, f := range []emulator.Fault{
		{Endpoint: "token", Status: 503, Count: 2},
		{Endpoint: "token", Reset: true, Count: 1},
	} {
		t.Run(describe(f), func(t *testing.T) {
			h := setup(t, func(sc *emulator.Scenario) {
				sc.Workspaces[0].Datasets[0].Behaviour.Duration = emulator.DurationDist{Min: emulator.Duration(3 * time.Hour), Max: emulator.Duration(3 * time.Hour)}
			})
			// The first token is taken before the fault is set, so the
			// fault hits the renewal an hour into the refresh.
			if _, err := h.cred.Token(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := h.emu.SetFaults(f); err != nil {
				t.Fatal(err)
			}
			res := h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), jobPolicy(4*time.Hour), nil)
			if res.Outcome != pbirefresh.Completed {
				t.Fatalf("token service blip mid-follow: %+v", res)
			}
			failed := 0
			for _, r := range h.requests("token") {
				if r.Status >= 500 || r.Status == 0 {
					failed++
				}
			}
			if failed == 0 {
				t.Fatal("the fault never fired; the test proves nothing")
			}
			if !strings.Contains(h.logs.String(), "token service unavailable") {
				t.Error("no warning logged for the token service's failure")
			}
		})
	}
}

// A refresh another tool started shortly before a POST that got no clear
// answer is not taken for ours: it started before the POST on the
// service's clock. Taking it would report someone else's outcome as ours,
// and on_timeout: cancel would cancel their refresh.
func TestAmbiguousPostDoesNotAdoptAnEarlierRefresh(t *testing.T) {
	h := setup(t, func(sc *emulator.Scenario) {
		sc.Workspaces[0].Datasets[0].Behaviour.Duration = emulator.DurationDist{Min: emulator.Duration(10 * time.Minute), Max: emulator.Duration(10 * time.Minute)}
	})
	// Another tool, same app, posts an enhanced refresh.
	req, err := http.NewRequest("POST", h.emu.PowerBIURL()+"/v1.0/myorg/groups/"+salesWS+"/datasets/"+salesDS+"/refreshes", strings.NewReader(`{"type":"Full"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.pbiToken())
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	other := resp.Header.Get("x-ms-request-id")
	if resp.StatusCode != http.StatusAccepted || other == "" {
		t.Fatalf("the other tool's POST: %d, id %q", resp.StatusCode, other)
	}
	h.clock.Advance(30 * time.Second)
	if err := h.emu.SetFaults(emulator.Fault{Endpoint: "refresh.post", Status: 503, Count: 1}); err != nil {
		t.Fatal(err)
	}
	res := h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), jobPolicy(time.Hour), nil)
	if res.Outcome != pbirefresh.Completed {
		t.Fatalf("%+v", res)
	}
	if res.RefreshID == other {
		t.Fatalf("followed %s, the refresh another tool started before the POST", other)
	}
	ours := false
	for _, r := range h.requests("refresh.post") {
		ours = ours || r.RefreshID == res.RefreshID
	}
	if !ours {
		t.Fatalf("followed %s, which none of our POSTs started", res.RefreshID)
	}
	if n := len(h.requests("refresh.cancel")); n != 0 {
		t.Fatalf("%d cancels sent", n)
	}
}

// Throttled while following with a Retry-After that reaches past the
// deadline: the run times out (and on_timeout applies), as it would have
// had the polls been answered; it is not an error that leaves the refresh
// running behind the operator's back.
func TestThrottledPastTheDeadlineWhileFollowing(t *testing.T) {
	h := setup(t, func(sc *emulator.Scenario) {
		sc.Workspaces[0].Datasets[0].Behaviour.Duration = emulator.DurationDist{Min: emulator.Duration(40 * time.Minute), Max: emulator.Duration(40 * time.Minute)}
	})
	stormed := false
	progress := func(refresh.Refresh, refresh.Status, int) {
		if !stormed {
			stormed = true
			h.emu.Storm(2 * time.Hour)
		}
	}
	start := h.clock.Now()
	res := h.client.Run(context.Background(), ds(salesWS, salesDS), enhanced(), jobPolicy(30*time.Minute), progress)
	if !stormed {
		t.Fatal("never polled; the storm did not start")
	}
	if res.Outcome != pbirefresh.TimedOut || !strings.Contains(res.Note, "throttled until the deadline") {
		t.Fatalf("throttled past the deadline while following: %+v", res)
	}
	if end := h.clock.Now(); end.Before(start.Add(30 * time.Minute)) {
		t.Fatalf("timed out at %s, before the deadline %s", end, start.Add(30*time.Minute))
	}
}

// staleTokens hands out a token that has already expired until it is
// invalidated, then the real credential's.
type staleTokens struct {
	stale       string
	invalidated int
	real        refresh.TokenSource
}

func (s *staleTokens) Token(ctx context.Context) (string, error) {
	if s.invalidated == 0 {
		return s.stale, nil
	}
	return s.real.Token(ctx)
}

func (s *staleTokens) Invalidate() { s.invalidated++; s.real.Invalidate() }

// An expired token is renewed once, whether the service says so with 401
// or with 403 TokenExpired.
func TestExpiredTokenRenewed(t *testing.T) {
	for _, status := range []int{401, 403} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			h := setup(t, func(sc *emulator.Scenario) { sc.Settings.ExpiredTokenStatus = status })
			ts := &staleTokens{stale: h.pbiToken(), real: h.cred}
			h.clock.Advance(2 * time.Hour) // past the token's hour
			c := refresh.NewClient(h.emu.PowerBIURL(), h.hc, ts)
			c.Clock = h.clock
			res := c.Run(context.Background(), ds(salesWS, salesDS), enhanced(), jobPolicy(time.Hour), nil)
			if res.Outcome != pbirefresh.Completed {
				t.Fatalf("%+v", res)
			}
			refused := 0
			for _, r := range h.emu.Requests() {
				if strings.HasPrefix(r.Path, "/v1.0/") && r.Status == status {
					refused++
				}
			}
			if refused != 1 || ts.invalidated != 1 {
				t.Fatalf("%d requests refused with %d, %d renewals; want 1 and 1", refused, status, ts.invalidated)
			}
		})
	}
}
