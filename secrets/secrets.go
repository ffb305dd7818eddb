package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// Error is a failure to resolve a reference, with the next step for the
// operator. It never holds the secret value.
type Error struct {
	Ref  string // the reference, never the value
	Err  error
	hint string
}

func (e *Error) Error() string { return fmt.Sprintf("read secret %s: %v", e.Ref, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Hint names the fix.
func (e *Error) Hint() string { return e.hint }

// Store resolves and caches secret references. Create it with New; it is
// safe for concurrent use.
type Store struct {
	// TTL is how long a value is reused (default 1h).
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives "secret read" events, naming the reference only.
	Logger *slog.Logger
	// OnRead, if set, is called after every read from a source (not from
	// the cache), with its error.
	OnRead func(ref string, err error)
	// Getenv and ReadFile read env and file references (defaults
	// os.Getenv and os.ReadFile); tests replace them.
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)

	cred      azcore.TokenCredential
	kvOptions *azsecrets.ClientOptions

	mu      sync.Mutex
	cache   map[string]cached
	vaults  map[string]*azsecrets.Client
	flights map[string]*flight
	reads   map[string]int // reads per reference, for metrics and tests
}

type cached struct {
	value string
	at    time.Time
}

type flight struct {
	done  chan struct{}
	value string
	err   error
}

// KeyVaultOptions configure the Key Vault client.
type KeyVaultOptions struct {
	// Transport is the shared HTTP client (with the extra CA, if any).
	Transport policy.Transporter
	// DisableChallengeResourceVerification is for emulators only.
	DisableChallengeResourceVerification bool
}

// New returns a Store. cred reads Key Vault (nil: Key Vault references
// fail with a hint).
func New(cred azcore.TokenCredential, kv KeyVaultOptions) *Store {
	return &Store{
		cred: cred,
		kvOptions: &azsecrets.ClientOptions{
			ClientOptions:                        azcore.ClientOptions{Transport: kv.Transport},
			DisableChallengeResourceVerification: kv.DisableChallengeResourceVerification,
		},
		cache:   map[string]cached{},
		vaults:  map[string]*azsecrets.Client{},
		flights: map[string]*flight{},
		reads:   map[string]int{},
	}
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Secret returns the value a reference points at, from the cache while it
// is fresh. Concurrent callers of one reference share one read.
func (s *Store) Secret(ctx context.Context, ref string) (string, error) {
	ttl := s.TTL
	if ttl == 0 {
		ttl = time.Hour
	}
	// A read shared with another caller ends with that caller's context:
	// if it was cancelled, this caller (whose context is alive) reads
	// again, at most a few times.
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		if c, ok := s.cache[ref]; ok && s.now().Sub(c.at) < ttl {
			s.mu.Unlock()
			return c.value, nil
		}
		f, ok := s.flights[ref]
		if !ok {
			break // s.mu held: this caller reads
		}
		s.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		leaderGone := errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)
		if !leaderGone || ctx.Err() != nil || attempt >= 3 {
			return f.value, f.err
		}
	}
	f := &flight{done: make(chan struct{})}
	s.flights[ref] = f
	s.mu.Unlock()

	f.value, f.err = s.read(ctx, ref)
	if s.OnRead != nil {
		s.OnRead(ref, f.err)
	}
	s.mu.Lock()
	delete(s.flights, ref)
	s.reads[ref]++
	if f.err == nil {
		s.cache[ref] = cached{value: f.value, at: s.now()}
	}
	s.mu.Unlock()
	close(f.done)
	if s.Logger != nil && f.err == nil {
		s.Logger.Info("secret read", "ref", ref)
	}
	return f.value, f.err
}

// Forget drops a cached value so that the next Secret reads it again.
func (s *Store) Forget(ref string) {
	s.mu.Lock()
	delete(s.cache, ref)
	s.mu.Unlock()
}

// Reads returns how many times a reference was read from its source.
func (s *Store) Reads(ref string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[ref]
}

func (s *Store) read(ctx context.Context, ref string) (string, error) {
	switch {
	case strings.HasPrefix(ref, "env:"):
		return s.readEnv(ref, strings.TrimPrefix(ref, "env:"))
	case strings.HasPrefix(ref, "file:"):
		return s.readFile(ref, strings.TrimPrefix(ref, "file:"))
	case strings.HasPrefix(ref, "https://"):
		return s.readKeyVault(ctx, ref)
	}
	return "", &Error{Ref: ref, Err: errors.New("unknown kind of reference"), hint: "use keyvault, env or file in the configuration"}
}

