package lab

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// backlog is the backlog-2, six-clients experiment: listen(2) with a small
// backlog, more clients than it admits connecting at once, and a server
// that sleeps before its accept loop (accept, read what the client sent,
// close). UNP says that with the queue full the server ignores SYNs and
// connect() ends in ETIMEDOUT; the claim checked here is that on Linux
// every connect() succeeds, some late, and accept() returns some
// connections at once and some later.
var backlogExperiment = &experiment{
	name:  "backlog",
	title: "listen backlog: more clients than the backlog admits, the server accepts only after a hold",
	claim: "with listen(fd, 2), six clients and accept() only after 20 s, Linux refuses nobody: " +
		"some connect() calls return at once and some after a delay, accept() likewise; " +
		"with backlog 0 accept() cannot take every connection; with backlog 10 everything is immediate",
	defaults: Params{Backlog: 2, Clients: 6, Hold: 20 * time.Second},
	duration: func(p Params) time.Duration { return p.Hold + 12*time.Second },
	check: func(p Params) error {
		if p.Clients > 200 {
			return fmt.Errorf("lab backlog: %d clients is more than the lab runs; use at most 200", p.Clients)
		}
		return nil
	},
	run:     runBacklog,
	verdict: backlogVerdict,
}

// backlogPayload is what each client sends once connected.
var backlogPayload = []byte("this is for test")

// backlogWaitAfterHold is how long the server keeps accepting after the
// hold: past a client's SYN retransmission at 63 s, the sixth, so that a
// client whose SYNs were dropped gets every chance Linux gives it.
const backlogWaitAfterHold = 45 * time.Second

func runBacklog(r *run) error {
	p := r.params
	l, err := r.srv.listen(serverPort, p.Backlog)
	if err != nil {
		return fmt.Errorf("lab: listen: %w", err)
	}
	r.closeAtEnd(l)
	r.tl.add("server", "listen(%v, backlog %d); accept() only after %s", r.target, p.Backlog, p.Hold)

	cs, err := r.openClients(1, p.Clients)
	if err != nil {
		return err
	}
	start := r.mark("connect")
	hold := start + p.Hold
	deadline := hold + backlogWaitAfterHold
	r.connectAll(cs)

	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.waitConnect(r.tl, deadline-r.tl.now()) != nil {
				return
			}
			if c.write(r.tl, backlogPayload) != nil {
				return
			}
			c.read(r.tl, deadline-r.tl.now())
		}()
	}

	r.sleepUntil(hold)
	r.mark("hold")
	r.snapshot(l, "just before the first accept")
	accepted := 0
	for accepted < p.Clients && r.tl.now() < deadline {
		ok, err := r.acceptOne(l, min(time.Second, deadline-r.tl.now()))
		if err != nil {
			break
		}
		if ok {
			accepted++
		}
	}
	if accepted < p.Clients {
		r.snapshot(l, "when the server gave up")
	}
	l.close()
	r.tl.add("server", "close(listener) after %d accepted", accepted)
	r.mark("listener-closed")
	wg.Wait()
	return nil
}

// acceptClass sorts a client by when the server accepted it.
func acceptClass(c *ClientRecord, hold time.Duration) string {
	switch {
	case !c.Accepted:
		return "never accepted"
	case c.AcceptedAt < hold+time.Second:
		return "accepted at the hold"
	default:
		return "accepted later"
	}
}

// connectClass sorts a client by how its connect() went.
func connectClass(c *ClientRecord) string {
	switch {
	case c.ConnectPending:
		return "connect still blocked"
	case c.ConnectErr != nil:
		return "connect failed"
	case c.ConnectTook() < 500*time.Millisecond:
		return "connect at once"
	default:
		return "connect late"
	}
}

