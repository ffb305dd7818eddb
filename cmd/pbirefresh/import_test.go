package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/refresh"
)

// The import tests run against testdata/import/scenario.yaml: workspace
// "Finance EMEA" (dedicated) holds datasets with Power BI schedules in
// several zones, two named "Campaigns", one owned by a user, one paused,
// one without a schedule, one not refreshable; "Bob's Team" is on shared
// capacity; "Équipe Données" and "Untouched" hold one dataset each.
const (
	importSecret  = "import-test-secret"
	financeEMEA   = "c0ffee00-0000-4000-8000-000000000601"
	ledgerDS      = "c0ffee00-0000-4000-8000-000000000701"
	budgetDS      = "c0ffee00-0000-4000-8000-000000000702"
	campaignsA    = "c0ffee00-0000-4000-8000-000000000703"
	campaignsB    = "c0ffee00-0000-4000-8000-000000000704"
	aliceDS       = "c0ffee00-0000-4000-8000-000000000705"
	pausedDS      = "c0ffee00-0000-4000-8000-000000000706"
	handWrittenDS = "c0ffee00-0000-4000-8000-000000000709"
	weeklyDS      = "c0ffee00-0000-4000-8000-000000000711"
	previsionsDS  = "c0ffee00-0000-4000-8000-000000000721"
	untouchedDS   = "c0ffee00-0000-4000-8000-000000000731"
)

var importEnv = []string{"PBI_IMPORT_SECRET=" + importSecret}

