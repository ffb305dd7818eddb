package windowszones

import (
	"encoding/xml"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // every IANA name must load without the host's zoneinfo
)

type xmlZone struct {
	Other     string `xml:"other,attr"`
	Territory string `xml:"territory,attr"`
	Type      string `xml:"type,attr"`
}

// readXML parses the vendored CLDR file independently of gen.go.
func readXML(t *testing.T) []xmlZone {
	t.Helper()
	b, err := os.ReadFile("windowsZones.xml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Zones []xmlZone `xml:"windowsZones>mapTimezones>mapZone"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Zones) < 400 {
		t.Fatalf("only %d mapZone entries parsed", len(doc.Zones))
	}
	return doc.Zones
}

// TestTableEqualsXML proves the generated table is the XML's: every
// territory 001 mapping present and equal, nothing else in defaults, and
// every other-territory zone resolvable in reverse.
func TestTableEqualsXML(t *testing.T) {
	zones := readXML(t)
	want := map[string]string{}
	for _, z := range zones {
		if z.Territory == "001" {
			want[z.Other] = strings.TrimSpace(z.Type)
		}
	}
	if len(defaults) != len(want) {
		t.Errorf("table has %d Windows ids, the XML %d", len(defaults), len(want))
	}
	for w, iana := range want {
		if got, ok := IANA(w); !ok || got != iana {
			t.Errorf("IANA(%q) = %q, %v; the XML says %q", w, got, ok, iana)
		}
	}
	for _, z := range defaults {
		if want[z.windows] != z.iana {
			t.Errorf("table entry %q → %q is not a territory 001 mapping of the XML", z.windows, z.iana)
		}
	}
	if !slices.IsSortedFunc(defaults[:], func(a, b zone) int { return strings.Compare(a.windows, b.windows) }) {
		t.Error("defaults are not sorted by Windows id")
	}
	if !slices.IsSortedFunc(territories[:], func(a, b zone) int { return strings.Compare(a.iana, b.iana) }) {
		t.Error("territories are not sorted by IANA name")
	}
	// Reverse: every zone the XML names, under any territory, leads back
	// to the Windows id that lists it.
	listed := map[string]bool{}
	for _, z := range zones {
		for _, iana := range strings.Fields(z.Type) {
			listed[iana] = true
			if got, ok := Windows(iana); !ok || got != z.Other {
				t.Errorf("Windows(%q) = %q, %v; the XML lists it under %q", iana, got, ok, z.Other)
			}
		}
	}
	for _, z := range territories {
		if !listed[z.iana] {
			t.Errorf("territories entry %q is not in the XML", z.iana)
		}
	}
}

func TestEveryZoneLoads(t *testing.T) {
	for _, z := range append(defaults[:], territories[:]...) {
		if _, err := time.LoadLocation(z.iana); err != nil {
			t.Errorf("%s (%s): %v", z.iana, z.windows, err)
		}
	}
}

func TestKnownPairs(t *testing.T) {
	for _, tc := range []struct{ windows, iana string }{
		{"UTC", "Etc/UTC"},
		{"Pacific Standard Time", "America/Los_Angeles"},
		{"W. Europe Standard Time", "Europe/Berlin"},
		{"India Standard Time", "Asia/Calcutta"},
		{"Romance Standard Time", "Europe/Paris"},
		{"GMT Standard Time", "Europe/London"},
		{"Dateline Standard Time", "Etc/GMT+12"},
	} {
		if got, ok := IANA(tc.windows); !ok || got != tc.iana {
			t.Errorf("IANA(%q) = %q, %v; want %q", tc.windows, got, ok, tc.iana)
		}
		if got, ok := Windows(tc.iana); !ok || got != tc.windows {
			t.Errorf("Windows(%q) = %q, %v; want %q", tc.iana, got, ok, tc.windows)
		}
	}
	for _, tc := range []struct{ iana, windows string }{
		{"Europe/Zurich", "W. Europe Standard Time"}, // territory CH
		{"America/Vancouver", "Pacific Standard Time"},
		{"Etc/GMT", "UTC"}, // territory ZZ
	} {
		if got, ok := Windows(tc.iana); !ok || got != tc.windows {
			t.Errorf("Windows(%q) = %q, %v; want %q", tc.iana, got, ok, tc.windows)
		}
	}
}

func TestLookupMisses(t *testing.T) {
	if got, ok := IANA("pacific standard time"); !ok || got != "America/Los_Angeles" {
		t.Errorf("case-insensitive IANA: %q, %v", got, ok)
	}
	if got, ok := Canonical("w. EUROPE standard time"); !ok || got != "W. Europe Standard Time" {
		t.Errorf("Canonical: %q, %v", got, ok)
	}
	for _, id := range []string{"", "Pacific Standard", "Europe/Berlin", "UTC+01", " UTC"} {
		if got, ok := IANA(id); ok {
			t.Errorf("IANA(%q) = %q, want no match", id, got)
		}
		if _, ok := Canonical(id); ok {
			t.Errorf("Canonical(%q) matched", id)
		}
	}
	for _, name := range []string{"", "europe/berlin", "UTC", "Mars/Olympus_Mons"} {
		if got, ok := Windows(name); ok {
			t.Errorf("Windows(%q) = %q, want no match", name, got)
		}
	}
	ids := IDs()
	if len(ids) != len(defaults) || !slices.IsSorted(ids) || !slices.Contains(ids, "UTC") {
		t.Errorf("IDs: %d ids, sorted %v", len(ids), slices.IsSorted(ids))
	}
	ids[0] = "changed"
	if IDs()[0] == "changed" {
		t.Error("IDs returns the package's own slice")
	}
}
