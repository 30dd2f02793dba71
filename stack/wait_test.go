package stack

import (
	"sync"
	"testing"
)

// TestNotifierWakesEveryWaiterOnce: one Wake releases every call waiting
// at that moment, however many, and leaves no token behind, so the next
// wait blocks until the next Wake.
func TestNotifierWakesEveryWaiterOnce(t *testing.T) {
	for _, waiters := range []int{1, 2, 5} {
		var mu sync.Mutex
		var n notifier
		var wg sync.WaitGroup
		registered := make(chan struct{}, waiters)
		for range waiters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mu.Lock()
				ch, gen := n.wait()
				mu.Unlock()
				registered <- struct{}{}
				<-ch
				mu.Lock()
				n.done(gen)
				mu.Unlock()
			}()
		}
		for range waiters {
			<-registered
		}
		mu.Lock()
		n.Wake()
		mu.Unlock()
		wg.Wait()
		mu.Lock()
		if n.waiters != 0 || n.older != 0 || len(n.sig) != 0 {
			t.Errorf("%d waiters: after all woke, waiters %d, owed %d, tokens %d; want 0, 0, 0", waiters, n.waiters, n.older, len(n.sig))
		}
		mu.Unlock()
	}
}

// TestNotifierWaitDoesNotAllocate: after a socket's first wait, blocking
// and being woken allocate nothing.
func TestNotifierWaitDoesNotAllocate(t *testing.T) {
	var mu sync.Mutex
	var n notifier
	mu.Lock()
	n.wait()
	n.done(n.gen)
	mu.Unlock()
	allocs := testing.AllocsPerRun(100, func() {
		mu.Lock()
		ch, gen := n.wait()
		n.Wake() // as if the engine woke the socket right away
		mu.Unlock()
		<-ch
		mu.Lock()
		n.done(gen)
		mu.Unlock()
	})
	if allocs != 0 {
		t.Fatalf("a wait and its wakeup allocate %.1f times, want 0", allocs)
	}
}
