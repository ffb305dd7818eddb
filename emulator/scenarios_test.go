package emulator_test

import (
	"path/filepath"
	"testing"

	"github.com/pbirefresh/pbirefresh/emulator"
)

// TestShippedScenariosLoad: the scenarios in scenarios/ (the chain demo's
// world) pass the emulator's validation.
func TestShippedScenariosLoad(t *testing.T) {
	files, _ := filepath.Glob("scenarios/*.yaml")
	if len(files) == 0 {
		t.Fatal("no scenarios")
	}
	for _, f := range files {
		sc, err := emulator.LoadScenario(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(sc.Workspaces) == 0 {
			t.Errorf("%s: no workspaces", f)
		}
	}
}