// Shape is the structure of a backlog run: for each client, how connect()
// went and when it was accepted, as a sorted list of "connect class /
// accept class" with counts. Two stacks with the same Shape behaved alike
// as far as the applications can tell, whatever the exact times.
func (r *Result) Shape() string {
	hold := r.Marks["hold"]
	counts := map[string]int{}
	for _, c := range r.Clients {
		counts[connectClass(c)+", "+acceptClass(c, hold)]++
	}
	var parts []string
	for k, n := range counts {
		parts = append(parts, fmt.Sprintf("%d× %s", n, k))
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

func backlogVerdict(res *Result) []string {
	p := res.Params
	hold := res.Marks["hold"]
	var v []string
	v = append(v, "shape: "+res.Shape())

	var atOnce, late, failed, blocked []string
	for _, c := range res.Clients {
		switch connectClass(c) {
		case "connect at once":
			atOnce = append(atOnce, fmt.Sprint(c.N))
		case "connect late":
			late = append(late, fmt.Sprintf("%d (after %s)", c.N, secs(c.ConnectTook())))
		case "connect failed":
			failed = append(failed, fmt.Sprintf("%d (%v)", c.N, describeErrno(c.ConnectErr)))
		default:
			blocked = append(blocked, fmt.Sprint(c.N))
		}
	}
	v = append(v, fmt.Sprintf("connect(): at once for clients %s; late for %s; failed for %s; still blocked at the end for %s",
		list(atOnce), list(late), list(failed), list(blocked)))

	var atHold, later, never []string
	for _, c := range res.Clients {
		switch acceptClass(c, hold) {
		case "accepted at the hold":
			atHold = append(atHold, fmt.Sprint(c.N))
		case "accepted later":
			later = append(later, fmt.Sprintf("%d at %s (%s)", c.N, secs(c.AcceptedAt), whatCompleted(res, c)))
		default:
			never = append(never, fmt.Sprint(c.N))
		}
	}
	v = append(v, fmt.Sprintf("accept(): at the hold (%s) clients %s; later %s; never %s",
		secs(hold), list(atHold), list(later), list(never)))

	if q, ok := res.queueAt("just before the first accept"); ok && q.AcceptQueue >= 0 {
		v = append(v, fmt.Sprintf("at the hold the accept queue held %d with backlog %d: Linux's rule is backlog+1 = %d",
			q.AcceptQueue, q.Backlog, p.Backlog+1))
	}
	synAckRtx, synRtx, dataRtx := 0, 0, 0
	for _, pk := range res.Capture.Packets {
		switch {
		case pk.Retrans == 0:
		case pk.SYN && pk.ACK:
			synAckRtx++
		case pk.SYN:
			synRtx++
		case pk.Len > 0:
			dataRtx++
		}
	}
	v = append(v, fmt.Sprintf("on the wire: %d SYN-ACK retransmissions (final ACK dropped, server retries), %d SYN retransmissions (SYN dropped, client retries), %d data retransmissions by clients",
		synAckRtx, synRtx, dataRtx))
	if counterValue(res.Counters, "SyncookiesSent")+counterValue(res.Counters, "ListenOverflowSynCookieSent") > 0 {
		v = append(v, "the server answered some SYNs with SYN cookies (no state kept, so those never see a SYN-ACK retransmission)")
	}

	switch {
	case len(failed) == 0 && len(blocked) == 0 && len(never) == 0 && len(late) == 0 && len(later) == 0:
		v = append(v, "nobody waited: the accept queue took every client (the claim's backlog 10 case)")
	case len(failed) == 0 && len(blocked) == 0 && len(never) == 0:
		v = append(v, "the claim holds: nobody was refused or timed out; the clients beyond the queue were served late")
	case len(failed) == 0 && len(never) > 0:
		v = append(v, fmt.Sprintf("no connect() failed, but %d client(s) were never accepted before the server gave up (the claim's backlog 0 case)", len(never)))
	default:
		v = append(v, "some connect() failed: the claim does not hold here")
	}
	return v
}

// whatCompleted says which client packet let a late client into the
// accept queue: the last one it sent before it was accepted, and what it
// answered.
func whatCompleted(res *Result, c *ClientRecord) string {
	var last, lastSyn, lastSynAck *Packet
	for i := range res.Capture.Packets {
		p := &res.Capture.Packets[i]
		if p.Client != c.N || p.At > c.AcceptedAt || p.RST {
			continue
		}
		switch {
		case p.ToServer && p.SYN:
			lastSyn, last = p, p
		case p.ToServer:
			last = p
		case p.SYN:
			lastSynAck = p
		}
	}
	switch {
	case last == nil:
		return "no packet seen"
	case last.Len > 0 && last.Retrans > 0:
		return fmt.Sprintf("its data retransmission %d at %s completed the handshake", last.Retrans, secs(last.At))
	case last.Len > 0:
		return fmt.Sprintf("its data at %s completed the handshake", secs(last.At))
	case lastSyn != nil && lastSyn.Retrans > 0 && (lastSynAck == nil || lastSynAck.Retrans == 0):
		return fmt.Sprintf("its SYN retransmission %d at %s found room", lastSyn.Retrans, secs(lastSyn.At))
	case lastSynAck != nil && lastSynAck.Retrans > 0:
		return fmt.Sprintf("its ACK at %s to SYN-ACK retransmission %d completed the handshake", secs(last.At), lastSynAck.Retrans)
	}
	return fmt.Sprintf("its %s at %s", last.Kind(), secs(last.At))
}

func (r *Result) queueAt(label string) (Queue, bool) {
	for _, q := range r.Queues {
		if q.Label == label {
			return q.Queue, true
		}
	}
	return Queue{}, false
}

// list writes "1, 2, 3", or "none".
func list(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}
