package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/emulator"
	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/secrets"
)

// Both sides meet here.
var (
	_ refresh.SecretSource = (*secrets.Store)(nil)
	_ refresh.TokenSource  = (*refresh.Credential)(nil)
)

// env holds what every command that talks to the cloud needs, built from
// a configuration.
type env struct {
	cfg     *configs.Config
	logger  *slog.Logger
	clock   refresh.Clock
	http    *http.Client
	emu     *emulator.Emulator // cloud: emulator only
	secrets *secrets.Store
	azure   azcore.TokenCredential // the daemon's own identity; nil when unused
	creds   map[string]*refresh.Credential
	defs    map[string]configs.Credential // what each of creds was built from
}

// loadConfig wraps configuration errors with exit code 2.
func loadConfig(path string) (*configs.Config, error) {
	return loadConfigWith(path, configs.Options{})
}

// loadConfigNoHTTP is loadConfig for a command that serves no HTTP: the
// token file is not read.
func loadConfigNoHTTP(path string) (*configs.Config, error) {
	return loadConfigWith(path, configs.Options{NoHTTP: true})
}

func loadConfigWith(path string, o configs.Options) (*configs.Config, error) {
	if path == "" {
		return nil, usageError("--config is required")
	}
	cfg, err := configs.LoadWith(path, o)
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	return cfg, nil
}

// newEnv starts the embedded emulator if the config asks for it, then
// builds the shared HTTP client, the secret store and the credentials.
func newEnv(cfg *configs.Config, logger *slog.Logger, clock refresh.Clock) (*env, error) {
	e := &env{cfg: cfg, logger: logger, clock: clock, creds: map[string]*refresh.Credential{}}
	var extra []byte
	if cfg.Cloud == "emulator" {
		var sc *emulator.Scenario
		if cfg.Emulator.Scenario != "" {
			var err error
			if sc, err = emulator.LoadScenario(cfg.Emulator.Scenario); err != nil {
				return nil, &exitError{exitUsage, err}
			}
		}
		e.emu = emulator.New(sc)
		e.emu.Logger = logger.With("component", "emulator")
		if err := e.emu.Start(); err != nil {
			return nil, fmt.Errorf("start the embedded emulator: %w", err)
		}
		cfg.Endpoints.AuthorityHost = e.emu.AuthorityHost()
		cfg.Endpoints.PowerBIAPI = e.emu.PowerBIURL()
		if cfg.Endpoints.PowerBIScope == "" {
			cfg.Endpoints.PowerBIScope = configs.Clouds["public"].PowerBIScope
		}
		extra = e.emu.CAPEM()
		logger.Info("embedded emulator started", "url", e.emu.URL())
	}
	hc, err := newHTTPClient(cfg.TLS.CAFile, extra)
	if err != nil {
		e.Close()
		return nil, err
	}
	e.http = hc

	kvCred, err := e.azureCredential()
	if err != nil {
		e.Close()
		return nil, err
	}
	e.azure = kvCred
	e.secrets = secrets.New(kvCred, secrets.KeyVaultOptions{
		Transport:                            hc,
		DisableChallengeResourceVerification: !*cfg.Endpoints.KeyVaultChallengeVerification,
	})
	e.secrets.TTL = cfg.Secrets.CacheTTL.D()
	e.secrets.Now = clock.Now
	e.secrets.Logger = logger

	e.setCredentials(cfg)
	return e, nil
}

// setCredentials builds a token source per credential of cfg. A reload
// keeps the source of a credential whose definition did not change, with
// its token: a reload costs no new token.
func (e *env) setCredentials(cfg *configs.Config) {
	creds := map[string]*refresh.Credential{}
	defs := map[string]configs.Credential{}
	hc := e.http
	auth := refresh.Authority{Host: cfg.Endpoints.AuthorityHost, Scope: cfg.Endpoints.PowerBIScope, InstanceDiscovery: cfg.Endpoints.InstanceDiscovery}
	for name, cr := range cfg.Credentials {
		defs[name] = *cr
		if old, ok := e.creds[name]; ok && reflect.DeepEqual(e.defs[name], *cr) {
			creds[name] = old
			continue
		}
		var c *refresh.Credential
		switch {
		case cr.ClientSecret != nil:
			c = refresh.NewSecretCredential(name, cr.TenantID, cr.ClientID, e.ref(cr.ClientSecret), e.secrets, auth, hc)
		case cr.Certificate != nil:
			c = refresh.NewCertificateCredential(name, cr.TenantID, cr.ClientID, cr.Certificate.File, auth, hc)
		default:
			c = refresh.NewPasswordCredential(name, cr.TenantID, cr.ClientID, cr.Username, e.ref(cr.Password), e.secrets, auth, hc)
		}
		c.Clock, c.Logger = e.clock, e.logger
		creds[name] = c
	}
	e.cfg, e.creds, e.defs = cfg, creds, defs
}

