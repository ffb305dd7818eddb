package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// command runs a tool and returns its standard output; it fails the test
// with both outputs when the tool fails.
func command(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// file is what the packages install, apart from the directories.
type file struct {
	path, perms string // perms as ls prints them
	src         string // the repository file it must equal; "" for generated ones
}

var packaged = []file{
	{"/usr/bin/pbirefresh", "-rwxr-xr-x", ""},
	{"/usr/lib/systemd/system/pbirefresh.service", "-rw-r--r--", ""},
	{"/etc/pbirefresh/pbirefresh.yaml", "-rw-r--r--", "configs/example.yaml"},
	{"/usr/share/doc/pbirefresh/example.yaml", "-rw-r--r--", "configs/example.yaml"},
	{"/usr/share/doc/pbirefresh/README.md", "-rw-r--r--", "README.md"},
	{"/usr/share/pbirefresh/prometheus/pbirefresh.rules.yml", "-rw-r--r--", "deploy/prometheus/pbirefresh.rules.yml"},
	{"/usr/share/pbirefresh/grafana/pbirefresh-dashboard.json", "-rw-r--r--", "deploy/grafana/pbirefresh-dashboard.json"},
}

// Per format: the licence file, and the directories the package owns.
var (
	debCopyright = file{"/usr/share/doc/pbirefresh/copyright", "-rw-r--r--", ""}
	rpmLicense   = file{"/usr/share/licenses/pbirefresh/LICENSE", "-rw-r--r--", ""}
	ownedDirs    = []string{"/etc/pbirefresh", "/usr/share/doc/pbirefresh", "/usr/share/pbirefresh", "/usr/share/pbirefresh/prometheus", "/usr/share/pbirefresh/grafana"}
)

const (
	firstVersion = devVersion // what a build without tags gets: it must install
	nextVersion  = "1.0.0"
)

// TestPackages builds the .deb and .rpm with the build program as a user
// runs it (it builds the binary, once), checks their metadata, contents,
// modes and scripts with dpkg-deb and rpm, then installs, upgrades and
// removes them in scratch roots.
func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and two packages")
	}
	dpkgDeb, dpkg, rpm := need(t, "dpkg-deb"), need(t, "dpkg"), need(t, "rpm")
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	prog := filepath.Join(dir, "package")
	command(t, "", nil, "go", "build", "-o", prog, ".")
	out := command(t, "", nil, prog, "--version", firstVersion, "--out", filepath.Join(dir, "v1"))
	t.Logf("go run ./deploy/package --version %s:\n%s", firstVersion, out)
	deb := filepath.Join(dir, "v1", "pbirefresh_0.0.0~dev_amd64.deb")
	rpmFile := filepath.Join(dir, "v1", "pbirefresh-0.0.0~dev-1.x86_64.rpm")
	for _, p := range []string{deb, rpmFile} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%v (the program wrote:\n%s)", err, out)
		}
		t.Logf("%s: %d bytes (%.1f MB)", filepath.Base(p), st.Size(), float64(st.Size())/1e6)
	}

	// The binary from the first build goes into the upgrade's packages.
	bin := filepath.Join(dir, "pbirefresh")
	command(t, "", nil, dpkgDeb, "-x", deb, filepath.Join(dir, "x"))
	if err := os.Rename(filepath.Join(dir, "x/usr/bin/pbirefresh"), bin); err != nil {
		t.Fatal(err)
	}
	command(t, "", nil, prog, "--version", nextVersion, "--out", filepath.Join(dir, "v2"), "--binary", bin)
	deb2 := filepath.Join(dir, "v2", "pbirefresh_1.0.0_amd64.deb")
	rpm2 := filepath.Join(dir, "v2", "pbirefresh-1.0.0-1.x86_64.rpm")

	t.Run("deb", func(t *testing.T) { checkDeb(t, dpkgDeb, root, deb, bin) })
	t.Run("rpm", func(t *testing.T) { checkRPM(t, rpm, root, rpmFile, bin) })
	t.Run("dpkg install, upgrade, remove, purge", func(t *testing.T) { dpkgLifecycle(t, dpkg, deb, deb2) })
	t.Run("rpm install, upgrade, erase", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("rpm --root needs root (chroot)")
		}
		rpmLifecycle(t, rpm, rpmFile, rpm2)
	})
}

