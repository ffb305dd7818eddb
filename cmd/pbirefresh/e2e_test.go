package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh/store/postgres/pgtest"
)

var binary string

// TestMain builds the binary once; the tests run it as a user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pbirefresh-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pbirefresh")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	pgtest.StopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func runBinary(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AZURE_") && !strings.HasPrefix(kv, "IDENTITY_") && !strings.HasPrefix(kv, "MSI_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		r := result{code, out.String(), errb.String()}
		for _, secret := range []string{"demo-client-secret-value", "demo-vault-reader-secret", "eyJ"} {
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Fatalf("output holds a secret or token (%.6s…)", secret)
			}
		}
		return r
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("%v did not finish", args)
	}
	return result{}
}

const demo = "../../configs/demo.yaml"

func TestValidate(t *testing.T) {
	if r := runBinary(t, nil, "validate", "--config", demo); r.code != 0 || !strings.Contains(r.stdout, "OK (6 jobs") {
		t.Fatalf("%+v", r)
	}
	r := runBinary(t, nil, "validate", "--config", "../../configs/testdata/many-problems.yaml")
	if r.code != 2 || strings.Count(r.stderr, "many-problems.yaml:") != 16 {
		t.Fatalf("want exit 2 and all 16 problems: %+v", r)
	}
	if r := runBinary(t, nil, "validate"); r.code != 2 || !strings.Contains(r.stderr, "--config is required") {
		t.Fatalf("%+v", r)
	}
	if r := runBinary(t, nil, "frobnicate"); r.code != 2 {
		t.Fatalf("%+v", r)
	}
}

func TestOnceExitCodes(t *testing.T) {
	for _, tc := range []struct {
		job    string
		code   int
		status string
		hint   string
	}{
		{"sales", 0, "completed", ""},
		{"team", 0, "completed", ""},
		{"finance", 1, "failed", "credentials"},
		{"payroll", 3, "error", "add the service principal to the workspace"},
	} {
		t.Run(tc.job, func(t *testing.T) {
			r := runBinary(t, nil, "once", "--config", demo, "--job", tc.job, "--output", "json")
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d: %s %s", r.code, tc.code, r.stdout, r.stderr)
			}
			var out map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("--output json is not one JSON object: %v: %s", err, r.stdout)
			}
			if out["job"] != tc.job || out["status"] != tc.status || out["start"] == nil || out["end"] == nil {
				t.Fatalf("json: %v", out)
			}
			if tc.code == 0 && out["refresh_id"] == nil {
				t.Fatalf("no refresh id: %v", out)
			}
			if tc.hint != "" && !strings.Contains(fmt.Sprint(out["hint"]), tc.hint) {
				t.Fatalf("hint %q, want %q", out["hint"], tc.hint)
			}
		})
	}
	if r := runBinary(t, nil, "once", "--config", demo, "--job", "nope"); r.code != 2 || !strings.Contains(r.stderr, "jobs: sales, finance") {
		t.Fatalf("unknown job: %+v", r)
	}
	// Text output names the outcome and the hint.
	r := runBinary(t, nil, "once", "--config", demo, "--job", "finance")
	if r.code != 1 || !strings.Contains(r.stdout, "job finance: failed") || !strings.Contains(r.stdout, "hint: a data source's credentials") {
		t.Fatalf("%+v", r)
	}
}

func TestDoctor(t *testing.T) {
	r := runBinary(t, nil, "doctor", "--config", demo)
	if r.code != 3 || !strings.Contains(r.stdout, "[FAIL] job payroll: workspace") || !strings.Contains(r.stdout, "fix: the workspace or dataset was not found") {
		t.Fatalf("%+v", r)
	}
	if strings.Count(r.stdout, "[ok]") < 10 {
		t.Fatalf("too few passing checks: %s", r.stdout)
	}
	if r := runBinary(t, nil, "doctor", "--config", demo, "--job", "sales"); r.code != 0 || !strings.Contains(r.stdout, "all checks passed") {
		t.Fatalf("%+v", r)
	}
	// Nothing was refreshed by the doctor.
	if strings.Contains(r.stdout, "refresh started") {
		t.Fatal("doctor started a refresh")
	}
}

// TestEmulatorConfigOut: `pbirefresh emulator --config-out` writes a config
// that `pbirefresh once` uses as it would use Azure's: custom endpoints, the
// CA file, Key Vault read through the default credential chain (its managed
// identity source pointed at the emulator).
func TestEmulatorConfigOut(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "pbirefresh.yaml")
	emu := exec.Command(binary, "emulator", "--listen", "127.0.0.1:0", "--config-out", cfgPath)
	stdout, _ := emu.StdoutPipe()
	emu.Stderr = os.Stderr
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { emu.Process.Kill(); emu.Wait() }()
	var envLine string
	sc := bufio.NewScanner(stdout)
	deadline := time.Now().Add(30 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "export ") {
			envLine = line
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	m := regexp.MustCompile(`IDENTITY_ENDPOINT=(\S+) IDENTITY_HEADER=(\S+)`).FindStringSubmatch(envLine)
	if m == nil {
		t.Fatalf("no environment hint printed: %q", envLine)
	}
	env := []string{"IDENTITY_ENDPOINT=" + m[1], "IDENTITY_HEADER=" + m[2]}
	if r := runBinary(t, env, "validate", "--config", cfgPath); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	r := runBinary(t, env, "once", "--config", cfgPath, "--job", "sales-model")
	if r.code != 0 || !strings.Contains(r.stdout, "job sales-model: completed") {
		t.Fatalf("%+v", r)
	}
}
