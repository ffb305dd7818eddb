// Command pbirefresh refreshes Power BI semantic models on schedules.
// See README.md for the commands and their exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	// CA roots built into the binary, used where the system has none (a
	// FROM scratch image); time zones are built in by package configs.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/pbirefresh/pbirefresh"
)

// Exit codes are an API: orchestrators alert on them (README "Exit codes").
const (
	exitOK         = 0
	exitUnsuccess  = 1 // the refresh ended unsuccessfully
	exitUsage      = 2 // invalid usage or configuration
	exitCannotWork = 3 // could not start or follow (credentials, permissions, network)
)

// exitError carries an exit code through Run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, a ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, a...)}
}

// command is one subcommand: flags, then Run, then Close.
type command interface {
	ParseFlags(args []string) error
	Run(ctx context.Context) error
	Close() error
}

// oneShotGrace is how long a one-shot command may take to print its result
// after the first SIGINT or SIGTERM before the process exits anyway.
const oneShotGrace = 2 * time.Second

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	daemon := len(os.Args) > 1 && (os.Args[1] == "run" || os.Args[1] == "emulator")
	var stoppedBy atomic.Int32 // the signal that stopped a one-shot command
	go func() {
		sig := <-sigs
		stoppedBy.Store(int32(sig.(syscall.Signal)))
		cancel()
		signal.Stop(sigs) // a second signal now ends the process at once
		if !daemon {
			// One-shot commands stop at the first signal: what waits on
			// the context returns; anything that does not is cut off.
			time.AfterFunc(oneShotGrace, func() { os.Exit(128 + int(sig.(syscall.Signal))) })
		}
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if sig := stoppedBy.Load(); sig != 0 && !daemon {
		// Cut off, whatever it printed: 128 + the signal, as shells and
		// orchestrators expect (130 SIGINT, 143 SIGTERM). The daemon's
		// orderly stop on a signal stays 0.
		code = 128 + int(sig)
	}
	os.Exit(code)
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// run dispatches a subcommand and turns its error into an exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var cmd command
	var log *batchWriter // the daemon's batched log, written out at the end
	switch args[0] {
	case "emulator":
		cmd = &emulatorCmd{stdout: stdout, logger: newLogger(stderr)}
	case "run":
		log = newBatchWriter(stderr)
		cmd = &runCmd{stdout: stdout, stderr: stderr, logger: newBatchLogger(log)}
	case "run-now":
		cmd = &runNowCmd{stdout: stdout, stderr: stderr}
	case "next":
		cmd = &nextCmd{stdout: stdout, stderr: stderr}
	case "history":
		cmd = &historyCmd{stdout: stdout, stderr: stderr}
	case "state":
		cmd = &stateCmd{stdout: stdout, stderr: stderr, logger: newLogger(stderr)}
	case "once":
		cmd = &onceCmd{stdout: stdout, stderr: stderr, logger: newLogger(stderr)}
	case "validate":
		cmd = &validateCmd{stdout: stdout, stderr: stderr}
	case "doctor":
		cmd = &doctorCmd{stdout: stdout, stderr: stderr, logger: newLogger(io.Discard)}
	case "import":
		cmd = &importCmd{stdout: stdout, stderr: stderr}
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "pbirefresh: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	err := cmd.ParseFlags(args[1:])
	if err == nil {
		err = cmd.Run(ctx)
	}
	if cerr := cmd.Close(); err == nil {
		err = cerr
	}
	if log != nil {
		log.Close()
	}
	if err == nil {
		return exitOK
	}
	code := exitCannotWork
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if errors.Is(err, errHelp) {
		return exitOK
	}
	var quiet *silent
	if errors.As(err, &quiet) {
		return code // already reported with the result
	}
	fmt.Fprintf(stderr, "pbirefresh: %v\n", err)
	// A list of problems carries a fix on each line already.
	var list interface{ Unwrap() []error }
	if h := pbirefresh.Hint(err); !errors.As(err, &list) && h != "" && !strings.Contains(err.Error(), h) {
		fmt.Fprintf(stderr, "hint: %s\n", h)
	}
	return code
}

var errHelp = errors.New("help requested")

// parseFlags parses a subcommand's flags: -h is not an error, anything
// else wrong is a usage error (exit 2), and so are stray arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return errHelp
		}
		return usageError("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usageError("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

const usage = `pbirefresh refreshes Power BI semantic models on schedules.

Usage:
  pbirefresh run --config FILE
                       the daemon: run the jobs on their schedules (SIGHUP reloads,
                       SIGTERM stops; refreshes in flight are reattached at the next start)
  pbirefresh run-now --config FILE --job NAME
                       ask the running daemon for a manual run (needs http.token_file)
  pbirefresh next --config FILE [--job NAME] [--count N] [--from RFC3339]
                       print the upcoming runs, with DST adjustments noted
  pbirefresh history --config FILE [--job NAME] [--limit N] [--output text|json]
                       print recorded runs from the state database
  pbirefresh state copy --config FILE --from STATE.db
                       copy an SQLite history into the config's state.postgres
                       (idempotent: runs already there are kept)
  pbirefresh once --config FILE --job NAME [--output text|json]
                       start one refresh now and follow it to its end
  pbirefresh validate --config FILE
                       check a configuration; exit 2 listing every problem
  pbirefresh doctor --config FILE [--job NAME]
                       walk the setup recipe (secret, token, workspace, dataset,
                       history) without refreshing anything
  pbirefresh import --config FILE --credential NAME --workspace NAME|ID [--workspace ...]
                    [--out FILE] [--disable-builtin]
                       write jobs that reproduce the datasets' Power BI refresh schedules;
                       --disable-builtin then turns those schedules off
  pbirefresh emulator [--listen ADDR] [--scenario FILE] [--ca-out FILE]
                      [--config-out FILE] [--fake-clock]
                       run the local Power BI + Entra ID + Key Vault emulator
  pbirefresh version   print the version
  pbirefresh help      print this text

Exit codes: 0 success (or skipped: busy with when_busy: skip), 1 the refresh
ended unsuccessfully (failed, cancelled, disabled, timed out, lost), 2 invalid
usage or config, 3 could not start or follow it (credentials, permissions,
network, throttled past the deadline, busy with when_busy: fail), 130/143 a
one-shot command cut off by SIGINT/SIGTERM.
`
