package main

import (
	"context"
	"flag"
	"fmt"
	"io"
)

// validateCmd is `pbirefresh validate`: exit 0, or 2 with every problem.
type validateCmd struct {
	stdout, stderr io.Writer
	config         string
}

func (c *validateCmd) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.config, "config", "", "configuration file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return nil
}

func (c *validateCmd) Run(context.Context) error {
	cfg, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s: OK (%d jobs, %d credentials, cloud %s)\n", c.config, len(cfg.Jobs), len(cfg.Credentials), cfg.Cloud)
	return nil
}

func (c *validateCmd) Close() error { return nil }
