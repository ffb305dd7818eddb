package emulator

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // schedule time zones resolve the same in a container as on a VM

	"github.com/pbirefresh/pbirefresh/internal/windowszones"
)

// Dataset refresh schedules: GET and PATCH .../refreshSchedule and, with
// settings.fire_schedules, the refreshes the service starts by itself at
// the scheduled times.
// https://learn.microsoft.com/rest/api/power-bi/datasets/update-refresh-schedule-in-group

// weekdays are the schedule's day names, indexed by time.Weekday.
var weekdays = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}

// scheduleTimeRE is the documented time format: hh from 00 to 23, minutes
// 00 or 30 only.
var scheduleTimeRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):(00|30)$`)

// A schedule's notify option: MailOnCompletion exists for refresh requests
// but not for schedules.
var scheduleNotifyOptions = []string{"NoNotification", "MailOnFailure"}

const (
	// Time slots a day: 8 on shared capacity, 48 on Premium (refresh-data
	// docs, https://learn.microsoft.com/power-bi/connect-data/refresh-data).
	sharedSlots  = 8
	premiumSlots = 48
	// fireHorizon bounds how far back a fake clock's jump materialises
	// scheduled refreshes; older ones would be pruned from the history.
	fireHorizon = 7 * 24 * time.Hour
)

func slotLimit(premium bool) int {
	if premium {
		return premiumSlots
	}
	return sharedSlots
}

func canonicalDay(s string) (string, bool) { return foldEnum(s, weekdays[:]) }

// foldEnum matches s case-insensitively against allowed and returns the
// service's spelling.
func foldEnum(s string, allowed []string) (string, bool) {
	for _, a := range allowed {
		if strings.EqualFold(a, s) {
			return a, true
		}
	}
	return "", false
}

// schedulePatch is a validated PATCH body: nil fields are left unchanged.
type schedulePatch struct {
	days, times  *[]string
	enabled      *bool
	timeZone     *string // in the table's spelling
	notifyOption *string // in the service's spelling
}

// parseScheduleRequest validates a PATCH body, a RefreshScheduleRequest:
// {"value": {days?, times?, enabled?, localTimeZoneId?, notifyOption?}}.
// Like the refresh POST it refuses unknown properties and nulls, and takes
// enum values in any case but property names as written (the spec's schema
// spells NotifyOption with a capital N while its examples send
// notifyOption, so both are taken). Rules from the REST page: minutes 00 or
// 30 only; a request that disables the schedule contains no other change;
// at least one day. Whether the service ignores unknown properties, takes
// a day or time twice, or accepts a value that changes nothing, is
// unconfirmed; refusing is the safe side for a client under test.
func parseScheduleRequest(body []byte) (schedulePatch, *requestError) {
	var p schedulePatch
	if len(strings.TrimSpace(string(body))) == 0 {
		return p, badRequest(`The request body is required: send {"value": {...}} with the schedule properties to change.`)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return p, badRequest("The request body is not a valid JSON object.")
	}
	for k := range top {
		if k != "value" {
			return p, badRequest(`%q is not a property of a refresh schedule request; put the schedule under "value"`, k)
		}
	}
	raw, ok := top["value"]
	if !ok {
		return p, badRequest(`value is required: send {"value": {...}} with the schedule properties to change`)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return p, badRequest("value must be a JSON object holding days, times, enabled, localTimeZoneId or notifyOption")
	}
	if len(fields) == 0 {
		return p, badRequest("value names no property to change; give days, times, enabled, localTimeZoneId or notifyOption")
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same body always reports the same problem
	for _, k := range keys {
		raw := fields[k]
		if string(raw) == "null" {
			return p, badRequest("%s must not be null; leave the property out instead", k)
		}
		var err *requestError
		switch k {
		case "days":
			var days []string
			days, err = stringList(raw, "days")
			for i := 0; err == nil && i < len(days); i++ {
				day, ok := canonicalDay(days[i])
				switch {
				case !ok:
					err = badRequest("%q is not a day; use Sunday, Monday, Tuesday, Wednesday, Thursday, Friday or Saturday", days[i])
				case slices.Contains(days[:i], day):
					err = badRequest("days lists %s twice", day)
				}
				days[i] = day
			}
			if err == nil && len(days) == 0 {
				err = badRequest("At least one day must be specified.")
			}
			p.days = &days
		case "times":
			var times []string
			times, err = stringList(raw, "times")
			for i := 0; err == nil && i < len(times); i++ {
				switch {
				case !scheduleTimeRE.MatchString(times[i]):
					err = badRequest("%q is not a time of day hh:mm with hh from 00 to 23 and minutes 00 or 30", times[i])
				case slices.Contains(times[:i], times[i]):
					err = badRequest("times lists %s twice", times[i])
				}
			}
			p.times = &times
		case "enabled":
			var b bool
			if json.Unmarshal(raw, &b) != nil {
				err = badRequest("enabled must be true or false")
			}
			p.enabled = &b
		case "localTimeZoneId":
			var s string
			if json.Unmarshal(raw, &s) != nil {
				err = badRequest("localTimeZoneId must be a string")
			} else if id, ok := windowszones.Canonical(s); ok {
				p.timeZone = &id
			} else {
				err = badRequest("%q is not a Windows time zone id such as UTC or W. Europe Standard Time", s)
			}
		case "notifyOption", "NotifyOption":
			if p.notifyOption != nil {
				return p, badRequest("notifyOption is given twice")
			}
			var v string
			v, err = enumValue(raw, "notifyOption", scheduleNotifyOptions)
			p.notifyOption = &v
		default:
			err = badRequest("%q is not a property of a refresh schedule; use days, times, enabled, localTimeZoneId or notifyOption", k)
		}
		if err != nil {
			return p, err
		}
	}
	if p.enabled != nil && !*p.enabled && len(fields) > 1 {
		return p, badRequest(`A request that disables the refresh schedule must contain no other changes: send {"value": {"enabled": false}} alone.`)
	}
	return p, nil
}

func stringList(raw json.RawMessage, field string) ([]string, *requestError) {
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		return nil, badRequest("%s must be an array of strings", field)
	}
	return list, nil
}

// apply returns the schedule with the patch applied; the slices are new.
func (p schedulePatch) apply(s ScheduleInfo) ScheduleInfo {
	s.Days, s.Times = slices.Clone(s.Days), slices.Clone(s.Times)
	if p.days != nil {
		s.Days = slices.Clone(*p.days)
	}
	if p.times != nil {
		s.Times = slices.Clone(*p.times)
	}
	if p.enabled != nil {
		s.Enabled = *p.enabled
	}
	if p.timeZone != nil {
		s.TimeZone = *p.timeZone
	}
	if p.notifyOption != nil {
		s.NotifyOption = *p.notifyOption
	}
	return s
}

// scheduleJSON is the GET body: the scenario's or the last PATCH's values,
// with the defaults a never-configured schedule shows.
func scheduleJSON(s ScheduleInfo) ScheduleInfo {
	s.Days, s.Times = slices.Clone(s.Days), slices.Clone(s.Times)
	if s.Days == nil {
		s.Days = []string{}
	}
	if s.Times == nil {
		s.Times = []string{}
	}
	if s.TimeZone == "" {
		s.TimeZone = "UTC"
	}
	if s.NotifyOption == "" {
		s.NotifyOption = "NoNotification"
	}
	return s
}

func (e *Emulator) refreshSchedule(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	e.mu.Lock()
	ds, _ := e.datasetFor(w, r, c, cl)
	var s ScheduleInfo
	if ds != nil {
		s = scheduleJSON(ds.sched)
	}
	e.mu.Unlock()
	if ds == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": e.odataContext(r, "refreshSchedule"),
		"days":           s.Days, "times": s.Times, "enabled": s.Enabled, "localTimeZoneId": s.TimeZone, "notifyOption": s.NotifyOption,
	})
}

// updateSchedule is PATCH .../refreshSchedule: 200 with an empty body, as
// the spec documents.
func (e *Emulator) updateSchedule(w http.ResponseWriter, r *http.Request, c *call) {
	cl := e.authPBI(w, r, c)
	if cl == nil {
		return
	}
	if len(strings.TrimSpace(string(c.body))) > 0 {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct != "application/json" && ct != "text/json" {
			pbiError(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "The request entity's media type '"+ct+"' is not supported for this resource; send application/json.")
			return
		}
	}
	patch, perr := parseScheduleRequest(c.body)
	e.mu.Lock()
	defer e.mu.Unlock()
	ds, _ := e.datasetFor(w, r, c, cl)
	if ds == nil {
		return
	}
	// "The user must be the dataset owner" (REST page). The error a
	// non-owner gets is not documented; 401 PowerBINotAuthorizedException
	// is what the service answers a valid token that lacks the right, and
	// what the emulator answers a Viewer's refresh. A related call has been
	// seen answering "This operation is only supported for the dataset
	// owner" (maikvandergaag/msft-extensions#135), status not captured.
	if !strings.EqualFold(ds.ds.Owner, cl.principal()) {
		pbiError(w, http.StatusUnauthorized, "PowerBINotAuthorizedException", "")
		return
	}
	if perr != nil {
		pbiError(w, perr.status, "InvalidRequest", perr.msg)
		return
	}
	if !*ds.ds.Refreshable {
		// Unconfirmed; a DirectQuery or live-connection model has no
		// scheduled refresh in the portal, so refusing is the safe side.
		pbiError(w, http.StatusBadRequest, "InvalidRequest", "Dataset is not refreshable (DirectQuery or live connection); it has no refresh schedule.")
		return
	}
	if cl.IDTyp == "app" && patch.notifyOption != nil && *patch.notifyOption != "NoNotification" {
		// "Service principals only support the NoNotification value" (spec).
		pbiError(w, http.StatusBadRequest, "InvalidRequest", "A service principal can only set notifyOption NoNotification.")
		return
	}
	premium := ds.ws.ws.Capacity == "premium"
	if patch.times != nil && len(*patch.times) > slotLimit(premium) {
		pbiError(w, http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("A dataset on %s capacity can be refreshed at most %d times a day; the request lists %d times.", ds.ws.ws.Capacity, slotLimit(premium), len(*patch.times)))
		return
	}
	next := patch.apply(ds.sched)
	if next.Enabled && len(next.Days) == 0 {
		pbiError(w, http.StatusBadRequest, "InvalidRequest", "At least one day must be specified.")
		return
	}
	ds.sched = next
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// Schedule returns a dataset's refresh schedule as it stands, after any
// PATCH, with the defaults GET shows.
func (e *Emulator) Schedule(datasetID string) (ScheduleInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ds := e.datasets[strings.ToLower(datasetID)]
	if ds == nil {
		return ScheduleInfo{}, fmt.Errorf("no dataset %s in the scenario", datasetID)
	}
	e.fireSchedules(ds, e.Clock.Now())
	return scheduleJSON(ds.sched), nil
}

// fireSchedules starts, as the service would have, the scheduled refreshes
// whose times passed since the last check, each at its own time. Must hold
// e.mu; every request that names the dataset calls it before acting, so
// the history stays in order and quota and busy checks see them.
//
// A slot whose local time does not exist (the hour a DST change skips)
// moves forward by the length of the gap; a repeated hour fires once, at
// its first occurrence. Power BI's behaviour there is not documented. On
// shared capacity a slot past the daily quota is skipped. Like
// StartExternalRefresh, a slot does not wait for a refresh already running.
func (e *Emulator) fireSchedules(ds *dsState, now time.Time) {
	from := ds.schedChecked
	if !now.After(from) {
		return
	}
	ds.schedChecked = now
	s := ds.sched
	if !e.sc.Settings.FireSchedules || !s.Enabled || len(s.Days) == 0 || len(s.Times) == 0 || !*ds.ds.Refreshable {
		return
	}
	if from.Before(now.Add(-fireHorizon)) {
		from = now.Add(-fireHorizon)
	}
	loc := ds.location()
	premium := ds.ws.ws.Capacity == "premium"
	for _, t := range scheduleSlots(s, loc, from, now) {
		if !premium && ds.quotaUsed(t) >= sharedDaily {
			continue
		}
		e.startServiceRefresh(ds, typeScheduled, ds.behaviour, t, now)
	}
}

// location resolves the schedule's Windows time zone to a Location.
func (ds *dsState) location() *time.Location {
	if ds.loc != nil && ds.locFor == ds.sched.TimeZone {
		return ds.loc
	}
	loc := time.UTC
	if name, ok := windowszones.IANA(ds.sched.TimeZone); ok {
		if l, err := time.LoadLocation(name); err == nil {
			loc = l
		}
	}
	ds.loc, ds.locFor = loc, ds.sched.TimeZone
	return loc
}

// wallInstant is the instant a local time names. How Power BI treats DST
// changes is not documented; the emulator takes the safe reading: a time
// that occurs twice (clocks went back) fires once, at its first
// occurrence; a time that does not exist (clocks went forward) fires later
// by the length of the gap, so 02:30 fires at 03:30. (time.Date's own
// choice in both cases depends on the zone.)
func wallInstant(y int, mo time.Month, d, h, mi int, loc *time.Location) time.Time {
	wall := time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
	var first time.Time
	for _, probe := range []time.Time{wall.Add(-14 * time.Hour), wall.Add(14 * time.Hour)} {
		_, off := probe.In(loc).Zone()
		inst := wall.Add(-time.Duration(off) * time.Second)
		if l := inst.In(loc); l.Day() == d && l.Hour() == h && l.Minute() == mi && (first.IsZero() || inst.Before(first)) {
			first = inst
		}
	}
	if !first.IsZero() {
		return first
	}
	_, before := wall.Add(-14 * time.Hour).In(loc).Zone()
	return wall.Add(-time.Duration(before) * time.Second)
}

// scheduleSlots lists the instants in (from, to] at which the schedule
// fires, in order.
func scheduleSlots(s ScheduleInfo, loc *time.Location, from, to time.Time) []time.Time {
	var out []time.Time
	first := from.In(loc)
	day := time.Date(first.Year(), first.Month(), first.Day()-1, 0, 0, 0, 0, loc)
	for ; !day.After(to); day = time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc) {
		if !slices.Contains(s.Days, weekdays[day.Weekday()]) {
			continue
		}
		for _, hm := range s.Times {
			var h, m int
			if _, err := fmt.Sscanf(hm, "%d:%d", &h, &m); err != nil {
				continue
			}
			t := wallInstant(day.Year(), day.Month(), day.Day(), h, m, loc)
			if t.After(from) && !t.After(to) {
				out = append(out, t)
			}
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return slices.CompactFunc(out, func(a, b time.Time) bool { return a.Equal(b) })
}
