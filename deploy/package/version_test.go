package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestVersions(t *testing.T) {
	for _, tc := range []struct{ describe, want string }{
		{"v1.2.0", "v1.2.0"},
		{"v1.2.0-3-gabc1234", "v1.2.0+3.gabc1234"},
		{"v1.2.0-rc.1-12-g0123456789ab", "v1.2.0-rc.1+12.g0123456789ab"},
		{"1.2.0+build.5-3-gabc1234", "1.2.0+build.5.3.gabc1234"},
	} {
		got := versionFromDescribe(tc.describe)
		if got != tc.want || checkVersion(got) != nil {
			t.Errorf("versionFromDescribe(%q) = %q (%v), want %q", tc.describe, got, checkVersion(got), tc.want)
		}
	}
	for _, ok := range []string{devVersion, "1.0.0", "v10.20.30", "1.0.0-rc.1", "1.0.0-rc-1", "1.0.0+3.gabc"} {
		if err := checkVersion(ok); err != nil {
			t.Errorf("checkVersion(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1.2", "release-7", "1.0.0 beta", "01.0.0", "1.0.0+a-b", "1.0.0_1"} {
		if checkVersion(bad) == nil {
			t.Errorf("checkVersion(%q) accepted", bad)
		}
	}
}

// TestGitVersion: no tag gives the development version; a tag, itself;
// commits after it, build metadata.
func TestGitVersion(t *testing.T) {
	git := need(t, "git")
	dir := t.TempDir()
	env := []string{"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com"}
	g := func(args ...string) string { return strings.TrimSpace(command(t, dir, env, git, args...)) }
	ctx := context.Background()
	version := func() string {
		t.Helper()
		for _, e := range env {
			k, v, _ := strings.Cut(e, "=")
			t.Setenv(k, v)
		}
		v, err := gitVersion(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := version(); v != devVersion { // not even a repository
		t.Errorf("outside git: %q", v)
	}
	g("init", "-q")
	g("commit", "-q", "--allow-empty", "-m", "one")
	if v := version(); v != devVersion {
		t.Errorf("no tag: %q", v)
	}
	g("tag", "v1.2.0")
	if v := version(); v != "v1.2.0" {
		t.Errorf("on the tag: %q", v)
	}
	g("commit", "-q", "--allow-empty", "-m", "two")
	if v, want := version(), fmt.Sprintf("v1.2.0+1.g%s", g("rev-parse", "--short", "HEAD")); v != want {
		t.Errorf("after the tag: %q, want %q", v, want)
	}
	g("tag", "release-7")
	if v, err := gitVersion(ctx, dir); err == nil {
		t.Errorf("a tag that is no version gave %q", v)
	}
}
