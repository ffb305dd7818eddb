package configs

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.err from the current messages")

// TestLoadBadConfigs pairs every testdata/*.yaml with its exact error text
// in testdata/*.err.
func TestLoadBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) < 5 {
		t.Fatalf("only %d bad configs", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatal("loaded without error")
			}
			errFile := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				os.WriteFile(errFile, []byte(err.Error()+"\n"), 0o644)
			}
			want, rerr := os.ReadFile(errFile)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if got := err.Error() + "\n"; got != string(want) {
				t.Fatalf("error text differs\n got: %s\nwant: %s", got, want)
			}
			// Every line names the file and a line:col, and carries a fix.
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, f+":") || !strings.Contains(line, "; ") {
					t.Errorf("line without position or fix: %q", line)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatal("the error echoes a secret value")
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Hint() == "" {
				t.Errorf("no hint in %v", err)
			}
		})
	}
}

func TestExampleDocumentsEveryKey(t *testing.T) {
	cfg, err := Load("example.yaml")
	if err == nil || !strings.Contains(err.Error(), "cannot read ca_file") && !strings.Contains(err.Error(), "") {
		t.Logf("example: %v", err)
	}
	// example.yaml names /etc/pbirefresh/app.pem and no CA file; it must
	// load cleanly.
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Jobs) != 2 || len(cfg.Credentials) != 3 {
		t.Fatalf("jobs %d credentials %d", len(cfg.Jobs), len(cfg.Credentials))
	}
	j := cfg.Job("sales-nightly")
	if j.Effective.Timeout.D() != 3*time.Hour || j.Effective.OnTimeout != "leave" || j.Effective.WhenBusy != "skip" || j.Effective.Poll.MinInterval.D() != 10*time.Second {
		t.Errorf("overrides not applied: %+v", j.Effective)
	}
	if j2 := cfg.Job("team-classic"); j2.Effective.Timeout.D() != 2*time.Hour || j2.Effective.WhenBusy != "wait" || j2.Refresh != nil {
		t.Errorf("defaults not applied: %+v", j2.Effective)
	}
	if cfg.Endpoints.PowerBIAPI != "https://api.powerbi.com" || !cfg.Endpoints.InstanceDiscovery || !*cfg.Endpoints.KeyVaultChallengeVerification {
		t.Errorf("endpoints: %+v", cfg.Endpoints)
	}
	if ref := cfg.Credentials["reporting"].ClientSecret.Ref(); ref != "https://contoso.vault.azure.net/secrets/pbi-secret" {
		t.Errorf("ref %q", ref)
	}
	// Every key the types know appears in example.yaml.
	b, _ := os.ReadFile("example.yaml")
	for _, key := range yamlKeys(Config{}) {
		if !strings.Contains(string(b), key+":") {
			t.Errorf("example.yaml does not document %q", key)
		}
	}
}

func TestDemoLoads(t *testing.T) {
	cfg, err := Load("demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cloud != "emulator" || *cfg.Endpoints.KeyVaultChallengeVerification || !cfg.Credentials["demo"].ClientSecret.EmulatorVault() {
		t.Fatalf("demo: %+v", cfg.Endpoints)
	}
}

func TestClouds(t *testing.T) {
	for name, want := range Clouds {
		cfg, err := Parse("c.yaml", []byte("cloud: "+name+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Endpoints.PowerBIAPI != want.PowerBIAPI || cfg.Endpoints.PowerBIScope != want.PowerBIScope || !cfg.Endpoints.InstanceDiscovery {
			t.Errorf("%s: %+v", name, cfg.Endpoints)
		}
	}
	cfg, err := Parse("c.yaml", []byte("cloud: custom\nendpoints: {authority_host: https://127.0.0.1:8443/, powerbi_api: https://127.0.0.1:8443, powerbi_scope: https://analysis.windows.net/powerbi/api/.default}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Endpoints.InstanceDiscovery || cfg.Endpoints.AuthorityHost != "https://127.0.0.1:8443" {
		t.Errorf("custom: %+v", cfg.Endpoints)
	}
}
