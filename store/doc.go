// Package store defines what pbirefresh keeps durably about runs: the Run
// record, the Outcome written when a run ends, the Query that pages
// through history, and the errors every implementation returns
// (ErrDuplicate: a (job, slot) pair is recorded once, ever).
//
// The implementations live in subpackages: store/sqlite, the embedded
// default for one machine. store/storetest is the contract suite each
// implementation passes with the same cases and the same expectations.
// cmd/pbirefresh declares the interface it consumes.
//
// It knows nothing of schedules or Power BI beyond the fields it stores.
package store
