// Package emulator emulates, over HTTPS on loopback, the three services a
// Power BI refresh tool talks to: the Entra ID token service (OpenID
// configuration, v1 and v2 token endpoints, client secrets, certificate
// assertions, the password flow, App Service managed identity), Azure Key
// Vault secrets (the 401 challenge, versions, RBAC), and the Power BI REST
// API around refresh (classic and enhanced POST, history, execution
// details, cancel, groups with $filter, datasets and their owners, GET and
// PATCH refreshSchedule, dataset → dataflow links, dataflow refresh,
// transactions and cancel, admin groups).
//
// It follows Microsoft's swagger.json (testdata/swagger.json, the source of
// https://learn.microsoft.com/rest/api/power-bi) and the behaviour seen on
// the wire; where a fact is unconfirmed the code says so and picks what is
// safest for a client. The Azure SDKs run against it unmodified.
//
// Main types: Emulator (New, Start, URL, CAPEM, Client, Requests, and the
// knobs SetBehaviour, SetFaults, SetThrottle, Storm, StartExternalRefresh,
// StartExternalTransaction, Schedule, Republish, ...), Scenario (the YAML
// world, see demo.yaml and scenarios/), Clock and FakeClock. Refreshes are planned when they start and
// read off the clock, and scheduled refreshes (settings.fire_schedules) are
// started when a request for their dataset arrives, so a fake clock drives
// everything. The control API under /_emulator/ offers the knobs over HTTP;
// faults, throttling and the request log name endpoints by Operations.
//
// It does not emulate: instance discovery on login.microsoftonline.com,
// WS-Trust federation, CAE claims challenges, Key Vault writes, per-host
// vaults, dataflow schedules, schedules disabled after repeated failures,
// or capacity-level concurrency limits.
package emulator
