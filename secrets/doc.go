// Package secrets turns a secret reference into its value. A reference is
// a string: a Key Vault secret identifier
// (https://<vault>/secrets/<name>[/<version>]), env:NAME, or file:PATH
// (systemd credentials live at /run/credentials/<unit>/<name>).
//
// Store resolves references, caches values in memory for a TTL, and forgets
// one on request (when the token service says the secret is wrong or
// expired, the caller forgets it and reads it again). Key Vault is read with
// azsecrets and the azcore.TokenCredential the caller chooses.
//
// A value never appears in an error, a log line or on disk: errors name the
// reference and carry a hint (Error.Hint) for the operator. This package
// does not know who uses the secret.
package secrets