func importScenario(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("testdata/import/scenario.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// importBase writes a configuration with the credential only (and
// whatever extra holds), against the in-process emulator.
func importBase(t *testing.T, dir, extra string) string {
	t.Helper()
	p := filepath.Join(dir, "base.yaml")
	text := `# pbirefresh for the finance team.
cloud: emulator            # the built-in emulator
emulator:
  scenario: ` + importScenario(t) + `

credentials:
  svc:                     # the app registration
    tenant_id: c0ffee00-0000-4000-8000-000000000001
    client_id: c0ffee00-0000-4000-8000-0000000000a1
    client_secret: {env: PBI_IMPORT_SECRET}

defaults:
  timeout: 30m
` + extra
	if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// builtinInstants lists the first n instants after from at which a
// schedule of days × times fires in zone, by the calendar: the expected
// answer, worked out without cron. The times must not fall in an hour that
// a change of clocks skips or repeats.
func builtinInstants(t *testing.T, days []time.Weekday, times []string, zone string, from time.Time, n int) []string {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	day := from.In(loc)
	for len(out) < n {
		if slices.Contains(days, day.Weekday()) {
			for _, hm := range times {
				at, err := time.ParseInLocation("2006-01-02 15:04", day.Format("2006-01-02")+" "+hm, loc)
				if err != nil {
					t.Fatal(err)
				}
				if at.After(from) && len(out) < n {
					out = append(out, at.Format(time.RFC3339))
				}
			}
		}
		day = time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc)
	}
	return out
}

// nextFor runs `pbirefresh next` and returns the first n instants of the
// given jobs, in order.
func nextFor(t *testing.T, config, from string, n int, jobs ...string) []string {
	t.Helper()
	r := runBinary(t, nil, "next", "--config", config, "--from", from, "--count", "20")
	if r.code != 0 {
		t.Fatalf("next: %+v", r)
	}
	var out []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && slices.Contains(jobs, f[1]) && len(out) < n {
			out = append(out, f[0])
		}
	}
	return out
}

// TestImportRoundTrip: Power BI schedules in the emulator become jobs;
// the configuration passes validate; next lists the instants the Power BI
// schedules fire at, across a change of clocks in two zones.
func TestImportRoundTrip(t *testing.T) {
	dir := t.TempDir()
	base := importBase(t, dir, "# the jobs follow\n")
	out := filepath.Join(dir, "pbirefresh.yaml")
	r := runBinary(t, importEnv, "import", "--config", base, "--credential", "svc",
		"--workspace", "finance emea", "--workspace", "Bob's Team", "--workspace", "Équipe Données", "--out", out)
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("import: %+v", r)
	}
	text := readFile(t, out)
	if strings.Contains(r.stderr+text, importSecret) {
		t.Fatal("the secret was printed")
	}

	// The input is kept line for line, comments included; jobs follow.
	in := strings.Split(strings.TrimSpace(readFile(t, base)), "\n")
	if got := strings.Split(text, "\n"); !slices.Equal(got[:len(in)], in) {
		t.Fatalf("the input's lines were changed:\n%s", text)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v %v, want the input's 0640", fi.Mode(), err)
	}

	var doc struct {
		Jobs []map[string]any `yaml:"jobs"`
	}
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]any{}
	var names []string
	for _, j := range doc.Jobs {
		names = append(names, j["name"].(string))
		got[j["name"].(string)] = j
	}
	want := []string{"budget", "campaigns", "campaigns-2", "hand-written", "ledger-00", "ledger-30", "owned-by-alice", "paused", "weekly-sales", "previsions-ete"}
	if !slices.Equal(names, want) {
		t.Fatalf("jobs %q, want %q", names, want)
	}
	for _, tc := range []struct {
		job, schedule, zone, dataset string
	}{
		{"ledger-00", "0 5 * * 1-5", "Europe/Berlin", ledgerDS},
		{"ledger-30", "30 17 * * 1-5", "Europe/Berlin", ledgerDS},
		{"budget", "0 6,18 * * *", "America/Los_Angeles", budgetDS},
		{"campaigns", "0 7 * * 1", "UTC", campaignsA},
		{"campaigns-2", "0 7 * * 2", "UTC", campaignsB},
		{"owned-by-alice", "0 8 * * 3", "Europe/London", aliceDS},
		{"weekly-sales", "0 6,9,12,15,18 * * *", "America/Los_Angeles", weeklyDS},
		{"previsions-ete", "30 23 * * *", "Asia/Tokyo", previsionsDS},
	} {
		j := got[tc.job]
		if j["schedule"] != tc.schedule || j["timezone"] != tc.zone || j["dataset_id"] != tc.dataset || j["credential"] != "svc" || j["enabled"] != nil {
			t.Errorf("job %s: %v", tc.job, j)
		}
	}
	if got["paused"]["enabled"] != false {
		t.Errorf("paused: %v", got["paused"])
	}
	for _, s := range []string{
		`# Workspace "Finance EMEA", dataset "Ledger": Power BI schedule Monday-Friday at 05:00, 17:30 (W. Europe Standard Time)`,
		`# Workspace "Finance EMEA", dataset "Campaigns" (` + campaignsB + `): Power BI schedule Tuesday at 07:00 (UTC)`,
		`# Workspace "Bob's Team", dataset "Weekly Sales"`,
		`# Workspace "Équipe Données", dataset "Prévisions Été": Power BI schedule every day at 23:30 (Tokyo Standard Time)`,
	} {
		if !strings.Contains(text, s) {
			t.Errorf("no comment %s in\n%s", s, text)
		}
	}
	for _, s := range []string{
		`skipped   "Live": not refreshable`,
		`skipped   "No Schedule": no Power BI schedule`,
		`imported  "Campaigns" (` + campaignsA + `): campaigns "0 7 * * 1" (UTC)`,
		"10 jobs added; the configuration is in " + out,
		`Power BI's own schedules are still on`,
		"pbirefresh import --config " + out + " --credential svc --workspace " + financeEMEA,
		`warning: "Weekly Sales" in "Bob's Team" is on shared capacity`,
		"5 from Power BI's own schedule",
	} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}

	if r := runBinary(t, nil, "validate", "--config", out); r.code != 0 || !strings.Contains(r.stdout, "OK (10 jobs") {
		t.Fatalf("validate: %+v", r)
	}

	// Berlin moves from +01:00 to +02:00 on Sunday 2026-03-29.
	weekdays := []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
	from := "2026-03-26T00:00:00Z"
	gotLedger := nextFor(t, out, from, 8, "ledger-00", "ledger-30")
	wantLedger := builtinInstants(t, weekdays, []string{"05:00", "17:30"}, "Europe/Berlin", utc(from), 8)
	if !slices.Equal(gotLedger, wantLedger) || wantLedger[1] != "2026-03-26T17:30:00+01:00" || wantLedger[4] != "2026-03-30T05:00:00+02:00" {
		t.Errorf("ledger:\n got %q\nwant %q", gotLedger, wantLedger)
	}
	// Los Angeles moves from -08:00 to -07:00 on Sunday 2026-03-08.
	from = "2026-03-06T00:00:00-08:00"
	gotBudget := nextFor(t, out, from, 8, "budget")
	wantBudget := builtinInstants(t, []time.Weekday{0, 1, 2, 3, 4, 5, 6}, []string{"06:00", "18:00"}, "America/Los_Angeles", utc(from), 8)
	if !slices.Equal(gotBudget, wantBudget) || wantBudget[3] != "2026-03-07T18:00:00-08:00" || wantBudget[4] != "2026-03-08T06:00:00-07:00" {
		t.Errorf("budget:\n got %q\nwant %q", gotBudget, wantBudget)
	}

	// Imported again into its own output: nothing new, the file unchanged.
	before := readFile(t, out)
	r = runBinary(t, importEnv, "import", "--config", out, "--credential", "svc", "--workspace", financeEMEA, "--out", out)
	if r.code != 0 || readFile(t, out) != before || !strings.Contains(r.stderr, "present   \"Ledger\": already in the configuration as ledger-00, ledger-30") ||
		!strings.Contains(r.stderr, "is unchanged") {
		t.Fatalf("again: %+v", r)
	}
}