func checkDeb(t *testing.T, dpkgDeb, root, deb, bin string) {
	for field, want := range map[string]string{
		"Package":      "pbirefresh",
		"Version":      "0.0.0~dev",
		"Architecture": "amd64",
		"Maintainer":   maintainer,
		"Homepage":     homepage,
		"Section":      "admin",
	} {
		if got := strings.TrimSpace(command(t, "", nil, dpkgDeb, "--field", deb, field)); got != want {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	info := command(t, "", nil, dpkgDeb, "--info", deb)
	if !strings.Contains(info, "Description: Power BI dataset refreshes on schedules\n") {
		t.Errorf("dpkg-deb --info: no description:\n%s", info)
	}

	// Every path with its mode and owner; nothing else.
	got := map[string]string{}
	for line := range strings.Lines(command(t, "", nil, dpkgDeb, "--contents", deb)) {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb --contents: %q", line)
		}
		path := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
		got[path] = f[0] + " " + f[1]
		if f[1] != "root/root" {
			t.Errorf("%s is owned by %s", path, f[1])
		}
	}
	want := map[string]string{}
	for _, f := range append(slices.Clone(packaged), debCopyright) {
		want[f.path] = f.perms + " root/root"
	}
	for _, d := range ownedDirs {
		want[d] = "drwxr-xr-x root/root"
	}
	for path, w := range want {
		if got[path] != w {
			t.Errorf("%s: %q, want %q", path, got[path], w)
		}
	}
	for path, g := range got {
		if _, ok := want[path]; !ok && !strings.HasPrefix(g, "d") {
			t.Errorf("unexpected file %s (%s)", path, g)
		}
	}

	// The control files: the conffile, and scripts that never start the daemon.
	ctl := filepath.Join(t.TempDir(), "DEBIAN")
	command(t, "", nil, dpkgDeb, "-e", deb, ctl)
	if b, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); string(b) != "/etc/pbirefresh/pbirefresh.yaml\n" {
		t.Errorf("conffiles: %q", b)
	}
	postinst, _ := os.ReadFile(filepath.Join(ctl, "postinst"))
	checkPostinst(t, "postinst", string(postinst))
	if b, _ := os.ReadFile(filepath.Join(ctl, "prerm")); !strings.Contains(string(b), "systemctl stop pbirefresh.service") {
		t.Errorf("prerm does not stop the service:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(ctl, "md5sums")); err != nil {
		t.Error(err)
	}

	// The files' contents: the repository's, the unit rewritten, the binary as built.
	x := t.TempDir()
	command(t, "", nil, dpkgDeb, "-x", deb, x)
	for _, f := range packaged {
		if f.src == "" {
			continue
		}
		gotB, _ := os.ReadFile(filepath.Join(x, f.path))
		wantB, _ := os.ReadFile(filepath.Join(root, f.src))
		if !bytes.Equal(gotB, wantB) || len(wantB) == 0 {
			t.Errorf("%s differs from %s", f.path, f.src)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(x, "usr/lib/systemd/system/pbirefresh.service"))
	repoUnit, _ := os.ReadFile(filepath.Join(root, "deploy/systemd/pbirefresh.service"))
	if wantUnit, err := packagedUnit(repoUnit); err != nil || !bytes.Equal(unit, wantUnit) {
		t.Errorf("packaged unit (%v):\n%s", err, unit)
	}
	if !bytes.Contains(unit, []byte("\nExecStart=/usr/bin/pbirefresh run --config /etc/pbirefresh/pbirefresh.yaml\n")) {
		t.Errorf("packaged unit's ExecStart:\n%s", unit)
	}
	if err := checkBinary(filepath.Join(x, "usr/bin/pbirefresh")); err != nil {
		t.Error(err)
	}
	if v := command(t, "", nil, filepath.Join(x, "usr/bin/pbirefresh"), "version"); !strings.HasPrefix(v, "pbirefresh 0.0.0-dev ") {
		t.Errorf("pbirefresh version: %q", v)
	}
	if c, _ := os.ReadFile(filepath.Join(x, debCopyright.path)); !bytes.Contains(c, []byte("License: Proprietary")) {
		t.Errorf("copyright:\n%s", c)
	}
}

func checkRPM(t *testing.T, rpm, root, pkg, bin string) {
	q := func(args ...string) string {
		return command(t, "", nil, rpm, append([]string{"-qp"}, append(args, pkg)...)...)
	}
	meta := q("--queryformat", "%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE} %{URL}")
	if want := "pbirefresh 0.0.0~dev 1 x86_64 Proprietary " + homepage; meta != want {
		t.Errorf("rpm metadata %q, want %q", meta, want)
	}
	if out := command(t, "", nil, rpm, "-K", pkg); !strings.Contains(out, "digests OK") {
		t.Errorf("rpm -K: %s", out)
	}

	var wantList []string
	for _, f := range append(slices.Clone(packaged), rpmLicense) {
		wantList = append(wantList, f.path)
	}
	wantList = append(append(wantList, ownedDirs...), "/usr/share/licenses/pbirefresh")
	slices.Sort(wantList)
	if got := strings.Fields(q("--list")); !slices.Equal(got, wantList) {
		t.Errorf("rpm -qlp:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantList, "\n"))
	}
	if got := q("--configfiles"); got != "/etc/pbirefresh/pbirefresh.yaml\n" {
		t.Errorf("rpm -qp --configfiles: %q", got)
	}

	// Modes, owners, config flags (c: config, n: noreplace) and digests.
	got := map[string]string{}
	for line := range strings.Lines(q("--queryformat", "[%{FILEMODES:perms}|%{FILEUSERNAME}:%{FILEGROUPNAME}|(%{FILEFLAGS:fflags})|%{FILEDIGESTS}|%{FILENAMES}\n]")) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "|")
		if len(f) != 5 {
			t.Fatalf("rpm --queryformat: %q", line)
		}
		got[f[4]] = strings.Join(f[:4], " ")
	}
	for _, f := range append(slices.Clone(packaged), rpmLicense) {
		g := strings.Fields(got[f.path])
		if len(g) != 4 || g[0] != f.perms || g[1] != "root:root" {
			t.Errorf("%s: %q, want %s root:root", f.path, got[f.path], f.perms)
			continue
		}
		if flags, want := g[2], map[string]string{configPath: "(cn)", rpmLicense.path: "(l)"}[f.path]; flags != cmpOr(want, "()") {
			t.Errorf("%s: flags %s, want %s", f.path, flags, cmpOr(want, "()"))
		}
		src := f.src
		if f.path == binPath {
			src = bin
		}
		if src != "" {
			if !filepath.IsAbs(src) {
				src = filepath.Join(root, src)
			}
			b, _ := os.ReadFile(src)
			if sum := sha256.Sum256(b); g[3] != hex.EncodeToString(sum[:]) {
				t.Errorf("%s: digest %s is not that of %s", f.path, g[3], src)
			}
		}
	}
	for _, d := range append(slices.Clone(ownedDirs), "/usr/share/licenses/pbirefresh") {
		if g := strings.Fields(got[d]); len(g) != 3 || g[0] != "drwxr-xr-x" || g[1] != "root:root" {
			t.Errorf("%s: %q", d, got[d])
		}
	}

	scripts := q("--scripts")
	post, _, _ := strings.Cut(scripts, "preuninstall scriptlet")
	if !strings.Contains(post, "postinstall scriptlet") {
		t.Fatalf("rpm -qp --scripts:\n%s", scripts)
	}
	checkPostinst(t, "rpm postinstall", post)
	for _, want := range []string{"preuninstall scriptlet", "systemctl stop pbirefresh.service", "postuninstall scriptlet"} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm scripts lack %q", want)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkPostinst: after install only daemon-reload; never enable or start.
func checkPostinst(t *testing.T, name, script string) {
	t.Helper()
	lower := strings.ToLower(script)
	for _, bad := range []string{"start", "enable"} {
		if strings.Contains(lower, bad) {
			t.Errorf("%s mentions %q:\n%s", name, bad, script)
		}
	}
	if !strings.Contains(script, "systemctl daemon-reload") || !strings.Contains(script, "[ -d /run/systemd/system ]") {
		t.Errorf("%s does not reload systemd when it runs:\n%s", name, script)
	}
}

// dpkgLifecycle installs into a scratch root with dpkg's own database there
// (no root needed); the scripts run outside it, where DPKG_ROOT keeps them
// from touching the machine's systemd.
func dpkgLifecycle(t *testing.T, dpkg, deb, deb2 string) {
	r := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
		os.MkdirAll(filepath.Join(r, d), 0o755)
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		os.WriteFile(filepath.Join(r, f), nil, 0o644)
	}
	env := []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH") + ":/usr/local/sbin:/usr/sbin:/sbin"}
	run := func(args ...string) string {
		return command(t, "", env, dpkg, append([]string{"--root=" + r, "--force-not-root", "--force-script-chrootless", "--log=/dev/null"}, args...)...)
	}
	status := func() string {
		out, _ := exec.Command(dpkg, "--root="+r, "--status", "pbirefresh").Output()
		for line := range strings.Lines(string(out)) {
			if s, ok := strings.CutPrefix(line, "Status: "); ok {
				return strings.TrimSpace(s)
			}
		}
		return "not installed"
	}
	conf := filepath.Join(r, configPath)
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(r, p)); return err == nil }

	run("--install", deb)
	if s := status(); s != "install ok installed" {
		t.Fatalf("after install: %s", s)
	}
	for _, f := range append(slices.Clone(packaged), debCopyright) {
		st, err := os.Stat(filepath.Join(r, f.path))
		if err != nil {
			t.Errorf("installed: %v", err)
			continue
		}
		if st.Mode().String() != f.perms {
			t.Errorf("installed %s: %s, want %s", f.path, st.Mode(), f.perms)
		}
	}
	if v := command(t, "", nil, filepath.Join(r, binPath), "version"); !strings.HasPrefix(v, "pbirefresh 0.0.0-dev ") {
		t.Errorf("installed pbirefresh version: %q", v)
	}

	// An administrator's edit survives the upgrade, without a question.
	edited := append(read(t, conf), "# edited by the administrator\n"...)
	os.WriteFile(conf, edited, 0o644)
	run("--install", deb2)
	if got := read(t, conf); !bytes.Equal(got, edited) {
		t.Error("the upgrade replaced the edited config")
	}
	if out := run("--status", "pbirefresh"); !strings.Contains(out, "\nVersion: 1.0.0\n") {
		t.Errorf("after the upgrade:\n%s", out)
	}

	// Remove keeps the conffile, purge removes it.
	run("--remove", "pbirefresh")
	if s := status(); s != "deinstall ok config-files" {
		t.Errorf("after remove: %s", s)
	}
	if exists(binPath) || exists(unitPath) {
		t.Error("remove left the binary or the unit")
	}
	if got, _ := os.ReadFile(conf); !bytes.Equal(got, edited) {
		t.Error("remove did not keep the edited config")
	}
	run("--purge", "pbirefresh")
	if s := status(); s != "not installed" {
		t.Errorf("after purge: %s", s)
	}
	for _, p := range []string{configPath, "/etc/pbirefresh", docDir, shareDir} {
		if exists(p) {
			t.Errorf("purge left %s", p)
		}
	}
}

