package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/store"
	"github.com/pbirefresh/pbirefresh/store/postgres"
	"github.com/pbirefresh/pbirefresh/store/postgres/pgtest"
)

// haConfig is a config for replicas on PostgreSQL against a standalone
// emulator: the demo's sales, inventory and finance jobs firing often.
func haConfig(url, ca, dbURL, listen string, ttl time.Duration, enabled bool) string {
	return fmt.Sprintf(`cloud: custom
endpoints: {authority_host: %[1]s, powerbi_api: %[1]s, powerbi_scope: "https://analysis.windows.net/powerbi/api/.default", keyvault_challenge_verification: false}
tls: {ca_file: %[2]s}
state:
  postgres: {url: "%[3]s", lease_ttl: %[5]s}
http: {listen: "%[4]s"}
shutdown_timeout: 5s
credentials:
  demo:
    tenant_id: c0ffee00-0000-4000-8000-000000000001
    client_id: c0ffee00-0000-4000-8000-0000000000a1
    client_secret: {keyvault: {vault_url: %[1]s, secret_name: pbi-secret}}
defaults:
  when_busy: skip
  catch_up: 10s
  history_grace: 6s
  poll: {min_interval: 1s, max_interval: 2s}
jobs:
  - {name: sales, enabled: %[6]v, schedule: "*/3 * * * * *", credential: demo, workspace_id: c0ffee00-0000-4000-8000-000000000101, dataset_id: c0ffee00-0000-4000-8000-000000000201, refresh: {type: full}}
  - {name: inventory, enabled: %[6]v, schedule: "*/4 * * * * *", credential: demo, workspace_id: c0ffee00-0000-4000-8000-000000000101, dataset_id: c0ffee00-0000-4000-8000-000000000203, refresh: {retry_count: 1}}
  - {name: finance, enabled: %[6]v, schedule: "*/5 * * * * *", credential: demo, workspace_id: c0ffee00-0000-4000-8000-000000000101, dataset_id: c0ffee00-0000-4000-8000-000000000202, refresh: {type: full}}
`, url, ca, dbURL, listen, ttl, enabled)
}

// TestReplicasShareTheWork: two daemons on one PostgreSQL state run every
// slot once between them, both take a share, and each lists both
// replicas.
func TestReplicasShareTheWork(t *testing.T) {
	srv := pgtest.Shared(t)
	dbURL := srv.NewDatabase(t)
	dir := t.TempDir()
	url, ca, _ := emulatorProcess(t, dir)
	env := []string{"IDENTITY_ENDPOINT=" + url + "/msi/token", "IDENTITY_HEADER=demo-identity-header"}
	var addrs []string
	for i := 0; i < 2; i++ {
		addr := freePort(t)
		addrs = append(addrs, addr)
		cfg := filepath.Join(dir, fmt.Sprintf("r%d.yaml", i))
		os.WriteFile(cfg, []byte(haConfig(url, ca, dbURL, addr, 5*time.Second, true)), 0o600)
		startDaemon(t, cfg, env...)
	}
	begin := time.Now()
	// Let about 10 seconds of slots fire and end.
	st, err := postgres.Open(context.Background(), dbURL, postgres.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var runs []store.Run
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		runs, err = st.Runs(context.Background(), store.Query{})
		if err != nil {
			t.Fatal(err)
		}
		owners := map[string]int{}
		for _, r := range runs {
			if r.Status.Result() && r.RefreshID != "" {
				owners[r.Owner]++
			}
		}
		if len(owners) >= 2 && time.Since(begin) > 10*time.Second {
			t.Logf("runs with a refresh by replica: %v", owners)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the work did not spread over both replicas: %v", owners)
		}
	}
	slots := map[string]int{}
	for _, r := range runs {
		slots[r.Job+r.Slot.String()]++
		if r.Status == pbirefresh.Skipped && !strings.Contains(r.Note, "in progress") {
			t.Errorf("skipped for another reason: %+v", r)
		}
	}
	for k, n := range slots {
		if n != 1 {
			t.Fatalf("slot %s recorded %d times", k, n)
		}
	}
	_, body := get(t, "http://"+addrs[0]+"/api/replicas")
	var out struct {
		Replicas []store.Replica `json:"replicas"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || len(out.Replicas) != 2 || !out.Replicas[0].Alive || !out.Replicas[1].Alive {
		t.Fatalf("api/replicas: %s", body)
	}
	_, metrics := get(t, "http://"+addrs[1]+"/metrics")
	if metricValue(t, metrics, "pbirefresh_replicas_alive") != 2 || metricValue(t, metrics, "pbirefresh_lease_held") != 1 {
		t.Fatalf("replica metrics:\n%s", metrics)
	}
}
