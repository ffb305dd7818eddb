package refresh

import (
	"context"
	"errors"
	"fmt"
	"github.com/pbirefresh/pbirefresh"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

// TokenSource gives the Power BI client a bearer token. Invalidate makes
// the next Token fetch a new one (after a 401).
type TokenSource interface {
	Token(ctx context.Context) (string, error)
	Invalidate()
}

// SecretSource resolves a secret reference (see package secrets). Forget
// drops a cached value so that the next Secret reads it again.
type SecretSource interface {
	Secret(ctx context.Context, ref string) (string, error)
	Forget(ref string)
}

// Authority says where and for what tokens are requested.
type Authority struct {
	Host              string // e.g. https://login.microsoftonline.com
	Scope             string // e.g. https://analysis.windows.net/powerbi/api/.default
	InstanceDiscovery bool   // on for Microsoft hosts only
}

// renewMargin: a token is renewed when less than this is left, enough for
// one more request to complete with it.
const renewMargin = 2 * time.Minute

// Credential is a TokenSource backed by MSAL Go. Create it with
// NewSecretCredential, NewCertificateCredential or NewPasswordCredential.
type Credential struct {
	// Clock measures token lifetimes (default SystemClock).
	Clock Clock
	// Logger receives token events; tokens are never logged.
	Logger *slog.Logger
	// OnToken, if set, is called for every token the service issued (not
	// for cached ones); OnTokenError for every failure to get one.
	OnToken      func()
	OnTokenError func(err error)

	name      string
	tenant    string
	clientID  string
	authority Authority
	http      *http.Client
	secrets   SecretSource
	secretRef string // client secret, or the user's password
	certFile  string
	username  string

	mu       sync.Mutex
	conf     *confidential.Client
	pub      *public.Client
	token    string
	expires  time.Time // on Clock
	stale    string    // a token judged expired or refused; MSAL may still hold it
	acquired int       // distinct tokens received
	warned   bool
}

func newCredential(name, tenant, clientID string, a Authority, hc *http.Client) *Credential {
	return &Credential{name: name, tenant: tenant, clientID: clientID, authority: a, http: hc}
}

// NewSecretCredential signs in as a service principal with the client
// secret that secretRef points at.
func NewSecretCredential(name, tenant, clientID, secretRef string, secrets SecretSource, a Authority, hc *http.Client) *Credential {
	c := newCredential(name, tenant, clientID, a, hc)
	c.secrets, c.secretRef = secrets, secretRef
	return c
}

// NewCertificateCredential signs in with a certificate and RSA key from a
// PEM file, read when the first token is needed.
func NewCertificateCredential(name, tenant, clientID, certFile string, a Authority, hc *http.Client) *Credential {
	c := newCredential(name, tenant, clientID, a, hc)
	c.certFile = certFile
	return c
}

// NewPasswordCredential uses the legacy username/password (ROPC) flow. It
// fails for users under MFA; a warning says so once.
func NewPasswordCredential(name, tenant, clientID, username, passwordRef string, secrets SecretSource, a Authority, hc *http.Client) *Credential {
	c := newCredential(name, tenant, clientID, a, hc)
	c.username, c.secrets, c.secretRef = username, secrets, passwordRef
	return c
}

// LogValue keeps tokens and secrets out of logs.
func (c *Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", c.name), slog.String("client_id", c.clientID), slog.String("token", "REDACTED"))
}

// Tokens returns how many distinct tokens were obtained.
func (c *Credential) Tokens() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acquired
}

func (c *Credential) clock() Clock {
	if c.Clock == nil {
		return SystemClock{}
	}
	return c.Clock
}

// Invalidate forgets the current token.
func (c *Credential) Invalidate() {
	c.mu.Lock()
	if c.token != "" {
		c.stale = c.token
	}
	c.token = ""
	c.mu.Unlock()
}

// Token returns a token with more than renewMargin left on the clock.
func (c *Credential) Token(ctx context.Context) (string, error) {
	tok, err := c.token0(ctx)
	if err != nil && c.OnTokenError != nil && ctx.Err() == nil {
		c.OnTokenError(err)
	}
	return tok, err
}

func (c *Credential) token0(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock().Now()
	if c.token != "" && now.Before(c.expires.Add(-renewMargin)) {
		return c.token, nil
	}
	if c.token != "" {
		c.stale = c.token
		c.token = ""
	}
	refetched := false
	for attempt := 0; attempt < 3; attempt++ {
		tok, expiresOn, err := c.acquire(ctx)
		var se *sourceError
		if errors.As(err, &se) {
			return "", se.err // the secret source's error carries its own hint
		}
		if err != nil {
			code := aadsts(err)
			// A rotated or expired secret: read it again once, then rebuild
			// the client, whose credential is fixed at creation.
			if (code == 7000215 || code == 7000222) && c.secrets != nil && !refetched {
				refetched = true
				c.secrets.Forget(c.secretRef)
				c.conf, c.pub = nil, nil
				if c.Logger != nil {
					c.Logger.Warn("token service refused the secret; reading it again", "credential", c.name, "aadsts", code)
				}
				continue
			}
			return "", &AuthError{Credential: c.name, Code: code, Transient: transient(err), Err: trimAuthError(err)}
		}
		if tok == c.stale {
			// MSAL's cache (which runs on the wall clock) still holds a token
			// this clock or the service calls expired: start a fresh client.
			c.conf, c.pub = nil, nil
			c.stale = ""
			continue
		}
		c.token = tok
		c.expires = c.clock().Now().Add(time.Until(expiresOn))
		c.acquired++
		if c.OnToken != nil {
			c.OnToken()
		}
		if c.Logger != nil {
			c.Logger.Debug("token acquired", "credential", c.name, "expires", c.expires)
		}
		return tok, nil
	}
	return "", &AuthError{Credential: c.name, Err: errors.New("the token service kept returning an expired token")}
}

