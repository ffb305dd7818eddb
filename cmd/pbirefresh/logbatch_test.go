package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// writes records each Write the batch writer makes.
type writes struct {
	mu  sync.Mutex
	got []string
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, string(p))
	return len(p), nil
}

func (w *writes) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.got...)
}

// lines is every message written so far, in order.
func (w *writes) lines() []string {
	var out []string
	for _, b := range w.all() {
		for _, l := range strings.Split(strings.TrimSuffix(b, "\n"), "\n") {
			i := strings.Index(l, "msg=")
			out = append(out, strings.Fields(l[i+len("msg="):])[0])
		}
	}
	return out
}

// TestLogInfoLinesBatched: Info lines wait up to logLinger and go out in
// one write, in order; nothing is written before.
func TestLogInfoLinesBatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &writes{}
		log := newBatchLogger(newBatchWriter(w))
		log.Info("one")
		log.With("job", "a").Info("two")
		log.Debug("hidden")
		time.Sleep(logLinger - time.Millisecond)
		synctest.Wait()
		if got := w.all(); len(got) != 0 {
			t.Fatalf("written before the linger: %q", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := w.all(); len(got) != 1 {
			t.Fatalf("writes after the linger: %q, want one", got)
		}
		if got := strings.Join(w.lines(), ","); got != "one,two" {
			t.Fatalf("lines %s, want one,two", got)
		}
		// The next line starts a new batch.
		log.Info("three")
		time.Sleep(logLinger)
		synctest.Wait()
		if got := strings.Join(w.lines(), ","); got != "one,two,three" || len(w.all()) != 2 {
			t.Fatalf("lines %s in %d writes, want one,two,three in 2", got, len(w.all()))
		}
	})
}

// TestLogWarningWrittenAtOnce: a Warn or Error line is written at once,
// after the Info lines that wait, in their order.
func TestLogWarningWrittenAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, level := range []string{"warn", "error"} {
			w := &writes{}
			log := newBatchLogger(newBatchWriter(w))
			log.Info("before")
			if level == "warn" {
				log.Warn("trouble")
			} else {
				log.With("job", "a").Error("trouble")
			}
			if got := strings.Join(w.lines(), ","); got != "before,trouble" {
				t.Fatalf("%s: written at once %q, want before,trouble", level, got)
			}
			time.Sleep(2 * logLinger)
			synctest.Wait()
			if n := len(w.all()); n != 1 {
				t.Fatalf("%s: %d writes, want 1", level, n)
			}
		}
	})
}

// TestLogFlushAndBound: Flush writes what waits (the command's end), and
// a batch never grows past logMaxBatch unwritten.
func TestLogFlushAndBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &writes{}
		b := newBatchWriter(w)
		log := newBatchLogger(b)
		log.Info("last")
		b.Flush()
		if got := strings.Join(w.lines(), ","); got != "last" {
			t.Fatalf("after Flush %q, want last", got)
		}
		b.Flush() // nothing waits: no empty write
		if n := len(w.all()); n != 1 {
			t.Fatalf("%d writes after an idle Flush, want 1", n)
		}
		// After Close (the command's end), a late line goes out at once.
		log.Info("late")
		b.Close()
		log.Info("later")
		if got := strings.Join(w.lines(), ","); got != "last,late,later" {
			t.Fatalf("after Close %q, want last,late,later", got)
		}

		w2 := &writes{}
		b2 := newBatchWriter(w2)
		line := bytes.Repeat([]byte("x"), 1000)
		for range logMaxBatch/len(line) + 1 {
			b2.Write(line)
		}
		got := w2.all()
		if len(got) != 1 || len(got[0]) < logMaxBatch {
			t.Fatalf("a full batch was not written at once: %d writes", len(got))
		}
		time.Sleep(logLinger)
		synctest.Wait()
		total := 0
		for _, g := range w2.all() {
			total += len(g)
		}
		if want := (logMaxBatch/len(line) + 1) * len(line); total != want {
			t.Fatalf("%d bytes written, want %d", total, want)
		}
	})
}
