// Package pgurl reads PostgreSQL connection URLs the way libpq and pgx do,
// as far as checking them needs (the hosts really connected to, the query
// parameters, whether a password is written in), and redacts passwords
// from connection strings before a message quotes them. The configuration
// validates state.postgres.url with it; the PostgreSQL store redacts its
// messages with it.
package pgurl