// TestImportDisableBuiltin runs the emulator as a process, so that its
// schedules can be read after each import: --disable-builtin turns off
// exactly the imported datasets' schedules, reports the one it may not
// change, and leaves every other dataset's schedule as it was.
func TestImportDisableBuiltin(t *testing.T) {
	dir := t.TempDir()
	url, ca, hc := emulatorProcessB(t, dir, importScenario(t))
	base := filepath.Join(dir, "base.yaml")
	os.WriteFile(base, []byte(`cloud: custom
endpoints: {authority_host: `+url+`, powerbi_api: `+url+`, powerbi_scope: "https://analysis.windows.net/powerbi/api/.default", keyvault_challenge_verification: false}
tls: {ca_file: `+ca+`}
credentials:
  svc:
    tenant_id: c0ffee00-0000-4000-8000-000000000001
    client_id: c0ffee00-0000-4000-8000-0000000000a1
    client_secret: {env: PBI_IMPORT_SECRET}
jobs:
  # written by hand before the import
  - name: mine
    schedule: "0 3 * * *"
    credential: svc
    workspace_id: `+financeEMEA+`
    dataset_id: `+handWrittenDS+`
`), 0o600)
	enabled := func(id string) bool {
		res, err := hc.Get(url + "/_emulator/datasets/" + id + "/schedule")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var s struct {
			Enabled bool `json:"enabled"`
		}
		if err := json.NewDecoder(res.Body).Decode(&s); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("schedule of %s: %d %v", id, res.StatusCode, err)
		}
		return s.Enabled
	}
	patched := func() []string {
		res, err := hc.Get(url + "/_emulator/requests")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var reqs []struct {
			Operation, Path string
		}
		b, _ := io.ReadAll(res.Body)
		if err := json.Unmarshal(b, &reqs); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range reqs {
			if r.Operation == "schedule.update" {
				ids = append(ids, regexp.MustCompile(`datasets/([^/]+)/`).FindStringSubmatch(r.Path)[1])
			}
		}
		slices.Sort(ids)
		return slices.Compact(ids)
	}

	out := filepath.Join(dir, "out.yaml")
	r := runBinary(t, importEnv, "import", "--config", base, "--credential", "svc", "--workspace", "Finance EMEA", "--workspace", "Bob's Team", "--out", out)
	if r.code != 0 || !strings.Contains(r.stderr, `skipped   "Hand Written": already refreshed by job mine on another schedule`) {
		t.Fatalf("import: %+v", r)
	}
	if ids := patched(); len(ids) != 0 {
		t.Fatalf("an import without --disable-builtin changed schedules: %q", ids)
	}
	written := readFile(t, out)

	// Again, on its own output, turning the schedules off.
	r = runBinary(t, importEnv, "import", "--config", out, "--credential", "svc", "--workspace", financeEMEA, "--workspace", "Bob's Team", "--out", out, "--disable-builtin")
	if r.code != 3 || readFile(t, out) != written {
		t.Fatalf("disable: %+v", r)
	}
	for _, s := range []string{
		`[ok]   "Ledger" in "Finance EMEA"`,
		`[ok]   "Budget" in "Finance EMEA"`,
		`[ok]   "Campaigns" (` + campaignsA + `) in "Finance EMEA"`,
		`[ok]   "Campaigns" (` + campaignsB + `) in "Finance EMEA"`,
		`[ok]   "Weekly Sales" in "Bob's Team"`,
		`[FAIL] "Owned By Alice" in "Finance EMEA": PATCH`,
		"fix: only the dataset's owner may change its refresh schedule",
		"the owner is alice@contoso.onmicrosoft.com",
		"pbirefresh: 1 of 6 Power BI schedules could not be turned off; the configuration is unchanged",
	} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "warning:") {
		t.Errorf("a quota warning with the built-in schedule off:\n%s", r.stderr)
	}
	// Only the imported datasets whose schedule was on were asked.
	if ids, want := patched(), []string{ledgerDS, budgetDS, campaignsA, campaignsB, aliceDS, weeklyDS}; !slices.Equal(ids, slices.Sorted(slices.Values(want))) {
		t.Errorf("PATCHed %q, want %q", ids, want)
	}
	for id, on := range map[string]bool{
		ledgerDS: false, budgetDS: false, campaignsA: false, campaignsB: false, weeklyDS: false, pausedDS: false,
		aliceDS:       true, // only its owner may
		handWrittenDS: true, // not imported: a hand-written job has it
		previsionsDS:  true, // its workspace was not named
		untouchedDS:   true,
	} {
		if enabled(id) != on {
			t.Errorf("dataset %s: enabled %v, want %v", id, !on, on)
		}
	}
}

