// Package configs reads pbirefresh's YAML configuration: the cloud and its
// endpoints, TLS trust, credentials with their secret references, job
// defaults and jobs. Load decodes strictly (unknown keys are errors),
// applies defaults, then validates, reporting every problem at once as
// "file:line:col: job "name": problem; fix".
//
// Main types: Config, Credential, SecretRef, Job, Enhanced, JobSettings.
// Resolved values (endpoints for the chosen cloud, effective per-job
// settings) are computed here so that the rest of the program never looks
// at defaults again.
//
// It does not reach any service, read any secret value or know what a
// refresh is; cmd/pbirefresh turns a Config into constructor arguments.
package configs
