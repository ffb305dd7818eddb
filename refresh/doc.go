// Package refresh starts Power BI dataset refreshes and follows each one,
// by the id its POST returned, to its true end.
//
// Credential gets tokens with MSAL Go (client secret, certificate, or the
// legacy password flow), renews them before they expire on the injected
// clock, and on AADSTS7000215/7000222 reads the secret again once and
// rebuilds the MSAL client, so a rotated secret is picked up without a
// restart. Client speaks the REST API: Start (classic or enhanced body),
// Status (details endpoint for enhanced refreshes, history for classic
// ones, with a grace period for the history's lag), Cancel (only refreshes
// it started), and Run, which applies a job's policy: busy handling,
// adaptive polling guided by the dataset's recent durations, Retry-After,
// backoff with jitter, 401 renewal, the client-side deadline and what to do
// when it passes. Results carry the service's codes and a hint naming the
// recipe step that fixes a failure.
//
// RunDataflow does the same for a Gen1 dataflow, whose POST answers with no
// id: its transaction is told apart by comparing the dataflow's transaction
// list before and after the POST (txnWindow), never adopting one it did not
// start, then followed to its end; FollowDataflow and FindStartedDataflow
// reattach and settle as Follow and FindStarted do for datasets.
// ResolveWorkspace and ResolveDataset find ids by name (exact first, else a
// unique case-insensitive match), Schedule and DisableSchedule read and
// turn off a dataset's own Power BI schedule, and UpstreamDataflows lists
// which dataflows a workspace's datasets read.
//
// It consumes TokenSource and SecretSource and knows nothing of cron,
// configuration files or storage.
package refresh
