package configs

import (
	"strings"
	"testing"
)

const chainHead = `
credentials: {c: {tenant_id: 00000000-0000-0000-0000-000000000000, client_id: 11111111-1111-1111-1111-111111111111, client_secret: {env: S}}}
jobs:
`

func job(name, extra string) string {
	return "  - {name: " + name + ", credential: c, workspace_id: 22222222-2222-2222-2222-222222222222, dataset_id: 33333333-3333-3333-3333-333333333333" + extra + "}\n"
}

func TestCycleRefusedWithItsPath(t *testing.T) {
	body := chainHead +
		job("a", ", after: [c]") + // line 4
		job("b", ", after: [a]") + // line 5
		job("c", ", after: [b]") + // line 6
		job("d", ", after: [a]") // not in the cycle
	_, err := Parse("chain.yaml", []byte(body))
	if err == nil {
		t.Fatal("a cycle was accepted")
	}
	msg := err.Error()
	if strings.Count(msg, "makes a cycle") != 1 {
		t.Fatalf("want the cycle once, got:\n%s", msg)
	}
	for _, want := range []string{"a -> c -> b -> a", "a at line 4", "c at line 6", "b at line 5", "remove one of the after links"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}

func TestAfterProblems(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"self", job("a", ", after: [a]"), "job is after itself; remove it"},
		{"unknown", job("a", ", after: [zz]"), `after names unknown job "zz"; name a job of this configuration (a)`},
		{"twice", job("a", "") + job("b", ", after: [a, a]"), `after names "a" twice`},
		{"policy without after", job("a", ", on_upstream: skip"), "on_upstream without after"},
		{"bad policy", job("a", "") + job("b", ", after: [a], on_upstream: maybe"), `unknown on_upstream "maybe"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("chain.yaml", []byte(chainHead+tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
		})
	}
}

func TestTargets(t *testing.T) {
	const ws = "workspace_id: 22222222-2222-2222-2222-222222222222"
	for _, tc := range []struct{ name, job, want string }{
		{"names", "workspace: Sales, dataset: Sales Model", ""},
		{"dataflow", ws + ", dataflow_id: 44444444-4444-4444-4444-444444444444, notify_option: MailOnFailure", ""},
		{"both workspaces", ws + ", workspace: Sales, dataset: M", "workspace_id and workspace are both set"},
		{"two targets", ws + ", dataset: M, dataflow_id: 44444444-4444-4444-4444-444444444444", "names 2 things to refresh"},
		{"no target", ws, "dataset_id \"\" is not a GUID"},
		{"dataflow mail on completion", ws + ", dataflow_id: 44444444-4444-4444-4444-444444444444, notify_option: MailOnCompletion", "a dataflow takes NoNotification or MailOnFailure"},
		{"dataflow enhanced", ws + ", dataflow_id: 44444444-4444-4444-4444-444444444444, refresh: {type: full}", "a dataflow has no enhanced refresh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := chainHead + "  - {name: j, credential: c, " + tc.job + "}\n"
			cfg, err := Parse("t.yaml", []byte(body))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Jobs[0].Target() == "" {
					t.Error("no target")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
		})
	}
}
