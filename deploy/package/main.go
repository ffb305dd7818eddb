// Command package builds pbirefresh's .deb and .rpm packages, with nfpm used
// as a library:
//
//	go run ./deploy/package --out DIR [--version 1.2.0] [--binary PATH]
//
// Without --binary it builds the static linux/amd64 binary itself, with the
// version stamped into main.version. Without --version the version is
// `git describe --tags` (v1.2.0-3-gabc1234 becomes v1.2.0+3.gabc1234, after
// 1.2.0 for both dpkg and rpm) or, with no tag, 0.0.0-dev (0.0.0~dev, before
// any release).
//
// The packaged files are read from the repository at build time: the systemd
// unit with its ExecStart pointed at /usr/bin/pbirefresh, configs/example.yaml
// as /etc/pbirefresh/pbirefresh.yaml (a conffile, %config(noreplace): upgrades
// never overwrite it) and as documentation, README.md, the Prometheus rules
// and the Grafana dashboard. The maintainer scripts (scripts/) make systemd
// reread its units, and stop the service when the package is removed; they
// never enable or start it.
package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

const (
	name       = "pbirefresh"
	module     = "github.com/pbirefresh/pbirefresh"
	homepage   = "https://github.com/pbirefresh/pbirefresh"
	maintainer = "pbirefresh maintainers <pbirefresh@users.noreply.github.com>"
	arch       = "amd64"
	devVersion = "0.0.0-dev"
	// licenseName is the License field when the repository has no LICENSE file.
	licenseName = "Proprietary"
	description = `Power BI dataset refreshes on schedules
pbirefresh is a daemon that starts Power BI dataset refreshes on cron
schedules and follows them to their end, with time zones, catch-up, retries,
throttling, notifications, Prometheus metrics and a status page. It runs as
a hardened systemd service; the package neither enables nor starts it.`
)

// Where the packaged files go.
const (
	binPath    = "/usr/bin/pbirefresh"
	unitPath   = "/usr/lib/systemd/system/pbirefresh.service"
	configPath = "/etc/pbirefresh/pbirefresh.yaml"
	docDir     = "/usr/share/doc/pbirefresh"
	shareDir   = "/usr/share/pbirefresh"
	licenseDir = "/usr/share/licenses/pbirefresh" // rpm's %license
)