func TestImportRefuses(t *testing.T) {
	dir := t.TempDir()
	base := importBase(t, dir, "")
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o600)
		return p
	}
	taken := write("taken.yaml", "# someone else's file\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no workspace", []string{"--config", base, "--credential", "svc"}, 2, []string{"--workspace"}},
		{"no credential", []string{"--config", base, "--workspace", "x"}, 2, []string{"--credential is required"}},
		{"unknown credential", []string{"--config", base, "--credential", "nope", "--workspace", "x"}, 2, []string{`no credential "nope"`, "credentials: svc"}},
		{"workspace not found", []string{"--config", base, "--credential", "svc", "--workspace", "Bob''s Team"}, 3,
			[]string{`no workspace named "Bob''s Team" is visible to this app`, "hint: add the service principal to the workspace"}},
		{"workspace id not visible", []string{"--config", base, "--credential", "svc", "--workspace", "c0ffee00-0000-4000-8000-000000000699"}, 3,
			[]string{"404", "hint: the workspace or dataset was not found for this app"}},
		{"out exists", []string{"--config", base, "--credential", "svc", "--workspace", "Untouched", "--out", taken}, 2, []string{"already exists", "hint: give a new file"}},
		{"another problem", []string{"--config", write("bad.yaml", "credentials:\n  svc: {tenant_id: nope, client_id: c0ffee00-0000-4000-8000-0000000000a1, client_secret: {env: X}}\n"), "--credential", "svc", "--workspace", "x"}, 2,
			[]string{`tenant_id "nope" is not a GUID`}},
		{"no credentials", []string{"--config", write("empty.yaml", "cloud: emulator\n"), "--credential", "svc", "--workspace", "x"}, 2, []string{"has no credentials"}},
		{"flow jobs", []string{"--config", write("flow.yaml", strings.Replace(readFile(t, base), "defaults:", "jobs: [{name: a, credential: svc, workspace_id: "+financeEMEA+", dataset_id: "+ledgerDS+"}]\ndefaults:", 1)), "--credential", "svc", "--workspace", "Untouched"}, 2,
			[]string{"write it as a block list"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBinary(t, importEnv, append([]string{"import"}, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d: %+v", r.code, tc.code, r)
			}
			for _, s := range tc.want {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
				}
			}
		})
	}
	if readFile(t, taken) != "# someone else's file\n" {
		t.Fatal("an existing --out was overwritten")
	}

	// Nothing to import from the demo's Team workspace: nothing written.
	demoBase := write("demo-base.yaml", `cloud: emulator
credentials:
  demo:
    tenant_id: c0ffee00-0000-4000-8000-000000000001
    client_id: c0ffee00-0000-4000-8000-0000000000a1
    client_secret: {keyvault: {secret_name: pbi-secret}}
`)
	out := filepath.Join(dir, "nothing.yaml")
	r := runBinary(t, nil, "import", "--config", demoBase, "--credential", "demo", "--workspace", "Team", "--out", out)
	if r.code != 3 || !strings.Contains(r.stderr, "nothing to import") {
		t.Fatalf("%+v", r)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a configuration without jobs was written")
	}
}

