package scheduler

import (
	"context"
	"slices"
	"sync"
)

// places counts the runs in flight under one cap (0: none) that a reload
// may change. Runs that find no place wait their turn, oldest first. A
// lower cap lets the runs that hold a place finish and admits new ones only
// below it; a higher one admits waiting runs at once. Runs are counted
// also while there is no cap, so that one set later counts them.
type places struct {
	mu    sync.Mutex
	cap   int
	held  int
	queue []chan struct{} // waiting runs, oldest first; closed when admitted
}

// take waits for a place; false: ctx ended first, and nothing is held.
func (p *places) take(ctx context.Context) bool {
	p.mu.Lock()
	if len(p.queue) == 0 && p.free() {
		p.held++
		p.mu.Unlock()
		return true
	}
	admitted := make(chan struct{})
	p.queue = append(p.queue, admitted)
	p.mu.Unlock()
	select {
	case <-admitted:
		return true
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		select {
		case <-admitted: // at the same moment: give the place on
			p.held--
			p.admit()
		default:
			p.queue = slices.DeleteFunc(p.queue, func(c chan struct{}) bool { return c == admitted })
		}
		return false
	}
}

func (p *places) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held--
	p.admit()
}

func (p *places) setCap(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cap = n
	p.admit()
}

func (p *places) free() bool { return p.cap <= 0 || p.held < p.cap }

// admit lets waiting runs in, oldest first, while there are places.
func (p *places) admit() {
	for len(p.queue) > 0 && p.free() {
		close(p.queue[0])
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.held++
	}
}
