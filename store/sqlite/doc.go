// Package sqlite keeps pbirefresh's state in one SQLite file, for a daemon
// on one machine (the default). It uses the pure-Go modernc.org/sqlite
// driver, so the binary needs no C toolchain or library, and it passes the
// same contract as store/postgres (store/storetest).
//
//   - Recognition before any write (open.go): a pbirefresh database carries
//     its own application id ("PBIR") and a schema version; a file that is
//     another program's, was written by a newer pbirefresh, is damaged or is
//     not writable stops the open with the fix in the error's hint, and is
//     left byte for byte as it was. Migrations (sqlite.go) run each in its
//     own transaction.
//   - One daemon per file: a flock held for the life of the process (the
//     kernel drops it when the process dies, so it is never stale); a second
//     daemon refuses to start and names the first, from the daemon table.
//   - WAL, synchronous=NORMAL: readers (the API, the status page, `history`
//     beside a running daemon, which opens the file read-only and writes
//     nothing) never wait behind the writer.
//   - Group commit (commit.go): one goroutine owns the writer's connection
//     and commits writes in batches; a run about to POST commits at once,
//     the updates of runs in flight wait up to 100 ms for company.
//   - Chains: Finish applies store.Chain.Step in the transaction that
//     records the end (chain.go), so what an end triggers is written with
//     it or not at all.
package sqlite