func TestImportInsertJobs(t *testing.T) {
	block := []string{"# Workspace \"W\", dataset \"D\"\n- name: d\n  schedule: \"0 5 * * *\"\n"}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"no jobs key", "cloud: public\n# end\n",
			"cloud: public\n# end\n\njobs:\n  # Workspace \"W\", dataset \"D\"\n  - name: d\n    schedule: \"0 5 * * *\"\n"},
		{"no final newline", "cloud: public",
			"cloud: public\n\njobs:\n  # Workspace \"W\", dataset \"D\"\n  - name: d\n    schedule: \"0 5 * * *\"\n"},
		{"empty jobs with a comment", "jobs:   # none yet\nstate: {path: x.db}\n",
			"jobs:  # none yet\n  # Workspace \"W\", dataset \"D\"\n  - name: d\n    schedule: \"0 5 * * *\"\nstate: {path: x.db}\n"},
		{"jobs: []", "jobs: []\nstate: {path: x.db}\n",
			"jobs:\n  # Workspace \"W\", dataset \"D\"\n  - name: d\n    schedule: \"0 5 * * *\"\nstate: {path: x.db}\n"},
		{"after the last job, before the next key's comment", "jobs:\n    - name: a   # first\n      schedule: \"@daily\"\n\n    # - name: old\n\n# the state\nstate: {path: x.db}\n",
			"jobs:\n    - name: a   # first\n      schedule: \"@daily\"\n\n    # - name: old\n    # Workspace \"W\", dataset \"D\"\n    - name: d\n      schedule: \"0 5 * * *\"\n\n# the state\nstate: {path: x.db}\n"},
		{"an indentless list at the end", "jobs:\n- name: a\n",
			"jobs:\n- name: a\n# Workspace \"W\", dataset \"D\"\n- name: d\n  schedule: \"0 5 * * *\"\n"},
		{"CRLF", "cloud: public\r\njobs:\r\n  - name: a\r\n",
			"cloud: public\r\njobs:\r\n  - name: a\r\n  # Workspace \"W\", dataset \"D\"\r\n  - name: d\r\n    schedule: \"0 5 * * *\"\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := insertJobs([]byte(tc.in), block)
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %v\n%s\nwant\n%s", err, got, tc.want)
			}
			var v map[string]any
			if err := yaml.Unmarshal(got, &v); err != nil {
				t.Fatal(err)
			}
			if jobs, _ := v["jobs"].([]any); len(jobs) == 0 || jobs[len(jobs)-1].(map[string]any)["name"] != "d" {
				t.Fatalf("jobs: %v", v["jobs"])
			}
		})
	}
	if _, err := insertJobs([]byte("jobs: [{name: a}]\n"), block); err == nil {
		t.Fatal("a flow list was taken")
	}
}

func TestImportJobNames(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"Sales Model", "sales-model"},
		{"  Sales -- Model (v2)! ", "sales-model-v2"},
		{"Prévisions Été", "previsions-ete"},
		{"Straße Ærø Œuvre", "strasse-aero-oeuvre"},
		{"Bob's Team", "bob-s-team"},
		{"売上", "dataset-c0ffee00"},
		{strings.Repeat("a", 120), strings.Repeat("a", 80)},
	} {
		if got := jobSlug(tc.name, "C0FFEE00-0000-4000-8000-000000000701"); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.name, got, tc.want)
		}
	}
	taken := map[string]bool{"campaigns": true}
	if a, b := unique("campaigns", taken), unique("campaigns", taken); a != "campaigns-2" || b != "campaigns-3" {
		t.Errorf("unique: %s %s", a, b)
	}
	for expr, want := range map[string]string{"0 5 * * 1-5": "00", "30 17 * * *": "30", "0,30 7 * * *": "00-30"} {
		if got := minuteSuffix(expr); got != want {
			t.Errorf("%s: %s", expr, got)
		}
	}
	for in, want := range map[string]string{"Sales": "Sales", "Bob's Team": `'Bob'\''s Team'`, "a b": "'a b'", "/tmp/x.yaml": "/tmp/x.yaml", "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestImportParseInput(t *testing.T) {
	cred := "credentials:\n  svc: {tenant_id: c0ffee00-0000-4000-8000-000000000001, client_id: c0ffee00-0000-4000-8000-0000000000a1, client_secret: {env: X}}\n"
	for _, in := range []string{cred, cred + "jobs:\n", cred + "jobs: []\n"} {
		cfg, err := parseImportInput("in.yaml", []byte(in))
		if err != nil || len(cfg.Jobs) != 0 || cfg.Credentials["svc"] == nil {
			t.Errorf("%q: %v %v", in, cfg, err)
		}
	}
	// A problem besides the missing jobs is reported as it is.
	_, err := parseImportInput("in.yaml", []byte(strings.Replace(cred, "env: X", "env: 'X Y'", 1)))
	if err == nil || !strings.Contains(err.Error(), `env "X Y" is not a variable name`) || strings.Contains(err.Error(), "no jobs") {
		t.Errorf("bad env name: %v", err)
	}
}

