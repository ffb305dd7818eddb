package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// semver is the version form accepted: nfpm splits it into the parts that
// dpkg and rpm order (1.2.0-rc.1 becomes 1.2.0~rc.1, before 1.2.0).
var semver = regexp.MustCompile(`^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.]+)?$`)

func checkVersion(v string) error {
	if !semver.MatchString(v) {
		return fmt.Errorf("version %q: want a semantic version such as 1.2.0, v1.2.0-rc.1 or 1.2.0+3.gabc1234", v)
	}
	return nil
}

// describe is `git describe --tags` past a tag: TAG-COMMITS-gHASH.
var describe = regexp.MustCompile(`^(.+)-([0-9]+)-g([0-9a-f]+)$`)

// gitVersion is the version from `git describe --tags`, or devVersion when
// no tag is reachable (or git is missing).
func gitVersion(ctx context.Context, root string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", "describe", "--tags")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return devVersion, nil
	}
	v := versionFromDescribe(strings.TrimSpace(string(out)))
	if err := checkVersion(v); err != nil {
		return "", fmt.Errorf("git describe --tags: %w; pass --version", err)
	}
	return v, nil
}

// versionFromDescribe turns commits past a tag into build metadata, which
// orders after the tag: v1.2.0-3-gabc1234 becomes v1.2.0+3.gabc1234.
func versionFromDescribe(d string) string {
	m := describe.FindStringSubmatch(d)
	if m == nil {
		return d
	}
	sep := "+"
	if strings.Contains(m[1], "+") {
		sep = "."
	}
	return m[1] + sep + m[2] + ".g" + m[3]
}

// sourceDate is the time stamped on the packaged files: SOURCE_DATE_EPOCH
// (which nfpm reads itself), else the last commit's, so that one commit
// gives the same packages; zero (now) outside git.
func sourceDate(ctx context.Context, root string) time.Time {
	if os.Getenv("SOURCE_DATE_EPOCH") != "" {
		return time.Time{}
	}
	cmd := exec.CommandContext(ctx, "git", "log", "-1", "--format=%ct")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return time.Time{}
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}
