package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pbirefresh/pbirefresh"
)

// runNowCmd is `pbirefresh run-now`: ask the running daemon for a manual
// run of a job, through the same overlap rules, recorded as manual.
type runNowCmd struct {
	stdout, stderr io.Writer
	config, job    string
}

func (c *runNowCmd) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("run-now", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.config, "config", "", "the daemon's configuration file (for http.listen and http.token_file)")
	fs.StringVar(&c.job, "job", "", "job name")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if c.job == "" {
		return usageError("run-now: --job is required")
	}
	return nil
}

func (c *runNowCmd) Run(ctx context.Context) error {
	cfg, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	if cfg.HTTP.Listen == "off" {
		return usageError("run-now talks to the daemon's HTTP server, which this config turns off (http.listen: off)")
	}
	if cfg.HTTP.TokenFile == "" {
		return usageError("run-now needs http.token_file: the daemon accepts POSTs only with that bearer token")
	}
	b, err := os.ReadFile(cfg.HTTP.TokenFile)
	if err != nil {
		return &exitError{exitUsage, fmt.Errorf("read http.token_file: %w", err)}
	}
	host, port, _ := net.SplitHostPort(cfg.HTTP.Listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/api/jobs/" + c.job + "/run"
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return &exitError{exitCannotWork, pbirefresh.WithHint(fmt.Errorf("ask the daemon at %s: %w", cfg.HTTP.Listen, err), "is `pbirefresh run` running with this config?")}
	}
	defer res.Body.Close()
	var body map[string]any
	json.NewDecoder(res.Body).Decode(&body)
	switch res.StatusCode {
	case http.StatusAccepted:
		queued := ""
		if body["queued"] == true {
			queued = ", queued behind the run in progress"
		}
		fmt.Fprintf(c.stdout, "manual run of %s accepted (slot %v%s); follow it with `pbirefresh history --job %s`\n", c.job, body["slot"], queued, c.job)
		return nil
	case http.StatusNotFound:
		return usageError("the daemon has no job %q", c.job)
	case http.StatusConflict:
		return &exitError{exitCannotWork, fmt.Errorf("the daemon refused: %v", body["error"])}
	default:
		return &exitError{exitCannotWork, fmt.Errorf("the daemon answered %d: %v", res.StatusCode, body["error"])}
	}
}

func (c *runNowCmd) Close() error { return nil }
