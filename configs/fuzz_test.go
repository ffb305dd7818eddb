package configs

import (
	"os"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, name := range []string{"example.yaml", "demo.yaml", "testdata/many-problems.yaml", "testdata/unknown-key.yaml", "testdata/inline-secret.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("jobs: [{name: a, refresh: {max_parallelism: -1, objects: [{}]}}]\n"))
	f.Add([]byte("credentials: {c: {client_secret: x}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse("fuzz.yaml", b)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml") {
					t.Fatalf("error line without the file name: %q", line)
				}
			}
			return
		}
		// A valid config has everything resolved.
		for _, j := range cfg.Jobs {
			if j.Effective.Timeout == 0 || j.Effective.OnTimeout == "" || j.Effective.WhenBusy == "" || j.Effective.Poll.MinInterval == 0 {
				t.Fatalf("job %q has unresolved settings: %+v", j.Name, j.Effective)
			}
			if _, ok := cfg.Credentials[j.Credential]; !ok {
				t.Fatalf("job %q names a missing credential", j.Name)
			}
		}
	})
}
