// Package emulator emulates, over HTTPS on loopback, the three services a
// Power BI refresh tool talks to: the Entra ID token service (OpenID
// configuration, v1 and v2 token endpoints, client secrets, certificate
// assertions, the password flow, App Service managed identity), Azure Key
// Vault secrets (the 401 challenge, versions, RBAC), and the Power BI REST
// API around dataset refresh (classic and enhanced POST, history, execution
// details, cancel, groups, datasets, schedules, dataflows, admin groups).
//
// Its behaviour follows shared/reference/powerbi-contract.md,
// azure-emulation.md and Microsoft's swagger.json; where those leave a fact
// unconfirmed the code says so and picks what is safest for a client.
// The Azure SDKs (MSAL Go, azidentity, azsecrets) run against it unmodified
// through their ordinary options: authority host, instance discovery off,
// challenge resource verification off, and an HTTP client trusting CAPEM.
//
// Main types: Emulator (New, Start, URL, CAPEM, Client, Requests, and the
// knobs SetBehaviour, SetFaults, SetThrottle, Storm, RotateSecret, ...),
// Scenario (the YAML world, see demo.yaml), Clock and FakeClock. Refreshes
// are planned when they start and read off the clock, so a fake clock moves
// an hour-long refresh to its end at once. The control API under /_emulator/
// offers the same knobs over HTTP. Fault and throttle endpoints are named
// by the Operations list.
//
// It does not emulate: instance discovery on login.microsoftonline.com,
// WS-Trust federation, CAE claims challenges, Key Vault writes, per-host
// vaults (one vault lives at the root), refresh schedules firing by
// themselves (StartExternalRefresh models them), or capacity-level
// concurrency limits.
package emulator
