// Package pgtest starts throwaway PostgreSQL servers, and PgBouncer in
// transaction mode in front of one, for tests: Debian's postgresql and
// pgbouncer packages, a cluster made with initdb in a temporary directory,
// listening on a free loopback port, run as the unprivileged postgres user
// when the tests run as root (CI does). Outside CI a missing server skips
// the test; in CI (CI set) it fails it, like the other tool-dependent tests.
package pgtest
