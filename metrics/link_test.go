package metrics

import (
	"testing"

	"tunstack/netif"
)

// wakerPipe is a pipe end whose reads can be woken, as a TUN's.
type wakerPipe struct {
	*netif.PipeEnd
	wakes int
}

func (w *wakerPipe) WakeRead()     { w.wakes++ }
func (w *wakerPipe) QueueLen() int { return 7 }

// TestLinkCounterPassesTheWakerThrough: the stack above a counter wakes the
// reader of the link underneath; over a link without a waker there is none.
func TestLinkCounterPassesTheWakerThrough(t *testing.T) {
	a, b := netif.NewPipe(1500)
	defer a.Close()
	defer b.Close()
	if w := netif.ReadWakerOf(NewLinkCounter(a)); w != nil {
		t.Errorf("a counter over a pipe end has waker %v, want none", w)
	}
	wp := &wakerPipe{PipeEnd: b}
	w := netif.ReadWakerOf(NewLinkCounter(wp))
	if w == nil {
		t.Fatal("a counter over a link with a waker has none")
	}
	w.WakeRead()
	if wp.wakes != 1 || w.QueueLen() != 7 {
		t.Errorf("the counter's waker made %d wakes of the link's and reports a queue of %d; want 1 and 7", wp.wakes, w.QueueLen())
	}
}
