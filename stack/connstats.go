package stack

import (
	"reflect"

	"tunstack/tcpcore"
)

// Per-connection counters for diagnostics (serve's SIGUSR1 table, tests,
// labs). A connection the application has closed is not finished: the
// engine still sends what was queued, exchanges FINs, waits in TIME-WAIT,
// and its retransmissions count. So the stack keeps such connections in
// s.closing until the engine reports them CLOSED, then folds their counters
// into s.finished. Nothing else is kept of them, so a million short
// connections cost nothing once they are over.

// connWaker is the tcpcore.Waker of a Conn: it wakes the goroutines blocked
// on it and notices when a connection the application closed has ended in
// the engine too.
type connWaker struct{ c *Conn }

// Wake implements tcpcore.Waker. The stack calls it with s.mu held.
func (w *connWaker) Wake() {
	c := w.c
	c.n.Wake()
	c.fireReadable()
	if c.closed && c.tc.State() == tcpcore.Closed {
		c.s.retire(c)
	}
}

// closedByApp moves a connection the application just closed from the open
// set to the closing one, or retires it if the engine is done with it. The
// caller holds s.mu.
func (s *Stack) closedByApp(c *Conn) {
	delete(s.conns, c)
	if c.tc.State() == tcpcore.Closed || s.closed {
		s.retire(c)
		return
	}
	s.closing[c] = struct{}{}
}

// retire forgets a connection for good and adds its counters to the
// finished ones. It is idempotent. The caller holds s.mu.
func (s *Stack) retire(c *Conn) {
	if c.retired {
		return
	}
	c.retired = true
	delete(s.conns, c)
	delete(s.onReadable, c)
	delete(s.closing, c)
	if k := (flow{c.tc.LocalAddr(), c.tc.RemoteAddr()}); s.byKey[k] == c {
		delete(s.byKey, k)
	}
	addCounters(&s.finished, c.tc.Info().Counters)
	s.observeRetired(c) // metrics.go
}

// AllConns returns a snapshot of every connection the stack gave the
// application that the engine still tracks: the open ones (those Conns
// returns) and the ones the application closed that are still sending what
// was queued, closing or in TIME-WAIT. Their State tells them apart.
func (s *Stack) AllConns() []tcpcore.Info {
	if s.grp != nil {
		return concatOver(s.grp, (*Stack).allConns)
	}
	return s.allConns()
}

func (s *Stack) allConns() []tcpcore.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	infos := make([]tcpcore.Info, 0, len(s.conns)+len(s.closing))
	for c := range s.conns {
		infos = append(infos, c.tc.Info())
	}
	for c := range s.closing {
		infos = append(infos, c.tc.Info())
	}
	return infos
}

// ConnTotals returns the per-connection counters summed over every
// connection the stack gave the application since New: the finished ones
// and the current ones (AllConns), so that a test or a report can read what
// a transfer cost once its connection is gone.
func (s *Stack) ConnTotals() tcpcore.ConnCounters {
	if s.grp != nil {
		return sumOver(s.grp, (*Stack).connTotals)
	}
	return s.connTotals()
}

func (s *Stack) connTotals() tcpcore.ConnCounters {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := s.finished
	for c := range s.conns {
		addCounters(&total, c.tc.Info().Counters)
	}
	for c := range s.closing {
		addCounters(&total, c.tc.Info().Counters)
	}
	return total
}

// addCounters adds every counter of src to dst. It goes by reflection so
// that a counter the engine adds is summed without a change here;
// TestAddCountersSumsEveryField fails if one is of a kind it cannot add.
func addCounters(dst *tcpcore.ConnCounters, src tcpcore.ConnCounters) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
	for i := range d.NumField() {
		switch f := d.Field(i); f.Kind() {
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(f.Uint() + s.Field(i).Uint())
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.SetInt(f.Int() + s.Field(i).Int())
		}
	}
}
