package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/refresh"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/postgres"
	"github.com/pbirefresh/pbirefresh/store/sqlite"
)

var (
	_ stateStore = (*sqlite.Store)(nil)
	_ stateStore = (*postgres.Store)(nil)
)

// stateHooks are what the daemon learns from a shared state database.
type stateHooks struct {
	logger              *slog.Logger
	onLeaseLost, onJoin func()
}

// openState opens the configured state database for the daemon: the
// SQLite file, taken by this process, or PostgreSQL, joined as a replica.
func openState(ctx context.Context, cfg *configs.Config, e *env, host string, h stateHooks) (stateStore, error) {
	pg := cfg.State.Postgres
	if pg == nil {
		return sqlite.Open(ctx, cfg.State.Path, sqlite.Options{Daemon: &sqlite.Holder{Host: host, PID: os.Getpid(), Version: versionString()}})
	}
	return postgres.Open(ctx, pg.URL, postgres.Options{
		Replica:  &postgres.Replica{Host: host, PID: os.Getpid(), Version: versionString()},
		LeaseTTL: pg.LeaseTTL.D(), Password: e.postgresPassword(cfg), Logger: h.logger,
		OnLeaseLost: h.onLeaseLost, OnRejoin: h.onJoin,
	})
}

// readState opens the state database read-only (history, state copy's
// source): nothing is written, nothing migrated, no lock taken.
type readState interface {
	Runs(ctx context.Context, q store.Query) ([]store.Run, error)
	Close() error
}

func openReadOnly(ctx context.Context, cfg *configs.Config, e *env) (readState, error) {
	if pg := cfg.State.Postgres; pg != nil {
		return postgres.Open(ctx, pg.URL, postgres.Options{ReadOnly: true, Password: e.postgresPassword(cfg)})
	}
	return sqlite.Open(ctx, cfg.State.Path, sqlite.Options{ReadOnly: true})
}

// postgresPassword gives each new connection its password: the secret
// reference's value (cached by the secret store), or an Entra ID token
// for Azure Database for PostgreSQL (cached and renewed by azidentity).
func (e *env) postgresPassword(cfg *configs.Config) func(context.Context) (string, error) {
	pg := cfg.State.Postgres
	switch {
	case pg == nil || e == nil:
		return nil
	case pg.EntraToken:
		scope := cfg.Endpoints.PostgresScope
		return func(ctx context.Context) (string, error) {
			if e.azure == nil {
				return "", fmt.Errorf("no Azure identity for an Entra ID token")
			}
			tok, err := e.azure.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
			if err != nil {
				return "", pbirefresh.WithHint(fmt.Errorf("get an Entra ID token for the state database: %w", err),
					"give the daemon's identity (managed identity, workload identity, AZURE_* or Azure CLI) a PostgreSQL role: see README \"High availability\"")
			}
			return tok.Token, nil
		}
	case pg.Password != nil:
		ref := e.ref(pg.Password)
		return func(ctx context.Context) (string, error) { return e.secrets.Secret(ctx, ref) }
	}
	return nil
}

// stateCmd is `pbirefresh state copy --config FILE --from SQLITE`: copy an
// SQLite history into the configured PostgreSQL state, idempotently.
type stateCmd struct {
	stdout, stderr io.Writer
	logger         *slog.Logger
	action         string
	config, from   string
	env            *env
}

func (c *stateCmd) ParseFlags(args []string) error {
	if len(args) == 0 || args[0] != "copy" {
		return usageError("state: the only action is copy: pbirefresh state copy --config FILE --from STATE.db")
	}
	c.action = args[0]
	fs := flag.NewFlagSet("state copy", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.config, "config", "", "configuration file (its state.postgres is the destination)")
	fs.StringVar(&c.from, "from", "", "the SQLite state file to copy from")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if c.from == "" {
		return usageError("state copy: --from is required")
	}
	return nil
}

func (c *stateCmd) Run(ctx context.Context) error {
	cfg, err := loadConfigNoHTTP(c.config)
	if err != nil {
		return err
	}
	if cfg.State.Postgres == nil {
		return usageError("state copy writes into state.postgres, which %s does not set", c.config)
	}
	src, err := sqlite.Open(ctx, c.from, sqlite.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer src.Close()
	if c.env, err = newEnv(cfg, c.logger, refresh.SystemClock{}); err != nil {
		return err
	}
	dst, err := postgres.Open(ctx, cfg.State.Postgres.URL, postgres.Options{Password: c.env.postgresPassword(cfg)})
	if err != nil {
		return err
	}
	defer dst.Close()
	read, added := 0, 0
	for q := (store.Query{}); ; {
		page, err := src.Runs(ctx, q)
		if err != nil {
			return err
		}
		n, err := dst.Copy(ctx, page)
		if err != nil {
			return fmt.Errorf("copy runs: %w", err)
		}
		read, added = read+len(page), added+n
		if len(page) < q.PageSize() {
			break
		}
		q.After = store.CursorOf(page[len(page)-1])
	}
	fmt.Fprintf(c.stdout, "%d runs read from %s, %d added to the PostgreSQL state (%d were there already)\n", read, c.from, added, read-added)
	return nil
}

func (c *stateCmd) Close() error {
	if c.env != nil {
		c.env.Close()
	}
	return nil
}