func (s *Store) readEnv(ref, name string) (string, error) {
	get := s.Getenv
	if get == nil {
		get = os.Getenv
	}
	v := get(name)
	if v == "" {
		return "", &Error{Ref: ref, Err: fmt.Errorf("environment variable %s is empty or not set", name),
			hint: fmt.Sprintf("set %s in the daemon's environment (systemd: EnvironmentFile=, Kubernetes: a Secret as env), or reference Key Vault instead", name)}
	}
	return v, nil
}

func (s *Store) readFile(ref, path string) (string, error) {
	read := s.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	b, err := read(path)
	if err != nil {
		hint := fmt.Sprintf("create %s readable by the daemon's user", path)
		if strings.HasPrefix(path, "/run/credentials/") {
			hint = "add LoadCredential= for it to the systemd unit (see deploy/systemd) and restart the service"
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the reference already
		}
		return "", &Error{Ref: ref, Err: err, hint: hint}
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", &Error{Ref: ref, Err: errors.New("the file is empty"), hint: "write the secret value into the file"}
	}
	return v, nil
}

// readKeyVault reads https://<vault>/secrets/<name>[/<version>].
func (s *Store) readKeyVault(ctx context.Context, ref string) (string, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return "", &Error{Ref: ref, Err: err, hint: "write vault_url as https://<name>.vault.azure.net"}
	}
	// The vault URL may carry a path (the emulator's does not; Azure's
	// never does): everything before /secrets/.
	i := strings.LastIndex(u.Path, "/secrets/")
	if i < 0 {
		return "", &Error{Ref: ref, Err: errors.New("not a secret identifier"), hint: "use vault_url and secret_name"}
	}
	vaultURL := u.Scheme + "://" + u.Host + u.Path[:i]
	nameVersion := strings.Split(u.Path[i+len("/secrets/"):], "/")
	name, version := nameVersion[0], ""
	if len(nameVersion) > 1 {
		version = nameVersion[1]
	}
	if name == "" || len(nameVersion) > 2 {
		return "", &Error{Ref: ref, Err: errors.New("not a secret identifier"), hint: "use vault_url and secret_name"}
	}
	if s.cred == nil {
		return "", &Error{Ref: ref, Err: errors.New("no Azure credential to read Key Vault with"),
			hint: "run on a VM with a managed identity, set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, or az login"}
	}
	s.mu.Lock()
	client := s.vaults[vaultURL]
	if client == nil {
		client, err = azsecrets.NewClient(vaultURL, s.cred, s.kvOptions)
		if err != nil {
			s.mu.Unlock()
			return "", &Error{Ref: ref, Err: err, hint: "check vault_url"}
		}
		s.vaults[vaultURL] = client
	}
	s.mu.Unlock()
	resp, err := client.GetSecret(ctx, name, version, nil)
	if err != nil {
		return "", &Error{Ref: ref, Err: trimResponse(err), hint: keyVaultHint(err, name)}
	}
	if resp.Value == nil || *resp.Value == "" {
		return "", &Error{Ref: ref, Err: errors.New("the secret has no value"), hint: "set a value for the secret in the vault"}
	}
	return *resp.Value, nil
}

// trimResponse keeps the status and error code of an azcore error without
// its multi-line dump.
func trimResponse(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("Key Vault answered %d %s", re.StatusCode, re.ErrorCode)
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) {
		first, _, _ := strings.Cut(af.Error(), "\n")
		return fmt.Errorf("sign-in for Key Vault failed: %s", first)
	}
	return err
}

func keyVaultHint(err error, name string) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == 403 && re.ErrorCode == "Forbidden" && strings.Contains(err.Error(), "disabled"):
			return "enable the secret (or its current version) in the vault"
		case re.StatusCode == 403:
			return "grant the daemon's identity the \"Key Vault Secrets User\" role on the vault (or a get-secret access policy)"
		case re.StatusCode == 404:
			return fmt.Sprintf("create the secret %q in the vault, or correct secret_name", name)
		case re.StatusCode == 401:
			return "the vault refused the token: check that the vault is in the same tenant as the daemon's identity"
		}
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) {
		return "the daemon's identity could not sign in to read Key Vault: check the managed identity or the AZURE_* variables"
	}
	var cu *azidentity.AuthenticationRequiredError
	if errors.As(err, &cu) || strings.Contains(err.Error(), "DefaultAzureCredential") {
		return "give the daemon an Azure identity: a managed identity on the VM, workload identity on Kubernetes, AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, or az login"
	}
	return "check that the vault is reachable from this host (DNS, firewall, private endpoint)"
}
