// Package scheduler owns time for pbirefresh's jobs. robfig/cron/v3 parses
// the expressions; this package computes the slots and runs the loop,
// because robfig's runner has no context, no injectable clock, one long
// timer that drifts across suspend and clock steps, an empty recovery
// chain, and DST behaviour we do not want. Main types: Schedule (Parse,
// Next), Scheduler (New, Set, Run, Tick, Trigger, Wait; Hold and Resync
// for runs settled or decided elsewhere; Start and Idle for runs another
// job's end triggered), Job, Journal (LastSlots, when it offers it, reads
// every job's last slot at once). It knows nothing of Power BI: a job's
// work is a RunFunc. Slots are found
// per zone period (the first match after an instant, directly), so a
// per-second schedule costs about a microsecond a slot, DST days included.
// The journal is written outside the scheduler's lock.
//
//	rule                    decision
//	identity                a run is (job, slot), slot = the scheduled instant in UTC;
//	                        the journal keeps it unique, across restarts too
//	grammar                 5 fields, optional leading seconds, @yearly @monthly @weekly
//	                        @daily @midnight @hourly, @every <whole seconds> (aligned to
//	                        the Unix epoch); day-of-month and day-of-week both set = either
//	never fires             an error at load (0 0 30 2 *); so is a TZ=/CRON_TZ= prefix
//	wall-clock vs interval  hour field written with explicit values (2, 1,13, 9-17) or
//	                        @daily and longer = wall-clock; hour * or */n, @hourly, @every
//	                        = interval, which follows absolute time
//	DST gap (wall-clock)    shift (default): runs at the first instant after the gap;
//	                        skip: not run. Several times shifted onto one instant merge
//	DST repeat (wall-clock) first (default): once, at the first occurrence; both: twice
//	DST (interval)          nothing inside a gap, both repeated hours, no backfill
//	day without midnight    follows the gap rule (America/Santiago)
//	lateness                a slot fired up to 1 min (+ jitter) late runs normally
//	clock                   checked at least every 30 s; a backward step never re-runs a
//	                        slot; a forward step makes the skipped slots missed
//	missed slots            after downtime (from the journal's last slot) or a forward
//	                        step: the newest one within catch_up runs once (kind catch-up),
//	                        every other one is recorded as missed (the newest 1,000 per
//	                        job and tick; older ones are only counted in the log);
//	                        catch_up 0 runs none
//	overlap                 skip (default): a slot firing while the previous run is in
//	                        progress is recorded as skipped; queue: at most one pending
//	limits                  max_in_flight and per_credential caps; runs beyond wait, for
//	                        their credential first, so a busy credential never holds a
//	                        global place, oldest first; SetLimits (a reload) changes
//	                        the caps at once, runs in flight keeping their places
//	jitter                  random [0, jitter) per run, or a stable per-job offset (fixed);
//	                        cut to the gap before the next slot, so slots never pile up
//	enabled: false          paused; on resume (Set), slots missed while paused are not run;
//	                        a job first Set enabled is taken up from the journal's last
//	                        slot (the daemon's journals count a resume as one, so a job
//	                        resumed across a restart misses nothing of its pause)
//	manual run              through the same overlap rules, recorded as manual
//	panics                  contained, logged with the stack, recorded as an error
//	reload                  unchanged jobs keep their state; changed ones restart from now
//	reload during a run      the run keeps the definition it fired with
//	shutdown                stop firing; runs get a cancelled context and persist; a
//	                        queued run does not start
package scheduler
