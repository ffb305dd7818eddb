package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStatusPageInChromium loads the status page in headless Chromium and
// checks that the jobs and the chart render; the screenshot goes to the
// test's temporary directory (PBIREFRESH_SCREENSHOT keeps a copy).
func TestStatusPageInChromium(t *testing.T) {
	chromium := need(t, "chromium")
	dir := t.TempDir()
	addr := freePort(t)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(demoWith(t, dir, func(s string) string {
		s = strings.Replace(s, `schedule: "*/15 * * * * *"`, `schedule: "*/2 * * * * *"`, 1)
		s = strings.Replace(s, `schedule: "10 * * * * *"`, `schedule: "*/3 * * * * *"`, 1) // finance fails: show a failure
		return s + "\nhttp: {listen: " + addr + "}\n"
	})), 0o600)
	cmd, w := startDaemon(t, cfg)
	w.waitFor(t, 0, 40*time.Second, "refresh completed")
	w.waitFor(t, 0, 40*time.Second, "refresh ended unsuccessfully")
	shot := filepath.Join(dir, "status.png")
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--no-first-run", "--disable-quic", "--user-data-dir=" + filepath.Join(dir, "profile"), "--window-size=420,1400"}
	url := "http://" + addr + "/"
	dom, err := exec.Command(chromium, append(args, "--dump-dom", url)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	page := string(dom)
	for _, j := range []string{"sales", "finance", "inventory", "forecast", "team", "payroll"} {
		if !strings.Contains(page, `id="job-`+j+`"`) {
			t.Errorf("rendered page lacks job %s", j)
		}
	}
	if strings.Count(page, "<rect ") < 2 || !strings.Contains(page, `class="s s-completed"`) || !strings.Contains(page, `class="s s-failed"`) {
		t.Fatalf("chart or outcomes missing from the rendered page:\n%.2000s", page)
	}
	if out, err := exec.Command(chromium, append(args, "--screenshot="+shot, url)...).CombinedOutput(); err != nil {
		t.Fatalf("screenshot: %v %s", err, out)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 5000 {
		t.Fatalf("screenshot: %v", err)
	}
	if keep := os.Getenv("PBIREFRESH_SCREENSHOT"); keep != "" {
		b, _ := os.ReadFile(shot)
		os.WriteFile(keep, b, 0o644)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	w.waitFor(t, 0, 30*time.Second, "stopped")
}
