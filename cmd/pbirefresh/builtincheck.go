package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pbirefresh/pbirefresh/configs"
	"github.com/pbirefresh/pbirefresh/refresh"
)

// startupChecks bounds the built-in schedule check at start-up: a tenant of
// 10,000 jobs does not spend 10,000 requests on it (doctor checks them all).
const startupChecks = 200

// checkBuiltin warns, once after start-up, about each job whose dataset
// still refreshes on its own Power BI schedule: every slot would refresh it
// twice, and on shared capacity the quota runs out by midday. It reads one
// dataset at a time, for the first startupChecks scheduled dataset jobs.
func (c *runCmd) checkBuiltin(ctx context.Context, cfg *configs.Config, clients map[string]*refresh.Client) {
	checked, on := 0, 0
	for _, j := range cfg.Jobs {
		if checked >= startupChecks {
			c.logger.Info("built-in schedules checked for the first jobs only; `pbirefresh doctor` checks every job", "checked", checked)
			break
		}
		if j.IsDataflow() || j.Parsed == nil || !*j.Enabled {
			continue
		}
		client := clients[j.Credential]
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		t, err := c.names.of(lctx, j, client, false)
		var sched refresh.BuiltinSchedule
		if err == nil {
			sched, err = client.Schedule(lctx, t.dataset)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		checked++
		if err != nil || !builtinOn(sched) {
			continue
		}
		on++
		c.logger.Warn("the dataset also refreshes on its own Power BI schedule: it is refreshed twice", "job", j.Name,
			"builtin", fmt.Sprintf("%s (%s)", describeBuiltin(sched), sched.LocalTimeZoneID),
			"hint", "turn it off: pbirefresh import ... --disable-builtin, or in the dataset's settings as its owner")
	}
	if on > 0 {
		c.logger.Warn("datasets refreshed both by pbirefresh and by their own Power BI schedule", "jobs", on)
	}
}

// quotaHint names the schedule behind a quota_exceeded answer: how many
// refreshes it starts in 24 hours; the refresh engine's hint (shared
// capacity's limit and the fixes) follows it.
func quotaHint(j *configs.Job, now func() time.Time) func() string {
	return func() string {
		if j.Parsed == nil {
			return fmt.Sprintf("job %s has no schedule: the dataset's other refreshes (its own Power BI schedule, other jobs, people) used the day's quota", j.Name)
		}
		n := perDay(now().Add(-24*time.Hour), j.Parsed)
		count := fmt.Sprintf("up to %d refreshes", n)
		if n > perDayLimit {
			count = fmt.Sprintf("more than %d refreshes", perDayLimit)
		}
		if n <= sharedDaily {
			return fmt.Sprintf("job %s's schedule %q starts %s in 24 hours, within the quota: the dataset's other refreshes (its own Power BI schedule, other jobs, people) used the rest", j.Name, j.Schedule, count)
		}
		return fmt.Sprintf("job %s's schedule %q starts %s in 24 hours, more than shared capacity's %d", j.Name, j.Schedule, count, sharedDaily)
	}
}