// TestImportToStdoutKeepsPowerBIsDST: with defaults that treat DST
// differently from Power BI, each imported job says how Power BI does it;
// without --out the configuration goes to stdout.
func TestImportToStdoutKeepsPowerBIsDST(t *testing.T) {
	dir := t.TempDir()
	base := importBase(t, dir, "  dst: {gap: skip, repeat: both}\n")
	r := runBinary(t, importEnv, "import", "--config", base, "--credential", "svc", "--workspace", "Untouched")
	if r.code != 0 || !strings.Contains(r.stderr, "1 job added; the configuration is on stdout") {
		t.Fatalf("%+v", r)
	}
	if !strings.Contains(r.stdout, "  - name: other\n") || !strings.Contains(r.stdout, "    dst: {gap: shift, repeat: first}") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	out := filepath.Join(dir, "out.yaml")
	os.WriteFile(out, []byte(r.stdout), 0o600)
	if r := runBinary(t, nil, "validate", "--config", out); r.code != 0 {
		t.Fatalf("validate: %+v", r)
	}
}

// TestImportKnowsJobsWrittenWithNames: a job that names its workspace or
// dataset instead of giving ids refreshes the same dataset as the one the
// import finds; the import recognises it (it added a second job).
func TestImportKnowsJobsWrittenWithNames(t *testing.T) {
	const ws, ds = "c0ffee00-0000-4000-8000-000000000101", "c0ffee00-0000-4000-8000-000000000201"
	for _, tc := range []struct{ name, refs string }{
		{"names", `workspace: "Sales BI", dataset: "sales model"`},
		{"workspace by name", `workspace: "sales bi", dataset_id: ` + ds},
		{"dataset by name", `workspace_id: ` + strings.ToUpper(ws) + `, dataset: "Sales Model"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			input := []byte(`credentials:
  c: {tenant_id: 00000000-0000-0000-0000-000000000000, client_id: 11111111-1111-1111-1111-111111111111, client_secret: {env: X}}
jobs:
  - {name: by-hand, schedule: "0 5 * * *", timezone: Europe/Amsterdam, credential: c, ` + tc.refs + `}
`)
			path := filepath.Join(t.TempDir(), "pbirefresh.yaml")
			os.WriteFile(path, input, 0o600)
			cfg, err := configs.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			found := func(exprs ...string) *importedDataset {
				return &importedDataset{ws: refresh.Workspace{ID: ws, Name: "Sales BI"}, ds: refresh.DatasetInfo{ID: ds, Name: "Sales Model"},
					exprs: exprs, zone: "Europe/Amsterdam"}
			}
			same, other := found("0 5 * * *"), found("0 6 * * *")
			for _, d := range []*importedDataset{same, other} {
				out, added, err := (&importCmd{}).plan(cfg, input, []*importedDataset{d})
				if err != nil {
					t.Fatal(err)
				}
				if added != 0 || string(out) != string(input) {
					t.Errorf("schedule %v: %d jobs added for a dataset job by-hand refreshes:\n%s", d.exprs, added, out)
				}
			}
			if !same.present || !slices.Equal(same.jobs, []string{"by-hand"}) {
				t.Errorf("same schedule: present %v, jobs %v; want by-hand's", same.present, same.jobs)
			}
			if !strings.Contains(other.why, "already refreshed by job by-hand") {
				t.Errorf("another schedule: why %q", other.why)
			}
		})
	}
}

// TestImportResolvesNamesAsTheDaemonDoes: a job's dataset name matches by
// the daemon's rule, an exact name first, else the only one without
// regard to case; a name the daemon could not resolve (two datasets named
// so but for case) matches no dataset.
func TestImportResolvesNamesAsTheDaemonDoes(t *testing.T) {
	const ws = "c0ffee00-0000-4000-8000-000000000101"
	for _, tc := range []struct {
		dataset string
		added   int
	}{
		{"Sales Model", 1}, // the exact one is the job's: only "sales model" gets a job
		{"SALES MODEL", 2}, // ambiguous: the daemon would refuse it, so it is nobody's
	} {
		t.Run(tc.dataset, func(t *testing.T) {
			input := []byte(`credentials:
  c: {tenant_id: 00000000-0000-0000-0000-000000000000, client_id: 11111111-1111-1111-1111-111111111111, client_secret: {env: X}}
jobs:
  - {name: by-hand, schedule: "0 5 * * *", timezone: Europe/Amsterdam, credential: c, workspace_id: ` + ws + `, dataset: "` + tc.dataset + `"}
`)
			path := filepath.Join(t.TempDir(), "pbirefresh.yaml")
			os.WriteFile(path, input, 0o600)
			cfg, err := configs.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			var list []*importedDataset
			for i, name := range []string{"Sales Model", "sales model"} {
				list = append(list, &importedDataset{ws: refresh.Workspace{ID: ws, Name: "Sales BI"},
					ds:    refresh.DatasetInfo{ID: fmt.Sprintf("c0ffee00-0000-4000-8000-00000000020%d", i+1), Name: name},
					exprs: []string{"0 5 * * *"}, zone: "Europe/Amsterdam", twin: true})
			}
			_, added, err := (&importCmd{}).plan(cfg, input, list)
			if err != nil {
				t.Fatal(err)
			}
			if added != tc.added {
				t.Errorf("%d jobs added, want %d (present: %v, %v)", added, tc.added, list[0].present, list[1].present)
			}
		})
	}
}

// TestDisableBuiltinKeepsASchedulePausedJobsDoNotReproduce: a Power
// BI schedule that was off at import time becomes paused jobs (enabled:
// false). When the owner later turns that schedule back on, the README's
// advised `import ... --disable-builtin` must not count the dataset as
// reproduced and turn its only active schedule off: every pbirefresh job
// for it is paused, and the dataset would be refreshed by nobody.
func TestDisableBuiltinKeepsASchedulePausedJobsDoNotReproduce(t *testing.T) {
	dir := t.TempDir()
	orig := readFile(t, importScenario(t))
	const off = `schedule: {days: [Monday], times: ["06:00"], enabled: false, time_zone: UTC}`
	if strings.Count(orig, off) != 1 {
		t.Fatalf("scenario changed: %q not found once", off)
	}
	scenA := filepath.Join(dir, "scenario-a.yaml")
	scenB := filepath.Join(dir, "scenario-b.yaml")
	os.WriteFile(scenA, []byte(orig), 0o644)
	os.WriteFile(scenB, []byte(strings.Replace(orig, off, strings.Replace(off, "enabled: false", "enabled: true", 1), 1)), 0o644)

	// 1. Import while the Power BI schedule of "Paused" is off.
	base := importBase(t, dir, "")
	os.WriteFile(base, []byte(strings.Replace(readFile(t, base), importScenario(t), scenA, 1)), 0o640)
	out := filepath.Join(dir, "pbirefresh.yaml")
	r := runBinary(t, importEnv, "import", "--config", base, "--credential", "svc", "--workspace", financeEMEA, "--out", out)
	if r.code != 0 {
		t.Fatalf("import: %+v", r)
	}
	text := readFile(t, out)
	if !regexp.MustCompile(`(?s)- name: paused\n.*?enabled: false\n.*?dataset_id: ` + pausedDS).MatchString(text) {
		t.Fatalf("the paused schedule was not imported as a paused job:\n%s", text)
	}

	// 2. The owner turns the Power BI schedule on again; the operator runs
	// the advised --disable-builtin on the configuration.
	os.WriteFile(out, []byte(strings.Replace(text, scenA, scenB, 1)), 0o640)
	r = runBinary(t, importEnv, "import", "--config", out, "--credential", "svc", "--workspace", financeEMEA, "--out", out, "--disable-builtin")
	t.Logf("stderr:\n%s", r.stderr)
	if strings.Contains(r.stderr, `[ok]   "Paused" in "Finance EMEA"`) {
		t.Fatalf("--disable-builtin turned off the only active schedule of dataset \"Paused\": its pbirefresh job is enabled: false, so nothing refreshes it any more")
	}
	if strings.Contains(r.stderr, "the configuration was written") {
		t.Errorf("an unchanged configuration reported as written:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, `skipped   "Paused": already in the configuration as paused job paused (enabled: false)`) {
		t.Fatalf("the report does not say why \"Paused\" was left alone:\n%s", r.stderr)
	}
}

// TestInsertJobsKeepsValidYAML: insertJobs works on lines; it keeps valid
// the configurations it broke before (import then refused them, "does not
// validate; please report it", exit 3): a document end marker (...), a
// multi-line empty flow list (jobs: [ ... ]), and a block list whose
// items start with a bare "-" line.
func TestInsertJobsKeepsValidYAML(t *testing.T) {
	const creds = "cloud: emulator\ncredentials:\n  svc: {tenant_id: c0ffee00-0000-4000-8000-000000000001, client_id: c0ffee00-0000-4000-8000-0000000000a1, client_secret: {env: X}}\n"
	const job = "    credential: svc\n    workspace_id: c0ffee00-0000-4000-8000-000000000601\n    dataset_id: c0ffee00-0000-4000-8000-000000000701\n"
	for name, in := range map[string]string{
		"document end marker":   "---\n" + creds + "...\n",
		"multi-line empty list": creds + "jobs: [\n]\n",
		"bare dash items":       creds + "jobs:\n  -\n    name: a\n" + job,
	} {
		t.Run(name, func(t *testing.T) {
			before, err := configs.ParseWith("in", []byte(in), configs.Options{AllowNoJobs: true})
			if err != nil {
				t.Fatalf("input does not parse: %v", err)
			}
			out, err := insertJobs([]byte(in), []string{"- name: x\n  credential: svc\n  workspace_id: c0ffee00-0000-4000-8000-000000000601\n  dataset_id: c0ffee00-0000-4000-8000-000000000702\n"})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := configs.ParseWith("out", out, configs.Options{AllowNoJobs: true})
			if err != nil {
				t.Fatalf("import's output does not parse: %v\n%s", err, out)
			}
			if cfg.Job("x") == nil || len(cfg.Jobs) != len(before.Jobs)+1 {
				t.Fatalf("the imported job is missing, or the input's are:\n%s", out)
			}
		})
	}
}

// FuzzInsertJobs: whatever valid configuration import is given, the jobs
// it inserts leave it valid, with the input's jobs kept and the new one
// added (or insertJobs refuses with an error, never a broken file).
func FuzzInsertJobs(f *testing.F) {
	const creds = "cloud: emulator\ncredentials:\n  svc: {tenant_id: c0ffee00-0000-4000-8000-000000000001, client_id: c0ffee00-0000-4000-8000-0000000000a1, client_secret: {env: X}}\n"
	const job = "    credential: svc\n    workspace_id: c0ffee00-0000-4000-8000-000000000601\n    dataset_id: c0ffee00-0000-4000-8000-000000000701\n"
	for _, in := range []string{
		creds,
		"---\n" + creds + "...\n",
		creds + "jobs: [\n]\n",
		creds + "jobs: []\n",
		creds + "jobs:\n  -\n    name: a\n" + job,
		creds + "jobs:\n  - name: a\n" + job + "\n# trailing\nhttp: {listen: off}\n",
		creds + "jobs:\n- name: a\n" + strings.ReplaceAll(job, "    ", "  ") + "defaults: {timeout: 1h}\n",
		"jobs: # none yet\n" + creds,
	} {
		f.Add([]byte(in))
	}
	block := "- name: fuzz-new\n  credential: svc\n  workspace_id: c0ffee00-0000-4000-8000-000000000601\n  dataset_id: c0ffee00-0000-4000-8000-000000000702\n"
	f.Fuzz(func(t *testing.T, in []byte) {
		before, err := configs.ParseWith("in", in, configs.Options{AllowNoJobs: true, NoHTTP: true})
		if err != nil || before.Credentials["svc"] == nil || before.Job("fuzz-new") != nil {
			return // the new job needs credential svc and its own name
		}
		out, err := insertJobs(in, []string{block})
		if err != nil {
			return
		}
		after, err := configs.ParseWith("out", out, configs.Options{AllowNoJobs: true, NoHTTP: true})
		if err != nil {
			t.Fatalf("output does not parse: %v\ninput:\n%s\noutput:\n%s", err, in, out)
		}
		if after.Job("fuzz-new") == nil || len(after.Jobs) != len(before.Jobs)+1 {
			t.Fatalf("jobs %d before, %d after (new one present: %v)\ninput:\n%s\noutput:\n%s", len(before.Jobs), len(after.Jobs), after.Job("fuzz-new") != nil, in, out)
		}
	})
}
