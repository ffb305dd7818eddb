// Package store defines what pbirefresh keeps durably about runs: the Run
// record, the Outcome written when a run ends, the Query that pages
// through history, and the errors every implementation returns
// (ErrDuplicate: a (job, slot) pair is recorded once, ever).
//
// Chain holds the after links between jobs; each implementation applies
// it (Chain.Step) inside the transaction that records an upstream run's
// end, so the dependent runs it triggers (status triggered, kind after,
// with the upstream run named) or skips are written with that end or not
// at all, and a crash neither loses nor doubles them.
//
// The implementations live in subpackages: store/sqlite, the embedded
// default for one machine, and store/postgres, shared by replicas (leases
// on the database's clock, conditional writes). store/storetest is the contract suite each
// implementation passes with the same cases and the same expectations.
// cmd/pbirefresh declares the interface it consumes.
//
// It knows nothing of schedules or Power BI beyond the fields it stores.
package store
