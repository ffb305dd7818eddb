package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const unitFile = "../../deploy/systemd/pbirefresh.service"

// TestSystemdUnit checks the unit's hardening score and that systemd
// accepts it. CI installs systemd-analyze; elsewhere the test skips
// without it.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is missing; .ci/run must install systemd")
		}
		t.Skip("systemd-analyze not installed")
	}
	out, err := exec.Command(analyze, "security", "--offline=true", unitFile).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for pbirefresh.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no score (%v):\n%s", err, out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security exposure: %.1f", score)
	if score > 1.5 {
		t.Fatalf("exposure %.1f is above 1.5:\n%s", score, out)
	}
	// verify needs the binary at ExecStart: check a copy pointing at ours.
	b, _ := os.ReadFile(unitFile)
	unit := strings.Replace(string(b), "/usr/local/bin/pbirefresh", binary, 1)
	for _, want := range []string{"Type=notify", "StateDirectory=pbirefresh", "ConfigurationDirectory=pbirefresh", "LoadCredential=", "TimeoutStopSec=45", "WatchdogSec="} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %s", want)
		}
	}
	copy := filepath.Join(t.TempDir(), "pbirefresh.service")
	os.WriteFile(copy, []byte(unit), 0o644)
	if out, err := exec.Command(analyze, "verify", copy).CombinedOutput(); err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSystemdNotify: under Type=notify the daemon says READY=1 once it is
// scheduling, pings the watchdog while the scheduler ticks, and says
// STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(demoWith(t, dir, func(s string) string { return s })), 0o600)
	cmd := exec.Command(binary, "run", "--config", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=1000000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	want := []string{"READY=1", "WATCHDOG=1"}
	deadline := time.After(30 * time.Second)
	for len(want) > 0 {
		select {
		case m := <-got:
			if strings.Contains(m, want[0]) {
				want = want[1:]
			}
		case <-deadline:
			t.Fatalf("never got %s", want[0])
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for {
		select {
		case m := <-got:
			if strings.Contains(m, "STOPPING=1") {
				cmd.Wait()
				return
			}
		case <-time.After(30 * time.Second):
			t.Fatal("never got STOPPING=1")
		}
	}
}
