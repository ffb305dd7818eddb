package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	rulesPath     = "prometheus/pbirefresh.rules.yml"
	rulesTestPath = "prometheus/pbirefresh.rules.test.yml"
)

// The alerts operators rely on; renaming one breaks their silences and routes.
var wantAlerts = []string{
	"PbirefreshDown", "PbirefreshNotReady", "PbirefreshJobStale", "PbirefreshJobFailing",
	"PbirefreshThrottled", "PbirefreshTokenFailures", "PbirefreshKeyVaultFailures",
	"PbirefreshRefreshLost", "PbirefreshLeaseLost", "PbirefreshNoLeaseHolder",
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func readAlerts(t *testing.T) []alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(rulesFile))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", rulesPath, err)
	}
	var alerts []alertRule
	for _, g := range f.Groups {
		alerts = append(alerts, g.Rules...)
	}
	return alerts
}

// TestRulesPromtool: promtool accepts the rules and their unit tests pass.
func TestRulesPromtool(t *testing.T) {
	promtool := need(t, "promtool")
	for _, args := range [][]string{{"check", "rules", rulesPath}, {"test", "rules", rulesTestPath}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s: %s", strings.Join(args, " "), strings.Join(strings.Fields(string(out)), " "))
	}
}

// TestRulesAnnotations: each alert says how bad it is, what happened and
// what to run.
func TestRulesAnnotations(t *testing.T) {
	var names []string
	for _, a := range readAlerts(t) {
		names = append(names, a.Alert)
		if a.Alert == "" {
			t.Errorf("a rule without alert: %q", a.Expr)
			continue
		}
		if s := a.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", a.Alert, s)
		}
		for _, k := range []string{"summary", "description", "runbook"} {
			if strings.TrimSpace(a.Annotations[k]) == "" {
				t.Errorf("%s: no %s annotation", a.Alert, k)
			}
		}
		rb := a.Annotations["runbook"]
		if !strings.Contains(rb, "pbirefresh doctor --config /etc/pbirefresh/pbirefresh.yaml") && !strings.Contains(rb, `README section "Troubleshooting"`) {
			t.Errorf("%s: the runbook names neither pbirefresh doctor nor the README's Troubleshooting: %q", a.Alert, rb)
		}
		// An alert about one job points doctor at that job.
		if strings.Contains(a.Annotations["summary"], "$labels.job") && !strings.Contains(rb, "--job {{ $labels.job }}") {
			t.Errorf("%s: a per-job alert whose runbook does not run doctor --job {{ $labels.job }}", a.Alert)
		}
	}
	for _, want := range wantAlerts {
		if !slices.Contains(names, want) {
			t.Errorf("alert %s missing", want)
		}
	}
	if readme, err := os.ReadFile("../README.md"); err == nil && !strings.Contains(string(readme), "### Troubleshooting") {
		t.Error(`the runbooks point at the README section "Troubleshooting", which is gone`)
	}
}

// TestRulesEveryAlertTested: the promtool tests fire every alert at least
// once and hold every alert silent at least once.
func TestRulesEveryAlertTested(t *testing.T) {
	b, err := os.ReadFile(rulesTestPath)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTests []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesTestPath, err)
	}
	if !slices.Equal(f.RuleFiles, []string{"pbirefresh.rules.yml"}) {
		t.Errorf("rule_files: %q", f.RuleFiles)
	}
	fires, silent := map[string]int{}, map[string]int{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname]++
			} else {
				silent[a.Alertname]++
			}
		}
	}
	known := map[string]bool{}
	for _, a := range readAlerts(t) {
		known[a.Alert] = true
		if fires[a.Alert] == 0 {
			t.Errorf("%s: no test fires it", a.Alert)
		}
		if silent[a.Alert] == 0 {
			t.Errorf("%s: no test holds it silent", a.Alert)
		}
	}
	for name := range fires {
		if !known[name] {
			t.Errorf("the tests expect %s, which no rule defines", name)
		}
	}
}
