// Package store keeps pbirefresh's durable state in an embedded SQLite
// database (modernc.org/sqlite, pure Go): every run (job, slot, kind,
// refresh id, status, timestamps, polls, error, hint, note); from them it
// answers the last slot of each job and the refreshes in flight.
//
// A run is identified by (job, slot) and the pair is unique, so a slot is
// never recorded, and therefore never triggered, twice, across restarts
// too. Begin writes a run before its POST; SetRefresh records the refresh id
// the moment it is known; Finish writes the outcome. Schema changes are
// versioned migrations (PRAGMA user_version); a database that is not
// SQLite, or was written by a newer pbirefresh, stops Open with a clear
// error and is never overwritten.
//
// It knows nothing of schedules or Power BI beyond the fields it stores.
package store
