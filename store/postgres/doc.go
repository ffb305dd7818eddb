// Package postgres keeps pbirefresh's state in PostgreSQL, shared by any
// number of replicas of the daemon. It passes the same contract as
// store/sqlite (store/storetest) and adds what several processes need:
//
//   - membership: each replica is a row whose lease (expires_at) is set by
//     the database's clock, renewed every third of the TTL; a replica
//     trusts its lease only for the TTL less a margin after the last
//     renewal it sent, on its own clocks, so it stops claiming and posting
//     before the database can call it dead (Gate, OnLeaseLost), and joins
//     again under a new id (OnRejoin);
//   - exactly once: the unique (job, slot) row decides which replica runs a
//     slot, a partial unique index allows one run of a job in flight, and
//     every write about a run is conditional on owning it under a valid
//     lease;
//   - takeover: Adopt moves the runs in flight of dead replicas to this one.
//
// Nothing depends on session state: no server-side prepared statements, no
// session advisory locks, no LISTEN; it works behind PgBouncer in
// transaction mode, and pool connection recycling never drops a lease.
package postgres
