package emulator

import (
	"fmt"
	"strings"

	"github.com/pbirefresh/pbirefresh/internal/windowszones"
)

// Validation rules for workspace names, dataset owners, refresh schedules
// and upstream dataflow links; (*Scenario).Validate calls them.

// defaultOwner picks the owner of a dataset whose scenario names none.
func defaultOwner(w *Workspace) string {
	for _, m := range w.Members {
		if strings.EqualFold(m.Role, "admin") {
			return m.Principal
		}
	}
	if w.PersonalOf != "" {
		return w.PersonalOf
	}
	if len(w.Members) > 0 {
		return w.Members[0].Principal
	}
	return ""
}

// validateWorkspaceNames refuses two workspaces of one name. Power BI keeps
// workspace names unique in a tenant, without regard to case, so a client
// may resolve a workspace by name and expect at most one match. Every
// user's "My workspace" shares that one name and is exempt.
func (sc *Scenario) validateWorkspaceNames() []error {
	var errs []error
	seen := map[string]int{}
	for i, w := range sc.Workspaces {
		if w.PersonalOf != "" {
			continue
		}
		p := fmt.Sprintf("workspaces[%d].name", i)
		if strings.TrimSpace(w.Name) == "" {
			errs = append(errs, fieldError{p, "a workspace needs a name"})
			continue
		}
		key := strings.ToLower(w.Name)
		if prev, ok := seen[key]; ok {
			errs = append(errs, fieldError{p, fmt.Sprintf("workspace name %q is already used by workspaces[%d] (%q); Power BI workspace names are unique without regard to case",
				w.Name, prev, sc.Workspaces[prev].Name)})
			continue
		}
		seen[key] = i
	}
	return errs
}

// validateUpstreamDataflows checks that every upstream_dataflows entry names
// a dataflow of the scenario, in any workspace, once.
func (sc *Scenario) validateUpstreamDataflows() []error {
	flows := map[string]bool{}
	for _, w := range sc.Workspaces {
		for _, f := range w.Dataflows {
			flows[strings.ToLower(f.ID)] = true
		}
	}
	var errs []error
	for i, w := range sc.Workspaces {
		for j, d := range w.Datasets {
			listed := map[string]bool{}
			for k, id := range d.UpstreamDataflows {
				p := fmt.Sprintf("workspaces[%d].datasets[%d].upstream_dataflows[%d]", i, j, k)
				switch {
				case !flows[strings.ToLower(id)]:
					errs = append(errs, fieldError{p, fmt.Sprintf("dataflow %q is not declared under any workspace's dataflows", id)})
				case listed[strings.ToLower(id)]:
					errs = append(errs, fieldError{p, fmt.Sprintf("dataflow %s is listed twice", id)})
				}
				listed[strings.ToLower(id)] = true
			}
		}
	}
	return errs
}

// validate checks a scenario schedule by the rules the PATCH endpoint
// applies, and writes days, time zone and notify option in the service's
// spelling.
func (s *ScheduleInfo) validate(path, capacity string) []error {
	var errs []error
	bad := func(p, format string, a ...any) {
		errs = append(errs, fieldError{p, fmt.Sprintf(format, a...)})
	}
	seen := map[string]bool{}
	for i, d := range s.Days {
		day, ok := canonicalDay(d)
		if !ok {
			bad(fmt.Sprintf("%s.days[%d]", path, i), "%q is not a day; use Sunday to Saturday", d)
			continue
		}
		if seen[day] {
			bad(fmt.Sprintf("%s.days[%d]", path, i), "%s is listed twice", day)
		}
		seen[day] = true
		s.Days[i] = day
	}
	seen = map[string]bool{}
	for i, t := range s.Times {
		if !scheduleTimeRE.MatchString(t) {
			bad(fmt.Sprintf("%s.times[%d]", path, i), "%q is not a time hh:mm with minutes 00 or 30", t)
		} else if seen[t] {
			bad(fmt.Sprintf("%s.times[%d]", path, i), "%s is listed twice", t)
		}
		seen[t] = true
	}
	if limit := slotLimit(capacity == "premium"); len(s.Times) > limit {
		bad(path+".times", "%d times a day; a %s workspace allows at most %d", len(s.Times), capacity, limit)
	}
	if s.Enabled && len(s.Days) == 0 {
		bad(path+".days", "an enabled schedule needs at least one day")
	}
	if s.TimeZone != "" {
		if id, ok := windowszones.Canonical(s.TimeZone); ok {
			s.TimeZone = id
		} else {
			bad(path+".time_zone", "%q is not a Windows time zone id (such as UTC or W. Europe Standard Time)", s.TimeZone)
		}
	}
	if s.NotifyOption != "" {
		if v, ok := foldEnum(s.NotifyOption, scheduleNotifyOptions); ok {
			s.NotifyOption = v
		} else {
			bad(path+".notify_option", "must be NoNotification or MailOnFailure, not %q", s.NotifyOption)
		}
	}
	return errs
}
