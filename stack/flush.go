package stack

import "tunstack/tcpcore"

// The bulk writer. The goroutine that made the engine's output usually
// writes it to the link itself (unlockFlush): for a request or a reply
// that is the quickest way out, with no other goroutine to wake. A bulk
// transfer is another matter: writing a GSO packet of tens of segments to
// the TUN runs the kernel peer's whole receive inside the write(2), as
// long as the producer took to make it (copying an application's Write
// into the send ring, or the relay's read from its outbound socket into
// lent room of it). Done by one goroutine, the two alternate and one of
// the two cores waits. So a batch holding a chunk of at least
// handOffSegments segments goes to the stack's own writer goroutine
// (flushLoop), which writes it and whatever the engine makes meanwhile,
// while the producer goes back to producing: a pipeline of two stages on
// two cores, as the kernel's sender and its softirq receive are.
//
// The writer's role moves with the batch (Stack.writing stays set), so
// one goroutine at a time still writes and the packets keep the engine's
// order.

// handOffSegments is the chunk size, in segments, from which a batch is
// bulk. A chunk that large is a burst of a window's worth of queued
// data; the replies of request/response traffic (rr, crr, an HTTP
// response of 10 KB is 7 segments) stay below it and are written by the
// goroutine that made them.
const handOffSegments = 16

// handOff gives the writer's role and the batch just collected to
// flushLoop if the batch is bulk, releases mu and reports true; otherwise
// it does nothing and reports false. The caller holds mu and is the
// writer. Not once the stack is closing: Close flushes its resets itself.
func (s *Stack) handOff() bool {
	if s.closed || s.flushReq == nil || !bulk(s.batch) {
		return false
	}
	// Sent under mu, so that it is in the channel before Close can set
	// closed and close done. It never blocks: the one writer at a time
	// hands off, and flushLoop takes each request before it clears
	// writing, so the channel is empty whenever a writer gets here.
	s.flushReq <- struct{}{}
	s.mu.Unlock()
	return true
}

// bulk reports whether a batch holds a chunk of at least handOffSegments
// segments.
func bulk(batch []*tcpcore.Packet) bool {
	for _, p := range batch {
		if p.Segments() >= handOffSegments {
			return true
		}
	}
	return false
}

// flushLoop is the bulk writer: for each batch handed to it, it writes the
// batch and then every batch the engine has made meanwhile, until there
// is none, and gives up the writer's role. A request handed over before
// Close is served before the loop ends.
func (s *Stack) flushLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.flushReq:
		default:
			select {
			case <-s.done:
				return
			case <-s.flushReq:
			}
		}
		s.mu.Lock()
		s.writeBatch()
		for {
			s.batch = s.e.Output(s.batch[:0])
			if len(s.batch) == 0 {
				break
			}
			s.writeBatch()
		}
		s.writing = false
		s.mu.Unlock()
	}
}
