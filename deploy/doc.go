// Package deploy holds what runs pbirefresh outside the source tree: the
// systemd unit (systemd/), the container image (container/), the Kubernetes
// manifests (kubernetes/), the Prometheus alerting rules (prometheus/), the
// Grafana dashboard (grafana/) and the program that builds the .deb and .rpm
// packages (package/).
//
// As Go it offers one thing: MetricNames, the daemon's metrics that the rules
// and the dashboard query (both embedded), so that a test can hold them
// against a running daemon's /metrics. The names are picked out of the PromQL
// by a small scanner that knows the language's keywords and syntax; it does not
// parse or evaluate PromQL (promtool checks the rules).
package deploy
