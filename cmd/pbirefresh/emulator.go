package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
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
	fakeClock bool
	emu       *emulator.Emulator
}

func (c *emulatorCmd) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(c.stdout)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8443", "listen address (loopback)")
	fs.StringVar(&c.scenario, "scenario", "", "scenario YAML file (default: the built-in demo scenario)")
	fs.StringVar(&c.caOut, "ca-out", "", "write the emulator's CA certificate (PEM) to this file")
	fs.BoolVar(&c.fakeClock, "fake-clock", false, "start a fake clock that only POST /_emulator/clock moves")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return errHelp
		}
		return usageError("emulator: %v", err)
	}
	if fs.NArg() > 0 {
		return usageError("emulator: unexpected argument %q", fs.Arg(0))
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
	if c.caOut != "" {
		if err := os.WriteFile(c.caOut, c.emu.CAPEM(), 0o644); err != nil {
			return fmt.Errorf("write CA certificate: %w", err)
		}
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
