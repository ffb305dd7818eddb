package refresh

import (
	"context"
	"net/http"

	"github.com/pbirefresh/pbirefresh"
)

// BuiltinSchedule is a dataset's own refresh schedule in Power BI
// (docs/powerbi.md, "Built-in refresh schedules").
type BuiltinSchedule struct {
	// Days are Sunday … Saturday, as the service spells them.
	Days []string
	// Times are "hh:mm" in LocalTimeZoneID, minutes 00 or 30.
	Times   []string
	Enabled bool
	// LocalTimeZoneID is a Windows time zone id ("W. Europe Standard
	// Time"); the service answers UTC for a schedule never configured.
	LocalTimeZoneID string
	// NotifyOption is NoNotification or MailOnFailure.
	NotifyOption string
}

// Schedule reads a dataset's built-in refresh schedule.
func (c *Client) Schedule(ctx context.Context, ds Dataset) (BuiltinSchedule, error) {
	var s struct {
		Days            []string `json:"days"`
		Times           []string `json:"times"`
		Enabled         bool     `json:"enabled"`
		LocalTimeZoneID string   `json:"localTimeZoneId"`
		NotifyOption    string   `json:"notifyOption"`
	}
	if err := c.getJSON(ctx, ds.path()+"/refreshSchedule", &s); err != nil {
		return BuiltinSchedule{}, err
	}
	return BuiltinSchedule(s), nil
}

// DisableSchedule turns a dataset's built-in refresh schedule off and
// changes nothing else: the service requires a PATCH that disables the
// schedule to carry {"value": {"enabled": false}} alone
// (https://learn.microsoft.com/rest/api/power-bi/datasets/update-refresh-schedule-in-group).
// Only the dataset's owner may do it.
func (c *Client) DisableSchedule(ctx context.Context, ds Dataset) error {
	path := ds.path() + "/refreshSchedule"
	r, err := c.do(ctx, http.MethodPatch, path, []byte(`{"value":{"enabled":false}}`), c.deadlineOf(ctx))
	if err != nil {
		return err
	}
	switch {
	case r.status == http.StatusOK || r.status == http.StatusNoContent:
		return nil
	case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
		// The error a non-owner gets is not documented; the emulator answers
		// 401 PowerBINotAuthorizedException.
		return pbirefresh.WithHint(apiError(http.MethodPatch, path, r),
			"only the dataset's owner may change its refresh schedule: turn it off in the dataset's settings as the owner, or make the app the owner (Take Over In Group) and run again")
	}
	return apiError(http.MethodPatch, path, r)
}
