// Package pbirefresh holds the words the whole program shares, each with
// one typed home: the kinds of run (Kind), the statuses a run passes
// through and ends in (Status), the per-job policies (Overlap, WhenBusy,
// OnTimeout, JitterMode, DSTGap, DSTRepeat), and errors that carry the
// operator's next step (Hinter, Hint, WithHint).
//
// Every other package may import it; it imports none of them. It holds no
// behaviour beyond what the words mean: scheduling lives in scheduler,
// Power BI in refresh, durable state in store, the YAML format in configs.
package pbirefresh
