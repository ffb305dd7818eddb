package scheduler

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
)

// TestPlacesWaiterThatGivesUp: a run that stops waiting (shutdown) leaves
// the queue and holds nothing; the next release admits the one behind it.
func TestPlacesWaiterThatGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &places{cap: 1}
		if !p.take(context.Background()) {
			t.Fatal("no place under an empty cap of 1")
		}
		ctx, cancel := context.WithCancel(context.Background())
		gaveUp := make(chan bool)
		go func() { gaveUp <- p.take(ctx) }()
		synctest.Wait() // it waits, first in the queue
		admitted := make(chan bool)
		go func() { admitted <- p.take(context.Background()) }()
		synctest.Wait() // and this one behind it
		cancel()
		if <-gaveUp {
			t.Fatal("a cancelled wait took a place")
		}
		p.release()
		if !<-admitted {
			t.Fatal("the run behind the one that gave up was not admitted")
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.held != 1 || len(p.queue) != 0 {
			t.Fatalf("held %d, %d waiting; want 1 and 0", p.held, len(p.queue))
		}
	})
}

// TestPlacesUnderChurn: many runs taking, giving up and releasing while
// the cap is lowered from 3 to 2 are never more than 3 in at once, and
// leave nothing held or queued.
func TestPlacesUnderChurn(t *testing.T) {
	p := &places{cap: 3}
	var mu sync.Mutex
	in, peak := 0, 0
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			if i%5 == 0 {
				cancel() // gives up at once, or while waiting
			}
			defer cancel()
			if !p.take(ctx) {
				return
			}
			mu.Lock()
			in++
			peak = max(peak, in)
			mu.Unlock()
			runtime.Gosched() // let others try while this one is in
			mu.Lock()
			in--
			mu.Unlock()
			p.release()
		}()
		if i == 100 {
			p.setCap(2)
		}
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held != 0 || len(p.queue) != 0 {
		t.Fatalf("after every run: held %d, %d waiting", p.held, len(p.queue))
	}
	if peak > 3 {
		t.Fatalf("%d runs in at once under a cap of at most 3", peak)
	}
}