// ref renders a secret reference; with cloud: emulator a Key Vault
// reference without vault_url means the embedded vault.
func (e *env) ref(s *configs.SecretRef) string {
	if s.EmulatorVault() && e.emu != nil {
		c := *s.KeyVault
		c.VaultURL = e.emu.VaultURL()
		return (&configs.SecretRef{KeyVault: &c}).Ref()
	}
	return s.Ref()
}

// azureCredential is the daemon's own Azure identity, for Key Vault and
// for an Entra ID token as the state database's password: the Azure
// default chain (managed identity, workload identity, AZURE_* variables,
// Azure CLI) on the configured cloud, or, in the embedded emulator, its
// vault reader. nil when the config needs neither.
func (e *env) azureCredential() (azcore.TokenCredential, error) {
	if usesAzure(e.cfg) == "" {
		return nil, nil
	}
	opts := azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: e.cfg.Endpoints.AuthorityHost + "/"}, Transport: e.http}
	if e.emu != nil {
		sc := e.emu.Scenario()
		if sc.Vault != nil {
			for _, a := range sc.Apps {
				for _, p := range sc.Vault.Access {
					if strings.EqualFold(p, a.ClientID) && len(a.Secrets) > 0 {
						return azidentity.NewClientSecretCredential(a.Tenant, a.ClientID, a.Secrets[0].Value,
							&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
					}
				}
			}
		}
		return nil, errors.New("the emulator scenario has no app with access to its vault")
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions: opts, DisableInstanceDiscovery: !e.cfg.Endpoints.InstanceDiscovery,
	})
	if err != nil {
		return nil, fmt.Errorf("set up the Azure identity (Key Vault, the state database's token): %w", err)
	}
	return cred, nil
}

// usesAzure names what in cfg needs the daemon's own Azure identity (a
// Key Vault reference, the state database's Entra token), or "".
func usesAzure(cfg *configs.Config) string {
	names := slices.Sorted(maps.Keys(cfg.Credentials))
	for _, name := range names {
		cr := cfg.Credentials[name]
		for _, ref := range []*configs.SecretRef{cr.ClientSecret, cr.Password} {
			if ref != nil && ref.KeyVault != nil {
				return "credential " + name + "'s secret in Key Vault"
			}
		}
	}
	for _, n := range cfg.Notify {
		if n.URL != nil && n.URL.KeyVault != nil {
			return "notify target " + n.Name + "'s URL in Key Vault"
		}
	}
	if pg := cfg.State.Postgres; pg != nil {
		if pg.EntraToken {
			return "state.postgres.entra_token"
		}
		if pg.Password != nil && pg.Password.KeyVault != nil {
			return "state.postgres's password in Key Vault"
		}
	}
	return ""
}

// newHTTPClient is the one client for MSAL, azidentity, azsecrets and Power
// BI: system roots plus the extra CA file, TLS 1.2 or later, timeouts.
func newHTTPClient(caFile string, extraPEM []byte) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, &exitError{exitUsage, fmt.Errorf("read tls.ca_file: %w", err)}
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &exitError{exitUsage, fmt.Errorf("tls.ca_file %s holds no PEM certificate", caFile)}
		}
	}
	if extraPEM != nil && !pool.AppendCertsFromPEM(extraPEM) { // the embedded emulator's CA
		return nil, errors.New("the embedded emulator's CA did not parse")
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, nil
}

func (e *env) Close() {
	if e.emu != nil {
		e.emu.Close()
	}
	if e.http != nil {
		e.http.CloseIdleConnections()
	}
}

// client returns a Power BI client for a credential.
func (e *env) client(credential string) *refresh.Client {
	c := refresh.NewClient(e.cfg.Endpoints.PowerBIAPI, e.http, e.creds[credential])
	c.Clock, c.Logger = e.clock, e.logger
	return c
}

// jobRequest turns a configured job into the refresh request and policy.
func jobRequest(j *configs.Job) (refresh.Dataset, refresh.Options, refresh.Policy) {
	ds := refresh.Dataset{WorkspaceID: j.WorkspaceID, DatasetID: j.DatasetID}
	opts := refresh.Options{NotifyOption: j.NotifyOption}
	if r := j.Refresh; r != nil {
		opts = refresh.Options{
			Enhanced: true, Type: configs.ServiceType(r.Type), CommitMode: configs.ServiceCommitMode(r.CommitMode),
			MaxParallelism: r.MaxParallelism, RetryCount: r.RetryCount, ApplyRefreshPolicy: r.ApplyRefreshPolicy, Timeout: r.Timeout,
		}
		if r.EffectiveDate != "" {
			opts.EffectiveDate = r.EffectiveDate + "T00:00:00Z"
		}
		for _, o := range r.Objects {
			opts.Objects = append(opts.Objects, refresh.Object{Table: o.Table, Partition: o.Partition})
		}
	}
	s := j.Effective
	pol := refresh.Policy{Timeout: s.Timeout.D(), OnTimeout: s.OnTimeout, WhenBusy: s.WhenBusy,
		MinInterval: s.Poll.MinInterval.D(), MaxInterval: s.Poll.MaxInterval.D(), HistoryGrace: s.HistoryGrace.D()}
	return ds, opts, pol
}
