package secrets

import (
	"context"
	"errors"
	"github.com/pbirefresh/pbirefresh"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

func TestEnvAndFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "pbi-secret")
	os.WriteFile(good, []byte("file-value\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
	s := New(nil, KeyVaultOptions{})
	s.Getenv = func(k string) string { return map[string]string{"PBI_SECRET": "env-value"}[k] }
	ctx := context.Background()
	for _, tc := range []struct {
		ref, want, errHas, hintHas string
	}{
		{ref: "env:PBI_SECRET", want: "env-value"},
		{ref: "file:" + good, want: "file-value"},
		{ref: "env:MISSING", errHas: "MISSING is empty or not set", hintHas: "set MISSING"},
		{ref: "file:" + filepath.Join(dir, "nope"), errHas: "no such file", hintHas: "create"},
		{ref: "file:/run/credentials/pbirefresh.service/x", errHas: "no such file", hintHas: "LoadCredential="},
		{ref: "file:" + filepath.Join(dir, "empty"), errHas: "empty", hintHas: "write the secret"},
		{ref: "https://contoso.vault.azure.net/secrets/x", errHas: "no Azure credential", hintHas: "managed identity"},
		{ref: "https://contoso.vault.azure.net/keys/x", errHas: "not a secret identifier"},
		{ref: "ldap:x", errHas: "unknown kind"},
	} {
		v, err := s.Secret(ctx, tc.ref)
		if tc.errHas == "" {
			if err != nil || v != tc.want {
				t.Errorf("%s: %q %v", tc.ref, v, err)
			}
			continue
		}
		var se *Error
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.errHas) || !strings.Contains(se.Hint(), tc.hintHas) {
			t.Errorf("%s: error %v, hint %q", tc.ref, err, hint(err))
		}
	}
}

func hint(err error) string {
	var se *Error
	if errors.As(err, &se) {
		return se.Hint()
	}
	return ""
}

func TestCacheTTLAndForget(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var reads atomic.Int32
	s := New(nil, KeyVaultOptions{})
	s.TTL = time.Hour
	s.Now = func() time.Time { return now }
	s.Getenv = func(string) string { reads.Add(1); return "v" + string(rune('0'+reads.Load())) }
	ctx := context.Background()
	v1, _ := s.Secret(ctx, "env:X")
	v2, _ := s.Secret(ctx, "env:X")
	now = now.Add(59 * time.Minute)
	v3, _ := s.Secret(ctx, "env:X")
	if v1 != "v1" || v2 != "v1" || v3 != "v1" || reads.Load() != 1 {
		t.Fatalf("cached reads: %s %s %s (%d reads)", v1, v2, v3, reads.Load())
	}
	now = now.Add(2 * time.Minute)
	if v, _ := s.Secret(ctx, "env:X"); v != "v2" {
		t.Fatalf("after the TTL: %s", v)
	}
	s.Forget("env:X")
	if v, _ := s.Secret(ctx, "env:X"); v != "v3" || s.Reads("env:X") != 3 {
		t.Fatalf("after Forget: %s (%d reads)", v, s.Reads("env:X"))
	}
}

func TestConcurrentReadersShareOneRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var reads atomic.Int32
		release := make(chan struct{})
		s := New(nil, KeyVaultOptions{})
		s.ReadFile = func(string) ([]byte, error) { reads.Add(1); <-release; return []byte("v"), nil }
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if v, err := s.Secret(context.Background(), "file:/x"); v != "v" || err != nil {
					t.Errorf("%q %v", v, err)
				}
			}()
		}
		synctest.Wait() // one reader in ReadFile, nineteen waiting for it
		close(release)
		wg.Wait()
		if n := reads.Load(); n != 1 {
			t.Fatalf("%d reads for 20 concurrent callers", n)
		}
	})
}

func TestErrorsNeverHoldTheValue(t *testing.T) {
	var logs strings.Builder
	s := New(nil, KeyVaultOptions{})
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	// The value is at hand when the error is made: a read that returned
	// bytes and an error.
	s.ReadFile = func(string) ([]byte, error) { return []byte("hunter2"), errors.New("permission denied") }
	_, err := s.Secret(context.Background(), "file:/etc/secret")
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(pbirefresh.Hint(err), "hunter2") {
		t.Fatalf("error %v (hint %q)", err, pbirefresh.Hint(err))
	}
	// A value that reads fine never reaches the log.
	s.Getenv = func(string) string { return "hunter2" }
	if v, err := s.Secret(context.Background(), "env:PBI_SECRET"); v != "hunter2" || err != nil {
		t.Fatalf("%q %v", v, err)
	}
	if strings.Contains(logs.String(), "hunter2") || !strings.Contains(logs.String(), "env:PBI_SECRET") {
		t.Fatalf("log: %s", logs.String())
	}
}

// vaultTransport answers like Key Vault: a 401 challenge without a token,
// the secret with one.
type vaultTransport struct{}

func (vaultTransport) Do(req *http.Request) (*http.Response, error) {
	h := http.Header{"Content-Type": {"application/json"}}
	if req.Header.Get("Authorization") == "" {
		h.Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/tenant", resource="https://vault.azure.net"`)
		return &http.Response{StatusCode: 401, Header: h, Body: io.NopCloser(strings.NewReader(`{}`)), Request: req}, nil
	}
	body := `{"value":"kv-value","id":"https://contoso.vault.azure.net/secrets/x/1"}`
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
}

// blockingCredential's first GetToken blocks until its caller's context
// ends; later ones answer at once.
type blockingCredential struct {
	calls   atomic.Int32
	entered chan struct{}
}

func (b *blockingCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if b.calls.Add(1) == 1 {
		close(b.entered)
		<-ctx.Done()
		return azcore.AccessToken{}, ctx.Err()
	}
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// A caller waiting on another's read of the same reference is not failed
// by that caller's cancellation: it reads again with its own context.
func TestSharedReadSurvivesTheFirstCallersCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cred := &blockingCredential{entered: make(chan struct{})}
		s := New(cred, KeyVaultOptions{Transport: vaultTransport{}, DisableChallengeResourceVerification: true})
		ref := "https://contoso.vault.azure.net/secrets/x"
		first, cancel := context.WithCancel(context.Background())
		firstErr := make(chan error, 1)
		go func() { _, err := s.Secret(first, ref); firstErr <- err }()
		<-cred.entered
		type got struct {
			v   string
			err error
		}
		second := make(chan got, 1)
		go func() { v, err := s.Secret(context.Background(), ref); second <- got{v, err} }()
		synctest.Wait() // the second caller waits on the first one's read
		cancel()
		if err := <-firstErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("first caller: %v, want its own cancellation", err)
		}
		if g := <-second; g.err != nil || g.v != "kv-value" {
			t.Fatalf("second caller, not cancelled: %q %v", g.v, g.err)
		}
	})
}
