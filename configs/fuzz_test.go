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
	f.Add([]byte(chainHead + job("a", ", after: [c]") + job("b", ", after: [a, a]") + job("c", ", after: [b], on_upstream: skip")))
	f.Add([]byte(chainHead + "  - {name: d, credential: c, workspace: W, dataflow_id: 44444444-4444-4444-4444-444444444444, after: [d]}\n"))
	f.Add([]byte(pgState("postgres://u@127.0.0.1,db.example.com/x?sslmode=require&password=p")))
	f.Add([]byte(pgState("postgres://u:p@[::1]:5432/x?host=/tmp&sslmode=verify-full&ssl=true")))
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
			if j.Target() == "" || (j.WorkspaceID == "") == (j.Workspace == "") {
				t.Fatalf("job %q has no single target: %+v", j.Name, j)
			}
		}
		// A valid config's after links name known jobs and make no cycle.
		state := map[string]int{}
		var visit func(name string, depth int)
		visit = func(name string, depth int) {
			j := cfg.Job(name)
			if j == nil || depth > len(cfg.Jobs) {
				t.Fatalf("after names %q, unknown or in a cycle", name)
			}
			if state[name] == 2 {
				return
			}
			state[name] = 1
			for _, up := range j.After {
				if state[up] == 1 {
					t.Fatalf("cycle through %q accepted", up)
				}
				visit(up, depth+1)
			}
			state[name] = 2
		}
		for _, j := range cfg.Jobs {
			visit(j.Name, 0)
		}
	})
}
