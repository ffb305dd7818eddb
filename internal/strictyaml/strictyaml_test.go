package strictyaml

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type job struct {
	Name    string   `yaml:"name"`
	Timeout Duration `yaml:"timeout"`
	Count   int      `yaml:"count"`
}

type doc struct {
	Cloud string `yaml:"cloud"`
	Jobs  []job  `yaml:"jobs"`
}

func decode(t *testing.T, text string) error {
	t.Helper()
	f := &File{Name: "f.yaml", Data: []byte(text), Example: "example.yaml"}
	var d doc
	return f.Decode(&d)
}

func TestDecodeReportsEachProblemAtItsPlace(t *testing.T) {
	cases := []struct{ name, text, want string }{
		{"empty", "", "f.yaml: the file has no YAML content"},
		{"comments only", "# nothing\n", "f.yaml: the file has no YAML content"},
		{"document marker alone", "---\n", "f.yaml: the file has no YAML content"},
		{"null", "null\n", "f.yaml: the file has no YAML content"},
		{"second document", "cloud: a\n---\ncloud: b\n", "f.yaml:2: a second YAML document starts here"},
		{"unknown key", "cloud: a\njobs:\n  - name: x\n    shedule: y\n", `f.yaml:4:5: unknown key "shedule"; remove it or correct its spelling (example.yaml lists every key)`},
		{"duplicate key", "cloud: a\ncloud: b\n", `f.yaml:2:1: key "cloud" is written twice (first at line 1)`},
		{"syntax on line 2, parser blames line 1", "cloud: x\n- a\n", "f.yaml:2: did not find expected key"},
		{"syntax on line 3", "jobs:\n  - name: a\n bad: 2\n", "f.yaml:3: "},
		{"unclosed bracket", "cloud: [a,\njobs: 2\n", "f.yaml:2: "},
		{"tab", "cloud: x\n\tjobs: y\n", "f.yaml:2: found a tab character"},
		{"tab on line 1", "\tcloud: x\n", "f.yaml:1: found character that cannot start any token"},
		{"bad duration", "jobs:\n  - timeout: soon\n", `f.yaml:2:14: "soon" is not a duration; write durations like 30s, 5m or 2h`},
		{"negative duration", "jobs:\n  - timeout: -1s\n", `f.yaml:2:14: duration "-1s" is negative`},
		{"type mismatch", "jobs:\n  - count: many\n", "f.yaml:2:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := decode(t, c.text)
			if err == nil {
				t.Fatal("decoded without error")
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("got  %q\nwant prefix %q", err, c.want)
			}
			var p *Problem
			if !errors.As(err, &p) || p.Hint() == "" {
				t.Fatalf("no problem with a fix in %v", err)
			}
		})
	}
}

func TestDecodeReportsEveryValueProblemAtOnce(t *testing.T) {
	err := decode(t, "jobs:\n  - timeout: x\n  - timeout: y\n  - count: z\n")
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "f.yaml:2:") || !strings.HasPrefix(lines[1], "f.yaml:3:") || !strings.HasPrefix(lines[2], "f.yaml:4:") {
		t.Fatalf("want three problems in line order, got:\n%v", err)
	}
}

func TestDecodeValid(t *testing.T) {
	f := &File{Name: "f.yaml", Data: []byte("cloud: a\njobs:\n  - name: x\n    timeout: 90s\n")}
	var d doc
	if err := f.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.Jobs[0].Timeout.D() != 90*time.Second || f.root != nil {
		t.Fatalf("%+v; node tree built without need: %v", d, f.root != nil)
	}
	if p := f.Pos("jobs[0].timeout"); p != (Pos{4, 14}) {
		t.Fatalf("pos %v", p)
	}
	if p := f.Pos("jobs[0].nothing.deeper"); p != (Pos{3, 5}) {
		t.Fatalf("parent pos %v", p)
	}
}

func TestProblemsSortAndCap(t *testing.T) {
	var ps Problems
	for i := 2*MaxProblems - 1; i >= 0; i-- {
		ps = append(ps, &Problem{File: "f", Pos: Pos{i + 1, 1}, Msg: "m", Fix: "x"})
	}
	err := ps.Err()
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != MaxProblems+1 || !strings.HasPrefix(lines[0], "f:1:1:") || !strings.Contains(lines[MaxProblems], "and 100 more problems") {
		t.Fatalf("%d lines, first %q last %q", len(lines), lines[0], lines[len(lines)-1])
	}
	if (Problems{}).Err() != nil {
		t.Fatal("no problems is not nil")
	}
}

func TestQuoteCutsLongValues(t *testing.T) {
	long := strings.Repeat("é", 1<<20)
	q := Quote(long)
	if len(q) > 120 || !strings.Contains(q, "(2097152 bytes)") {
		t.Fatalf("%d bytes: %.100s", len(q), q)
	}
	if Quote("ok") != `"ok"` {
		t.Fatal(Quote("ok"))
	}
}