// transient reports whether MSAL's error says the token service could not
// be reached or answered 5xx or 429, rather than refusing the credential.
func transient(err error) bool {
	var ce msalerrors.CallErr
	if errors.As(err, &ce) {
		return ce.Resp != nil && (ce.Resp.StatusCode >= 500 || ce.Resp.StatusCode == http.StatusTooManyRequests)
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne)
}

// trimAuthError keeps the first line of MSAL's error (the whole body
// follows it) plus the AADSTS description.
func trimAuthError(err error) error {
	s := err.Error()
	if i := strings.Index(s, "AADSTS"); i >= 0 {
		desc := s[i:]
		if j := strings.Index(desc, `\r\n`); j > 0 {
			desc = desc[:j]
		}
		if j := strings.Index(desc, "\r\n"); j > 0 {
			desc = desc[:j]
		}
		if j := strings.Index(desc, `","`); j > 0 {
			desc = desc[:j]
		}
		return errors.New(desc)
	}
	first, _, _ := strings.Cut(s, "\n")
	return errors.New(first)
}

func (c *Credential) authorityURL() string {
	return strings.TrimSuffix(c.authority.Host, "/") + "/" + c.tenant
}

// acquire gets a token from MSAL, building the client on first use.
func (c *Credential) acquire(ctx context.Context) (string, time.Time, error) {
	scopes := []string{c.authority.Scope}
	if c.username != "" {
		if c.pub == nil {
			p, err := public.New(c.clientID, public.WithAuthority(c.authorityURL()),
				public.WithInstanceDiscovery(c.authority.InstanceDiscovery), public.WithHTTPClient(c.http))
			if err != nil {
				return "", time.Time{}, err
			}
			c.pub = &p
			if !c.warned && c.Logger != nil {
				c.warned = true
				c.Logger.Warn("the password flow is legacy and fails for accounts under multi-factor authentication; prefer a service principal", "credential", c.name)
			}
		}
		if accts, err := c.pub.Accounts(ctx); err == nil && len(accts) > 0 {
			if res, err := c.pub.AcquireTokenSilent(ctx, scopes, public.WithSilentAccount(accts[0])); err == nil {
				return res.AccessToken, res.ExpiresOn, nil
			}
		}
		pw, err := c.secrets.Secret(ctx, c.secretRef)
		if err != nil {
			return "", time.Time{}, &sourceError{err}
		}
		res, err := c.pub.AcquireTokenByUsernamePassword(ctx, scopes, c.username, pw)
		if err != nil {
			return "", time.Time{}, err
		}
		return res.AccessToken, res.ExpiresOn, nil
	}
	if c.conf == nil {
		cred, err := c.clientCredential(ctx)
		if err != nil {
			return "", time.Time{}, err
		}
		cl, err := confidential.New(c.authorityURL(), c.clientID, cred,
			confidential.WithInstanceDiscovery(c.authority.InstanceDiscovery), confidential.WithHTTPClient(c.http))
		if err != nil {
			return "", time.Time{}, err
		}
		c.conf = &cl
	}
	res, err := c.conf.AcquireTokenByCredential(ctx, scopes)
	if err != nil {
		return "", time.Time{}, err
	}
	return res.AccessToken, res.ExpiresOn, nil
}

func (c *Credential) clientCredential(ctx context.Context) (confidential.Credential, error) {
	if c.certFile != "" {
		b, err := os.ReadFile(c.certFile)
		if err != nil {
			return confidential.Credential{}, &sourceError{pbirefresh.WithHint(fmt.Errorf("read certificate: %w", err), "point certificate.file at a PEM file readable by the daemon")}
		}
		certs, key, err := confidential.CertFromPEM(b, "")
		if err != nil {
			return confidential.Credential{}, &sourceError{pbirefresh.WithHint(fmt.Errorf("parse certificate %s: %w", c.certFile, err), "the file must hold the certificate and its unencrypted RSA private key in PEM")}
		}
		return confidential.NewCredFromCert(certs, key)
	}
	secret, err := c.secrets.Secret(ctx, c.secretRef)
	if err != nil {
		return confidential.Credential{}, &sourceError{err}
	}
	return confidential.NewCredFromSecret(secret)
}

// sourceError marks a failure to read the credential's own material (the
// secret, the password, the certificate), which is not the token service's.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }
