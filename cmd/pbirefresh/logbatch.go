package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// The daemon's log. A busy daemon writes two Info lines per run (started,
// ended); one write system call per line was about a twentieth of its CPU
// per run at 100 runs a second (each call also wakes the reader: journald
// or a container runtime). So Info lines wait up to logLinger for company
// and go out in one write; a Warn or Error line goes out at once, with
// whatever waits before it, and everything is written when the command
// ends. What a crash (SIGKILL, a fatal runtime error) can lose is the Info
// lines of its last logLinger; the store, not the log, is the record of
// runs. Lines keep their order and their own time= stamps.
const (
	logLinger   = 50 * time.Millisecond
	logMaxBatch = 64 << 10 // written at once beyond this
)

// batchWriter gathers writes and writes them together: logLinger after
// the first one, on Flush, or when logMaxBatch is reached.
type batchWriter struct {
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer // set while lines wait
	direct bool        // after Close: each write goes out at once
}

func newBatchWriter(w io.Writer) *batchWriter { return &batchWriter{w: w} }

// Write keeps a copy of p; it never fails (a failed write to the log
// cannot be reported anywhere better, as with an unbatched writer whose
// errors slog.Logger drops).
func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.direct {
		b.w.Write(p)
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= logMaxBatch {
		b.flushLocked()
	} else if b.timer == nil {
		b.timer = time.AfterFunc(logLinger, b.Flush)
	}
	return len(p), nil
}

// Flush writes what waits, now.
func (b *batchWriter) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

// Close writes what waits and makes later writes (a goroutine that logs
// while the process exits) go out at once: nothing waits for a timer that
// an exiting process would never see fire.
func (b *batchWriter) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	b.direct = true
}

func (b *batchWriter) flushLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if len(b.buf) == 0 {
		return
	}
	b.w.Write(b.buf)
	if cap(b.buf) > logMaxBatch {
		b.buf = nil // a burst's buffer is not kept for ever
	} else {
		b.buf = b.buf[:0]
	}
}

// flushingHandler writes a record of level Warn or above at once (it may
// be the last thing the process says), Info and Debug lines in batches.
type flushingHandler struct {
	slog.Handler
	w *batchWriter
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		h.w.Flush()
	}
	return err
}

func (h flushingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushingHandler{h.Handler.WithAttrs(attrs), h.w}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{h.Handler.WithGroup(name), h.w}
}

// newBatchLogger is newLogger writing through b.
func newBatchLogger(b *batchWriter) *slog.Logger {
	return slog.New(flushingHandler{newLogger(b).Handler(), b})
}
