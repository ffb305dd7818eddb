package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// need returns a tool's path; outside CI a missing tool skips the test, in
// CI it fails it (.ci/run installs them).
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing; .ci/run must install it", tool)
		}
		t.Skipf("%s not installed", tool)
	}
	return p
}

// TestContainerImage builds the static binary and the FROM scratch image,
// then runs validate and once (against the emulator the demo config starts
// in-process) inside it: read-only root, non-root user.
func TestContainerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("container build")
	}
	podman := need(t, "podman")
	dir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "pbirefresh"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	cf, _ := os.ReadFile("../../deploy/container/Containerfile")
	os.WriteFile(filepath.Join(dir, "Containerfile"), cf, 0o644)
	// A tag of its own: 'podman rmi -f' at the end of another run of this
	// test (two suites at once) would otherwise stop this run's container.
	tag := fmt.Sprintf("localhost/pbirefresh:e2e-%d", os.Getpid())
	if out, err := exec.Command(podman, "build", "-q", "-t", tag, "-f", filepath.Join(dir, "Containerfile"), dir).CombinedOutput(); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	defer exec.Command(podman, "rmi", "-f", tag).Run()
	out, _ := exec.Command(podman, "image", "inspect", "--format", "{{.Config.User}} {{.Size}}", tag).Output()
	fields := strings.Fields(string(out))
	if len(fields) != 2 || fields[0] != "65532:65532" {
		t.Fatalf("image user/size: %q", out)
	}
	t.Logf("image size %s bytes", fields[1])
	configsDir, _ := filepath.Abs("../../configs")
	run := func(args ...string) (string, error) {
		base := []string{"--runtime", "runc", "run", "--rm", "--read-only", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
			"-v", configsDir + ":/etc/pbirefresh:ro", tag}
		out, err := exec.Command(podman, append(base, args...)...).Output()
		return string(out), err
	}
	if out, err := run("validate", "--config", "/etc/pbirefresh/demo.yaml"); err != nil || !strings.Contains(out, "OK (") {
		t.Fatalf("validate in the container: %v %s", err, out)
	}
	if out, err := run("once", "--config", "/etc/pbirefresh/demo.yaml", "--job", "sales", "--output", "json"); err != nil || !strings.Contains(out, `"status": "completed"`) {
		t.Fatalf("once in the container: %v %s", err, out)
	}
}
