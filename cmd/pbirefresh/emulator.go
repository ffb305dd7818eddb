package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pbirefresh/pbirefresh/emulator"
)

// emulatorCmd is `pbirefresh emulator`: the emulator as a process.
type emulatorCmd struct {
	stdout io.Writer
	logger *slog.Logger

	listen    string
	scenario  string
	caOut     string
	configOut string
	fakeClock bool
	emu       *emulator.Emulator
}

func (c *emulatorCmd) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(c.stdout)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8443", "listen address (loopback)")
	fs.StringVar(&c.scenario, "scenario", "", "scenario YAML file (default: the built-in demo scenario)")
	fs.StringVar(&c.caOut, "ca-out", "", "write the emulator's CA certificate (PEM) to this file")
	fs.StringVar(&c.configOut, "config-out", "", "write a pbirefresh config that points at this emulator (needs --ca-out or writes the CA beside it)")
	fs.BoolVar(&c.fakeClock, "fake-clock", false, "start a fake clock that only POST /_emulator/clock moves")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return nil
}

func (c *emulatorCmd) Run(ctx context.Context) error {
	var sc *emulator.Scenario
	if c.scenario != "" {
		var err error
		if sc, err = emulator.LoadScenario(c.scenario); err != nil {
			return &exitError{exitUsage, err}
		}
	}
	c.emu = emulator.New(sc)
	c.emu.Addr = c.listen
	c.emu.Logger = c.logger
	if c.fakeClock {
		c.emu.Clock = emulator.NewFakeClock(time.Now().UTC().Truncate(time.Second))
	}
	if err := c.emu.Start(); err != nil {
		return err
	}
	if c.configOut != "" && c.caOut == "" {
		c.caOut = strings.TrimSuffix(c.configOut, filepath.Ext(c.configOut)) + "-ca.pem"
	}
	if c.caOut != "" {
		if err := os.WriteFile(c.caOut, c.emu.CAPEM(), 0o644); err != nil {
			return fmt.Errorf("write CA certificate: %w", err)
		}
	}
	if c.configOut != "" {
		ca, _ := filepath.Abs(c.caOut)
		text, envHint := emulatorConfig(c.emu, ca)
		if err := os.WriteFile(c.configOut, []byte(text), 0o644); err != nil {
			return fmt.Errorf("write config: %w", err)
		}
		fmt.Fprintf(c.stdout, "config for this emulator written to %s; before running pbirefresh with it:\n  %s\n", c.configOut, envHint)
	}
	fmt.Fprintf(c.stdout, "emulator ready at %s\n  authority host: %s\n  Power BI API:   %s/v1.0/myorg\n  Key Vault:      %s\n  control API:    %s/_emulator/requests\n",
		c.emu.URL(), c.emu.AuthorityHost(), c.emu.PowerBIURL(), c.emu.VaultURL(), c.emu.URL())
	if c.caOut != "" {
		fmt.Fprintf(c.stdout, "  CA certificate: %s\n", c.caOut)
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.emu.Shutdown(sctx)
}

func (c *emulatorCmd) Close() error {
	if c.emu != nil {
		return c.emu.Close()
	}
	return nil
}

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	return strings.Trim(slugRE.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// emulatorConfig renders a configuration for a running emulator: cloud
// custom with its endpoints, its CA, one credential per app that belongs to
// a workspace (its secret read from the emulator's vault when the vault
// holds it), and one job per dataset such an app may refresh. Key Vault is
// read with the Azure default credential chain, as in production; the
// returned hint points its managed-identity source at the emulator.
func emulatorConfig(emu *emulator.Emulator, caFile string) (text, envHint string) {
	sc := emu.Scenario()
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `pbirefresh emulator --config-out` for the emulator at %s.\n", emu.URL())
	envHint = "export AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential"
	if mi := sc.ManagedIdentity; mi != nil {
		envHint = fmt.Sprintf("export IDENTITY_ENDPOINT=%s/msi/token IDENTITY_HEADER=%s", emu.URL(), mi.Header)
		fmt.Fprintf(&b, "# Key Vault is read with the Azure default credential chain; aim its managed\n# identity at the emulator first:\n#   %s\n", envHint)
	}
	fmt.Fprintf(&b, "cloud: custom\nendpoints:\n  authority_host: %s\n  powerbi_api: %s\n  powerbi_scope: https://analysis.windows.net/powerbi/api/.default\n  keyvault_challenge_verification: false\ntls:\n  ca_file: %s\ncredentials:\n",
		emu.AuthorityHost(), emu.PowerBIURL(), caFile)
	vaultSecret := map[string]string{} // secret value → vault secret name
	if sc.Vault != nil {
		for _, vs := range sc.Vault.Secrets {
			if !vs.Disabled && len(vs.Versions) > 0 {
				vaultSecret[vs.Versions[len(vs.Versions)-1]] = vs.Name
			}
		}
	}
	credOf := map[string]string{} // client id → credential name
	for _, a := range sc.Apps {
		member := false
		for _, w := range sc.Workspaces {
			for _, m := range w.Members {
				member = member || strings.EqualFold(m.Principal, a.ClientID) && !strings.EqualFold(m.Role, "viewer")
			}
		}
		if !member || len(a.Secrets) == 0 {
			continue
		}
		name := slug(a.Name)
		if name == "" {
			name = "app-" + a.ClientID[:8]
		}
		credOf[strings.ToLower(a.ClientID)] = name
		fmt.Fprintf(&b, "  %s:\n    tenant_id: %s\n    client_id: %s\n    client_secret:\n", name, a.Tenant, a.ClientID)
		if vn, ok := vaultSecret[a.Secrets[0].Value]; ok {
			fmt.Fprintf(&b, "      keyvault: {vault_url: %s, secret_name: %s}\n", emu.VaultURL(), vn)
		} else {
			env := "PBI_SECRET_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
			fmt.Fprintf(&b, "      env: %s\n", env)
			envHint += " " + env + "=<the app's secret from the scenario>"
		}
	}
	b.WriteString("defaults:\n  timeout: 30m\n  poll: {min_interval: 1s, max_interval: 30s}\njobs:\n")
	seen := map[string]bool{}
	for _, w := range sc.Workspaces {
		cred := ""
		for _, m := range w.Members {
			if n, ok := credOf[strings.ToLower(m.Principal)]; ok && cred == "" && !strings.EqualFold(m.Role, "viewer") {
				cred = n
			}
		}
		if cred == "" || w.PersonalOf != "" {
			continue
		}
		for _, d := range w.Datasets {
			name := slug(d.Name)
			if name == "" || seen[name] {
				name = "dataset-" + d.ID[:8]
			}
			seen[name] = true
			fmt.Fprintf(&b, "  - name: %s\n    credential: %s\n    workspace_id: %s\n    dataset_id: %s\n", name, cred, w.ID, d.ID)
			if w.Capacity != "shared" {
				b.WriteString("    refresh: {type: full}\n")
			}
		}
	}
	return b.String(), envHint
}
