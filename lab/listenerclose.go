package lab

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// listener-close closes a listening socket that has connections queued and
// never accepted. The common claim is that close(2) on a listener resets
// what hangs on it (in one telling, the half-open connections). On Linux
// (inet_csk_listen_stop) the connections that completed the handshake and
// wait in the accept queue are reset at once; half-open ones (here: final
// ACK dropped for a full queue) are dropped silently, and their client
// learns only when its next segment reaches a port nobody listens on,
// which answers RST.
var listenerCloseExperiment = &experiment{
	name:  "listener-close",
	title: "close(listener) with connections queued and never accepted: what the clients see",
	claim: "closing a listening socket resets the connections queued on it, so the clients waiting in its queues see RST " +
		"(in one telling, the half-open ones)",
	defaults: Params{Backlog: 2, Clients: 5, Hold: 5 * time.Second},
	duration: func(p Params) time.Duration { return p.Hold + listenerCloseWatch/2 },
	run:      runListenerClose,
	verdict:  listenerCloseVerdict,
}

// listenerCloseWatch is how long the clients wait after the close: enough
// for the overflowed clients' next data retransmission.
const listenerCloseWatch = 20 * time.Second

var listenerClosePayload = []byte("hello")

func runListenerClose(r *run) error {
	p := r.params
	l, err := r.srv.listen(serverPort, p.Backlog)
	if err != nil {
		return fmt.Errorf("lab: listen: %w", err)
	}
	r.tl.add("server", "listen(%v, backlog %d); accept() is never called; close after %s", r.target, p.Backlog, p.Hold)
	r.closeAtEnd(l) // a second close is harmless; this one covers failures
	cs, err := r.openClients(1, p.Clients)
	if err != nil {
		return err
	}
	start := r.mark("connect")
	closeAt := start + p.Hold
	deadline := closeAt + listenerCloseWatch
	r.connectAll(cs)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.waitConnect(r.tl, deadline-r.tl.now()) != nil {
				return
			}
			if c.write(r.tl, listenerClosePayload) != nil {
				return
			}
			c.read(r.tl, deadline-r.tl.now())
		}()
	}
	r.sleepUntil(closeAt)
	r.snapshot(l, "just before close")
	r.mark("close")
	err = l.close()
	r.tl.add("server", "close(listener) = %v", errOrZero(err))
	wg.Wait()
	return nil
}

func errOrZero(err error) string {
	if err == nil {
		return "0"
	}
	return err.Error()
}

// firstServerRST is when the server first reset client n, if it did.
func firstServerRST(res *Result, n int) (time.Duration, bool) {
	for _, p := range res.Capture.ForClient(n) {
		if !p.ToServer && p.RST {
			return p.At, true
		}
	}
	return 0, false
}

func listenerCloseVerdict(res *Result) []string {
	closeAt := res.Marks["close"]
	var v []string
	if q, ok := res.queueAt("just before close"); ok && q.AcceptQueue >= 0 {
		v = append(v, fmt.Sprintf("just before close: %s", q))
	}
	var atClose, later, none []string
	for _, c := range res.Clients {
		at, ok := firstServerRST(res, c.N)
		if !ok {
			none = append(none, fmt.Sprintf("%d (read: %s)", c.N, errText(c.ReadErr)))
			continue
		}
		// An RST that answers nothing the client sent since the close is
		// the close's own doing.
		cause := lastClientPacket(res, c.N, at)
		if cause == nil || cause.At < closeAt {
			atClose = append(atClose, fmt.Sprintf("%d (read() = %s)", c.N, errText(c.ReadErr)))
			continue
		}
		later = append(later, fmt.Sprintf("%d at close + %s, answering %s (read() = %s)",
			c.N, secs(at-closeAt), describePacket(cause), errText(c.ReadErr)))
	}
	v = append(v, "RST at the close, unprompted: clients "+list(atClose))
	v = append(v, "RST later, answering a segment that reached the closed port: clients "+list(later))
	v = append(v, "never reset: clients "+list(none))
	reset := 0
	for _, c := range res.Clients {
		if errors.Is(c.ReadErr, unix.ECONNRESET) {
			reset++
		}
	}
	switch {
	case reset == len(res.Clients):
		v = append(v, "every client saw ECONNRESET: the claim holds, close(2) resets; but it is the completed, queued connections that get the RST at once, not the half-open ones")
	default:
		v = append(v, fmt.Sprintf("%d of %d clients saw ECONNRESET", reset, len(res.Clients)))
	}
	return v
}

// lastClientPacket is the last packet client n sent up to at.
func lastClientPacket(res *Result, n int, at time.Duration) *Packet {
	var last *Packet
	for i := range res.Capture.Packets {
		p := &res.Capture.Packets[i]
		if p.Client == n && p.ToServer && p.At <= at {
			last = p
		}
	}
	return last
}

// describePacket names a client's packet: "its data retransmission 5".
func describePacket(p *Packet) string {
	if p.Retrans > 0 {
		return fmt.Sprintf("its %s retransmission %d", p.Kind(), p.Retrans)
	}
	if p.DupAck {
		return "its duplicate ACK"
	}
	return "its " + p.Kind()
}