// formats are the packagers used, in order.
var formats = []string{"deb", "rpm"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return // -h: the flag package printed the usage
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "package: %v\n", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	version string // stamped into the binary; the packages' versions derive from it
	out     string // directory the packages are written to
	binary  string // a static linux/amd64 pbirefresh; empty: build one
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("package", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.version, "version", "", "version, semantic (1.2.0, v1.2.0-rc.1); default: git describe --tags, else "+devVersion)
	fs.StringVar(&o.out, "out", "", "directory to write the packages to (required)")
	fs.StringVar(&o.binary, "binary", "", "static linux/amd64 pbirefresh to package; default: build it")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.out == "" {
		return o, errors.New("--out is required: the directory to write the packages to")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if o.version == "" {
		if o.version, err = gitVersion(ctx, root); err != nil {
			return err
		}
	}
	pkgs, err := build(ctx, root, o)
	if err != nil {
		return err
	}
	for _, p := range pkgs {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\t%.1f MB\n", p, float64(st.Size())/1e6)
	}
	return nil
}

// build writes the packages into o.out and returns their paths.
func build(ctx context.Context, root string, o options) ([]string, error) {
	if err := checkVersion(o.version); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp("", "pbirefresh-package-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)

	bin := o.binary
	if bin == "" {
		bin = filepath.Join(stage, "pbirefresh")
		if err := buildBinary(ctx, root, o.version, bin); err != nil {
			return nil, err
		}
	}
	if err := checkBinary(bin); err != nil {
		return nil, err
	}
	unit, err := os.ReadFile(filepath.Join(root, "deploy/systemd/pbirefresh.service"))
	if err != nil {
		return nil, err
	}
	if unit, err = packagedUnit(unit); err != nil {
		return nil, fmt.Errorf("deploy/systemd/pbirefresh.service: %w", err)
	}
	license, copyright, err := licensing(root)
	if err != nil {
		return nil, err
	}
	staged := map[string][]byte{"pbirefresh.service": unit, "copyright": copyright}
	for file, b := range staged {
		if err := os.WriteFile(filepath.Join(stage, file), b, 0o644); err != nil {
			return nil, err
		}
	}

	mtime := sourceDate(ctx, root)
	var pkgs []string
	for _, format := range formats {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info := packageInfo(root, stage, bin, o.version, license, mtime)
		p, err := writePackage(format, info, o.out)
		if err != nil {
			return nil, fmt.Errorf("build the %s package: %w", format, err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// packageInfo describes the package; the packagers change what they are
// given, so each gets its own.
func packageInfo(root, stage, bin, version, license string, mtime time.Time) *nfpm.Info {
	src := func(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }
	mode := func(m os.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Owner: "root", Group: "root", Mode: m}
	}
	contents := files.Contents{
		{Source: bin, Destination: binPath, FileInfo: mode(0o755)},
		{Source: filepath.Join(stage, "pbirefresh.service"), Destination: unitPath, FileInfo: mode(0o644)},
		// 0644: the config holds secret references, never secrets, and the
		// unit's dynamic user must read it (ConfigurationDirectory= does not
		// chown it).
		{Source: src("configs/example.yaml"), Destination: configPath, Type: files.TypeConfigNoReplace, FileInfo: mode(0o644)},
		{Source: src("configs/example.yaml"), Destination: docDir + "/example.yaml", FileInfo: mode(0o644)},
		{Source: src("README.md"), Destination: docDir + "/README.md", FileInfo: mode(0o644)},
		{Source: src("deploy/prometheus/pbirefresh.rules.yml"), Destination: shareDir + "/prometheus/pbirefresh.rules.yml", FileInfo: mode(0o644)},
		{Source: src("deploy/grafana/pbirefresh-dashboard.json"), Destination: shareDir + "/grafana/pbirefresh-dashboard.json", FileInfo: mode(0o644)},
		// Debian keeps the licence in the doc directory, RPM as %license.
		{Source: filepath.Join(stage, "copyright"), Destination: docDir + "/copyright", FileInfo: mode(0o644), Packager: "deb"},
		{Source: filepath.Join(stage, "copyright"), Destination: licenseDir + "/LICENSE", Type: files.TypeRPMLicense, FileInfo: mode(0o644), Packager: "rpm"},
	}
	// The package owns its directories, so removing it removes them (RPM
	// only removes directories it owns).
	for _, dir := range []string{"/etc/pbirefresh", docDir, shareDir, shareDir + "/prometheus", shareDir + "/grafana"} {
		contents = append(contents, &files.Content{Destination: dir, Type: files.TypeDir, FileInfo: mode(0o755)})
	}
	contents = append(contents, &files.Content{Destination: licenseDir, Type: files.TypeDir, FileInfo: mode(0o755), Packager: "rpm"})

	scripts := func(file string) string { return src("deploy/package/scripts/" + file) }
	return &nfpm.Info{
		Name:            name,
		Arch:            arch,
		Platform:        "linux",
		Version:         version,
		Section:         "admin",
		Maintainer:      maintainer,
		Description:     description,
		Vendor:          name,
		Homepage:        homepage,
		License:         license,
		DisableGlobbing: true, // sources are paths, not patterns
		MTime:           mtime,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: scripts("postinstall.sh"),
				PreRemove:   scripts("preremove.sh"),
				PostRemove:  scripts("postremove.sh"),
			},
			Deb: nfpm.Deb{Compression: "xz"},
			RPM: nfpm.RPM{Compression: "xz", Summary: strings.SplitN(description, "\n", 2)[0]},
		},
	}
}

// writePackage writes one package, under its conventional name, into out.
func writePackage(format string, info *nfpm.Info, out string) (string, error) {
	packager, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	dst := filepath.Join(out, packager.ConventionalFileName(info))
	tmp, err := os.CreateTemp(out, ".package-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // after the rename there is nothing to remove
	if err := packager.Package(info, tmp); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return dst, os.Rename(tmp.Name(), dst)
}

// buildBinary builds the static binary the way the README does, with the
// version in main.version (cmd/pbirefresh/version.go).
func buildBinary(ctx context.Context, root, version, dst string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", dst, "./cmd/pbirefresh")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/pbirefresh: %w\n%s", err, out)
	}
	return nil
}

// checkBinary refuses what would not run on every amd64 Linux: another
// architecture, or a binary that needs a dynamic loader.
func checkBinary(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w", path, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("binary %s is %v %v, want x86-64", path, f.Class, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("binary %s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// execStart is the unit's ExecStart= line and the program it runs.
var execStart = regexp.MustCompile(`(?m)^ExecStart=(\S+)`)

// packagedUnit points the unit's ExecStart at the packaged binary.
func packagedUnit(unit []byte) ([]byte, error) {
	m := execStart.FindAllSubmatchIndex(unit, -1)
	if len(m) != 1 {
		return nil, fmt.Errorf("%d ExecStart= lines, want 1", len(m))
	}
	from, to := m[0][2], m[0][3]
	if prog := string(unit[from:to]); filepath.Base(prog) != name {
		return nil, fmt.Errorf("ExecStart= runs %s, not pbirefresh", prog)
	}
	return bytes.Join([][]byte{unit[:from], []byte(binPath), unit[to:]}, nil), nil
}

// licenses maps a LICENSE file's first line to its SPDX identifier.
var licenses = map[string]string{
	"MIT License":                       "MIT",
	"Apache License":                    "Apache-2.0",
	"BSD 3-Clause License":              "BSD-3-Clause",
	"GNU AFFERO GENERAL PUBLIC LICENSE": "AGPL-3.0-only",
}

// licensing returns the License field and the copyright file: the
// repository's LICENSE if it has one, else licenseName.
func licensing(root string) (license string, copyright []byte, err error) {
	text, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		license, text = licenseName, []byte("All rights reserved.")
	case err != nil:
		return "", nil, err
	default:
		first, _, _ := strings.Cut(strings.TrimSpace(string(text)), "\n")
		if license = licenses[strings.TrimSpace(first)]; license == "" {
			return "", nil, fmt.Errorf("LICENSE starts with %q: add its SPDX identifier to the licenses table in deploy/package/main.go", first)
		}
	}
	// Debian's machine-readable format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
	var b strings.Builder
	fmt.Fprintf(&b, "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: %s\nSource: %s\n\nFiles: *\nCopyright: the pbirefresh authors\nLicense: %s\n", name, homepage, license)
	for line := range strings.Lines(strings.TrimSpace(string(text))) {
		line = strings.TrimRight(line, " \t\r\n")
		if line == "" {
			line = "."
		}
		b.WriteString(" " + line + "\n")
	}
	return license, []byte(b.String()), nil
}

// moduleRoot is the repository's root: the nearest directory upwards whose
// go.mod declares this module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module "+module+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory: run this inside the repository", module)
		}
		dir = parent
	}
}
