package refresh_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pbirefresh/pbirefresh"
	"github.com/pbirefresh/pbirefresh/emulator"
	"github.com/pbirefresh/pbirefresh/refresh"
)

func TestScheduleRead(t *testing.T) {
	h := setup(t, nil)
	ctx := context.Background()
	s, err := h.client.Schedule(ctx, ds(salesWS, salesDS))
	if err != nil {
		t.Fatal(err)
	}
	want := refresh.BuiltinSchedule{Days: []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}, Times: []string{"05:00", "17:30"},
		Enabled: true, LocalTimeZoneID: "W. Europe Standard Time", NotifyOption: "NoNotification"}
	if !slices.Equal(s.Days, want.Days) || !slices.Equal(s.Times, want.Times) || s.Enabled != want.Enabled ||
		s.LocalTimeZoneID != want.LocalTimeZoneID || s.NotifyOption != want.NotifyOption {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	// A schedule never configured: no days, no times, off, UTC.
	s, err = h.client.Schedule(ctx, ds(salesWS, financeDS))
	if err != nil || len(s.Days)+len(s.Times) != 0 || s.Enabled || s.LocalTimeZoneID != "UTC" {
		t.Fatalf("unconfigured: %+v %v", s, err)
	}
	_, err = h.client.Schedule(ctx, ds(restrictedWS, payrollDS))
	var ae *refresh.APIError
	if !errors.As(err, &ae) || ae.Status != 404 || pbirefresh.Hint(err) == "" {
		t.Fatalf("not a member: %v", err)
	}
	if n := len(h.requests("schedule.get")); n != 3 {
		t.Fatalf("%d schedule.get requests, want 3", n)
	}
}

func TestScheduleDisable(t *testing.T) {
	h := setup(t, func(sc *emulator.Scenario) {
		// Finance Model belongs to a user: the app may read its schedule,
		// not change it.
		d := &sc.Workspaces[0].Datasets[1]
		d.Owner = "alice@contoso.onmicrosoft.com"
		d.Schedule = &emulator.ScheduleInfo{Days: []string{"Sunday"}, Times: []string{"06:00"}, Enabled: true, TimeZone: "Pacific Standard Time"}
	})
	ctx := context.Background()
	if err := h.client.DisableSchedule(ctx, ds(salesWS, salesDS)); err != nil {
		t.Fatal(err)
	}
	patches := h.requests("schedule.update")
	if len(patches) != 1 || patches[0].Body != `{"value":{"enabled":false}}` || patches[0].Status != 200 {
		t.Fatalf("PATCH: %+v", patches)
	}
	// Off, and nothing else changed.
	s, err := h.client.Schedule(ctx, ds(salesWS, salesDS))
	if err != nil || s.Enabled || !slices.Equal(s.Times, []string{"05:00", "17:30"}) || len(s.Days) != 5 || s.LocalTimeZoneID != "W. Europe Standard Time" {
		t.Fatalf("after: %+v %v", s, err)
	}
	// Disabling twice is harmless.
	if err := h.client.DisableSchedule(ctx, ds(salesWS, salesDS)); err != nil {
		t.Fatal(err)
	}

	err = h.client.DisableSchedule(ctx, ds(salesWS, financeDS))
	var ae *refresh.APIError
	if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(pbirefresh.Hint(err), "only the dataset's owner") {
		t.Fatalf("not the owner: %v (hint %q)", err, pbirefresh.Hint(err))
	}
	if s, _ := h.emu.Schedule(financeDS); !s.Enabled {
		t.Fatal("the owner's schedule was changed")
	}
}
