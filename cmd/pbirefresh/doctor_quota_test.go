package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorWarnsAboutAnEnabledScheduleWithoutTimes: docs/powerbi.md
// says a built-in schedule without times refreshes "one default time a
// day" (and import refuses such a schedule for that reason): doctor's
// "dataset also refreshes on its own Power BI schedule" warning covers it,
// as it covers one with times.
func TestDoctorWarnsAboutAnEnabledScheduleWithoutTimes(t *testing.T) {
	const on = `schedule: {days: [Friday], times: ["20:00"], enabled: true, time_zone: UTC}`
	orig := readFile(t, importScenario(t))
	if strings.Count(orig, on) != 1 {
		t.Fatalf("scenario changed")
	}
	for _, tc := range []struct {
		name, sched string
	}{
		{"with-times", on},
		{"without-times", strings.Replace(on, `times: ["20:00"]`, `times: []`, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			scen := filepath.Join(dir, "scenario.yaml")
			os.WriteFile(scen, []byte(strings.Replace(orig, on, tc.sched, 1)), 0o644)
			cfg := importBase(t, dir, `jobs:
  - name: hw
    schedule: "0 21 * * 5"
    credential: svc
    workspace_id: `+financeEMEA+`
    dataset_id: `+handWrittenDS+`
`)
			os.WriteFile(cfg, []byte(strings.Replace(readFile(t, cfg), importScenario(t), scen, 1)), 0o640)
			r := runBinary(t, importEnv, "doctor", "--config", cfg, "--job", "hw")
			if !strings.Contains(r.stdout, "[warn] job hw: the dataset also refreshes on its own Power BI schedule") {
				t.Fatalf("doctor did not warn that the dataset's enabled Power BI schedule (%s) still refreshes it:\n%s", tc.sched, r.stdout)
			}
		})
	}
}

// TestDoctorQuotaCountsEveryJobOfTheDataset: README: doctor warns
// about "a schedule beyond shared capacity's 8 a day". The quota counts a
// dataset's refreshes whichever job starts them: a dataset on shared
// capacity refreshed by two jobs, 5 + 4 a day (what import writes for a
// Power BI schedule at 06:00, 06:30, 09:00, 09:30, ...: one job per
// minute group), gets 9 refreshes a day, the 9th refused.
func TestDoctorQuotaCountsEveryJobOfTheDataset(t *testing.T) {
	const weekly = "c0ffee00-0000-4000-8000-000000000711"
	const on = `times: ["06:00", "09:00", "12:00", "15:00", "18:00"], enabled: true`
	orig := readFile(t, importScenario(t))
	if strings.Count(orig, on) != 1 {
		t.Fatalf("scenario changed")
	}
	dir := t.TempDir()
	scen := filepath.Join(dir, "scenario.yaml")
	// Its Power BI schedule is off (import --disable-builtin did that).
	os.WriteFile(scen, []byte(strings.Replace(orig, on, strings.Replace(on, "enabled: true", "enabled: false", 1), 1)), 0o644)
	cfg := importBase(t, dir, `jobs:
  - name: weekly-sales-00
    schedule: "0 6,9,12,15,18 * * *"
    timezone: America/Los_Angeles
    credential: svc
    workspace_id: c0ffee00-0000-4000-8000-000000000602
    dataset_id: `+weekly+`
  - name: weekly-sales-30
    schedule: "30 6,9,12,15 * * *"
    timezone: America/Los_Angeles
    credential: svc
    workspace_id: c0ffee00-0000-4000-8000-000000000602
    dataset_id: `+weekly+`
`)
	os.WriteFile(cfg, []byte(strings.Replace(readFile(t, cfg), importScenario(t), scen, 1)), 0o640)
	r := runBinary(t, importEnv, "doctor", "--config", cfg)
	if !strings.Contains(r.stdout, "[warn] jobs weekly-sales-00, weekly-sales-30 (dataset "+weekly+"): workspace c0ffee00-0000-4000-8000-000000000602 is on shared capacity, which allows 8 refreshes of a dataset a day; up to ") {
		t.Fatalf("doctor did not warn that dataset %s gets 9 refreshes a day on shared capacity (5 from weekly-sales-00, 4 from weekly-sales-30):\n%s", weekly, r.stdout)
	}
}