// rpmLifecycle installs into a scratch root with --noscripts (the root has
// no shell for them; TestScripts covers them).
func rpmLifecycle(t *testing.T, rpm, pkg, pkg2 string) {
	r := t.TempDir()
	// Debian's rpm keeps its database under $HOME: name one inside the root.
	run := func(args ...string) string {
		return command(t, "", nil, rpm, append([]string{"--root", r, "--dbpath", "/var/lib/rpm"}, args...)...)
	}
	conf := filepath.Join(r, configPath)
	run("--initdb")
	run("--install", "--nodeps", "--noscripts", pkg)
	for _, f := range append(slices.Clone(packaged), rpmLicense) {
		st, err := os.Stat(filepath.Join(r, f.path))
		if err != nil || st.Mode().String() != f.perms {
			t.Errorf("installed %s: %v %v, want %s", f.path, st.Mode(), err, f.perms)
		}
	}
	edited := append(read(t, conf), "# edited by the administrator\n"...)
	os.WriteFile(conf, edited, 0o644)
	run("--upgrade", "--nodeps", "--noscripts", pkg2)
	if got := read(t, conf); !bytes.Equal(got, edited) {
		t.Error("the upgrade replaced the edited config")
	}
	if _, err := os.Stat(conf + ".rpmnew"); err == nil {
		t.Error("the upgrade wrote pbirefresh.yaml.rpmnew for an unchanged config")
	}
	if v := run("--query", "--queryformat", "%{VERSION}", "pbirefresh"); v != "1.0.0" {
		t.Errorf("after the upgrade: %s", v)
	}
	run("--erase", "--noscripts", "pbirefresh")
	if _, err := os.Stat(filepath.Join(r, binPath)); err == nil {
		t.Error("erase left the binary")
	}
	if got, _ := os.ReadFile(conf + ".rpmsave"); !bytes.Equal(got, edited) {
		t.Error("erase did not save the edited config as pbirefresh.yaml.rpmsave")
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestScripts runs the maintainer scripts with each argument dpkg and rpm
// pass, against a fake systemctl, with and without a running systemd.
func TestScripts(t *testing.T) {
	sh := need(t, "sh")
	dir := t.TempDir()
	systemdDir := filepath.Join(dir, "run-systemd-system")
	log := filepath.Join(dir, "systemctl.log")
	os.WriteFile(filepath.Join(dir, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >> "+log+"\n"), 0o755)
	script := func(name string) string {
		b, err := os.ReadFile(filepath.Join("scripts", name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, bytes.ReplaceAll(b, []byte("/run/systemd/system"), []byte(systemdDir)), 0o755)
		return p
	}
	post, prerm, postrm := script("postinstall.sh"), script("preremove.sh"), script("postremove.sh")

	for _, tc := range []struct {
		script, arg string
		want        string // systemctl's arguments, when systemd runs
	}{
		{post, "configure", "daemon-reload"},
		{post, "abort-upgrade", "daemon-reload"},
		{post, "1", "daemon-reload"},
		{post, "2", "daemon-reload"},
		{prerm, "remove", "stop pbirefresh.service"},
		{prerm, "upgrade", ""},
		{prerm, "deconfigure", ""},
		{prerm, "failed-upgrade", ""},
		{prerm, "0", "stop pbirefresh.service"},
		{prerm, "1", ""},
		{postrm, "remove", "daemon-reload"},
		{postrm, "purge", "daemon-reload"},
		{postrm, "upgrade", "daemon-reload"},
		{postrm, "0", "daemon-reload"},
		{postrm, "1", "daemon-reload"},
	} {
		for _, systemd := range []bool{true, false} {
			for _, dpkgRoot := range []string{"", "/some/root"} {
				os.Remove(log)
				os.RemoveAll(systemdDir)
				if systemd {
					os.Mkdir(systemdDir, 0o755)
				}
				cmd := exec.Command(sh, tc.script, tc.arg)
				cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "DPKG_ROOT="+dpkgRoot)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s %s: %v\n%s", filepath.Base(tc.script), tc.arg, err, out)
				}
				got, _ := os.ReadFile(log)
				want := ""
				if systemd && dpkgRoot == "" && tc.want != "" {
					want = tc.want + "\n"
				}
				if string(got) != want {
					t.Errorf("%s %s (systemd %v, DPKG_ROOT %q): systemctl %q, want %q", filepath.Base(tc.script), tc.arg, systemd, dpkgRoot, got, want)
				}
			}
		}
	}
}

func TestPackagedUnit(t *testing.T) {
	unit := "[Service]\nType=notify\nExecStart=/usr/local/bin/pbirefresh run --config /etc/pbirefresh/pbirefresh.yaml\nExecReload=/bin/kill -HUP $MAINPID\n"
	got, err := packagedUnit([]byte(unit))
	want := strings.Replace(unit, "/usr/local/bin/pbirefresh", "/usr/bin/pbirefresh", 1)
	if err != nil || string(got) != want {
		t.Errorf("packagedUnit = %q, %v", got, err)
	}
	for _, bad := range []string{
		"[Service]\nExecReload=/bin/kill -HUP $MAINPID\n",
		"ExecStart=/usr/local/bin/pbirefresh run\nExecStart=/usr/local/bin/pbirefresh once\n",
		"ExecStart=/usr/bin/env pbirefresh run\n",
	} {
		if _, err := packagedUnit([]byte(bad)); err == nil {
			t.Errorf("packagedUnit(%q) accepted", bad)
		}
	}
	// The repository's unit.
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy/systemd/pbirefresh.service"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := packagedUnit(b); err != nil {
		t.Errorf("deploy/systemd/pbirefresh.service: %v", err)
	}
}

func TestLicensing(t *testing.T) {
	dir := t.TempDir()
	name, text, err := licensing(dir)
	if err != nil || name != "Proprietary" || !bytes.Contains(text, []byte("\nLicense: Proprietary\n All rights reserved.\n")) {
		t.Errorf("without LICENSE: %q %q %v", name, text, err)
	}
	os.WriteFile(filepath.Join(dir, "LICENSE"), []byte("MIT License\n\nCopyright (c) someone\n"), 0o644)
	name, text, err = licensing(dir)
	if err != nil || name != "MIT" || !bytes.Contains(text, []byte("License: MIT\n MIT License\n .\n Copyright (c) someone\n")) {
		t.Errorf("with an MIT LICENSE: %q %q %v", name, text, err)
	}
	os.WriteFile(filepath.Join(dir, "LICENSE"), []byte("Some licence\n"), 0o644)
	if _, _, err := licensing(dir); err == nil {
		t.Error("an unknown LICENSE was accepted")
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--version", "1.0.0", "--out", "dist", "--binary", "bin/pbirefresh"}, io.Discard)
	if err != nil || o != (options{version: "1.0.0", out: "dist", binary: "bin/pbirefresh"}) {
		t.Errorf("parseFlags = %+v, %v", o, err)
	}
	for _, bad := range [][]string{{}, {"--version", "1.0.0"}, {"--out", "dist", "extra"}, {"--outdir", "dist"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}
