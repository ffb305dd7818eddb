// Package configs reads pbirefresh's YAML configuration: the cloud and its
// endpoints, TLS trust, credentials with their secret references, job
// defaults and jobs. The steps stay visible: Load decodes strictly
// (internal/strictyaml: unknown keys, a second document or an empty file
// are errors), merges the defaults (DefaultConfig, DefaultJobSettings and
// DefaultNotifyTarget are values, merged field by field into what was
// written), then validates, reporting every problem at once as Problems,
// sorted by position: "file:line:col: job "name": problem; fix".
//
// Main types: Config, Credential, SecretRef, Job, Enhanced, JobSettings.
// Resolved values (endpoints for the chosen cloud, effective per-job
// settings, parsed schedules) are computed here so that the rest of the
// program never looks at defaults again. The policies' vocabulary (overlap,
// when_busy, ...) is package pbirefresh's.
//
// It does not reach any service, read any secret value or know what a
// refresh is; cmd/pbirefresh turns a Config into constructor arguments.
package configs
