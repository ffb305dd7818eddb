package refresh

import (
	"encoding/json"
	"github.com/pbirefresh/pbirefresh"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRefreshIDPriority(t *testing.T) {
	for _, tc := range []struct {
		h    http.Header
		want string
	}{
		{http.Header{"X-Ms-Request-Id": {"a"}, "Location": {"https://x/refreshes/b"}, "Requestid": {"c"}}, "a"},
		{http.Header{"Location": {"https://x/v1.0/myorg/groups/g/datasets/d/refreshes/b/"}, "Requestid": {"c"}}, "b"},
		{http.Header{"Requestid": {"c"}}, "c"},
		{http.Header{}, ""},
	} {
		if got := refreshID(tc.h); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.h, got, tc.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2021, 12, 10, 8, 40, 31, 570000000, time.UTC)
	for _, s := range []string{"2021-12-10T08:40:31.57", "2021-12-10T08:40:31.5700000Z", "2021-12-10T08:40:31.57Z", "2021-12-10T09:40:31.57+01:00"} {
		if got := parseTime(s); !got.Equal(want) {
			t.Errorf("%q: %s", s, got)
		}
	}
	if !parseTime("garbage").IsZero() {
		t.Error("garbage parsed")
	}
}

func TestOutcomeMapping(t *testing.T) {
	for _, tc := range []struct {
		status, ext string
		want        pbirefresh.Status
		known       bool
	}{
		{"Completed", "", pbirefresh.Completed, true}, {"completed", "Completed", pbirefresh.Completed, true},
		{"FAILED", "", pbirefresh.Failed, true}, {"Failed", "TimedOut", pbirefresh.TimedOut, true},
		{"Cancelled", "", pbirefresh.Cancelled, true}, {"Unknown", "Cancelled", pbirefresh.Cancelled, true},
		{"Disabled", "", pbirefresh.Disabled, true}, {"Unknown", "NotStarted", pbirefresh.Running, true},
		{"Unknown", "InProgress", pbirefresh.Running, true}, {"Paused", "", pbirefresh.Running, false},
	} {
		got, known := outcomeOf(tc.status, tc.ext)
		if got != tc.want || known != tc.known {
			t.Errorf("%s/%s: %s %v", tc.status, tc.ext, got, known)
		}
	}
}

func TestAdaptiveStaysInBounds(t *testing.T) {
	for _, a := range []Adaptive{
		{Min: time.Second, Max: 2 * time.Minute},
		{Min: 5 * time.Second, Max: time.Minute, Expected: 10 * time.Minute, Fastest: 9 * time.Minute},
		{Min: time.Second, Max: 2 * time.Minute, Expected: 15 * time.Second, Fastest: 20 * time.Second},
	} {
		for e := time.Duration(0); e < 3*time.Hour; e += 7 * time.Second {
			for _, polls := range []int{0, 1, 10} {
				if d := a.Next(e, polls); d < a.Min || d > a.Max {
					t.Fatalf("%+v at %s: %s", a, e, d)
				}
			}
		}
	}
	// With history it coasts to just before the shortest plausible run's
	// end (the fastest less the spread), then polls every 1.8% of the
	// elapsed time.
	a := Adaptive{Min: time.Second, Max: time.Hour, Expected: 1000 * time.Second, Fastest: 900 * time.Second, Slowest: 1050 * time.Second}
	if d := a.Next(10*time.Second, 1); d != 740*time.Second {
		t.Errorf("coast: %s", d)
	}
	if d := a.Next(1000*time.Second, 5); d != 18*time.Second {
		t.Errorf("dense: %s", d)
	}
	// Without history: never denser than a fixed 5 s poller.
	none := Adaptive{Min: time.Second, Max: 2 * time.Minute}
	for e := time.Duration(0); e < time.Hour; e += time.Second {
		if d := none.Next(e, int(e/time.Second)); d < 5*time.Second {
			t.Fatalf("no history at %s: %s", e, d)
		}
	}
}

func TestOptionsBody(t *testing.T) {
	if b := (Options{}).body(); b != nil {
		t.Errorf("classic without options: %s", b)
	}
	var m map[string]any
	json.Unmarshal((Options{NotifyOption: "NoNotification"}).body(), &m)
	if len(m) != 1 || m["notifyOption"] != "NoNotification" {
		t.Errorf("classic: %v", m)
	}
	m = nil
	json.Unmarshal((Options{Enhanced: true, NotifyOption: "MailOnFailure"}).body(), &m)
	if m["notifyOption"] != nil || m["type"] != "Automatic" {
		t.Errorf("enhanced never carries notifyOption, and names a field: %v", m)
	}
}

func TestEndpointOfNamesAndSchedules(t *testing.T) {
	for _, tc := range []struct{ m, p, want string }{
		{"GET", "/v1.0/myorg/groups?$filter=tolower%28name%29%20eq%20%27s%27", "groups.list"},
		{"GET", "/v1.0/myorg/groups/g", "groups.get"},
		{"GET", "/v1.0/myorg/groups/g/datasets", "datasets.list"},
		{"GET", "/v1.0/myorg/groups/g/datasets/d", "datasets.get"},
		{"GET", "/v1.0/myorg/groups/g/datasets/d/refreshSchedule", "schedule.get"},
		{"PATCH", "/v1.0/myorg/groups/g/datasets/d/refreshSchedule", "schedule.update"},
		{"POST", "/v1.0/myorg/groups/g/datasets/d/refreshes", "refresh.post"},
		{"POST", "/v1.0/myorg/groups/g/dataflows/f/refreshes", "dataflow.refresh"},
	} {
		if got := endpointOf(tc.m, tc.p); got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.m, tc.p, got, tc.want)
		}
	}
}

// The two certificate refusals call for different fixes: an unregistered
// certificate (700027), a clock off so that the assertion is outside its
// time range (700024).
func TestCertificateRefusalHints(t *testing.T) {
	if h := (&AuthError{Code: 700027}).Hint(); !strings.Contains(h, "not registered") {
		t.Errorf("700027: %q", h)
	}
	if h := (&AuthError{Code: 700024}).Hint(); !strings.Contains(h, "clock") || strings.Contains(h, "not registered") {
		t.Errorf("700024: %q", h)
	}
}
