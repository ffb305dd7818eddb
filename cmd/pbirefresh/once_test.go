package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestOnceJSONWhenNamesDoNotResolve: README: `--output json` prints
// one object (job, status, ..., error, hint). A job whose workspace name
// matches nothing ends, exit 3, and still prints its object, so that a
// CronJob's log consumer that parses stdout sees the run.
func TestOnceJSONWhenNamesDoNotResolve(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pbirefresh.yaml")
	writeConfig(t, dir, demoWith(t, dir, func(s string) string {
		return strings.Replace(s, "jobs:\n", `jobs:
  - name: ghost
    credential: demo
    workspace: No Such Workspace
    dataset: Sales Model
`, 1)
	}))
	r := runBinary(t, nil, "once", "--config", cfg, "--job", "ghost", "--output", "json")
	if r.code != 3 {
		t.Fatalf("exit %d, want 3", r.code)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("--output json printed no JSON object: %v (stdout %q)", err, r.stdout)
	}
	if out["job"] != "ghost" || out["status"] != "error" || out["error"] == nil || out["hint"] == nil {
		t.Fatalf("json: %v", out)
	}
}
