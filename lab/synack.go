package lab

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// synack reproduces a classic capture of Linux (2015): a listener with
// backlog 5 that never accepts, and more clients than its accept queue
// holds. The clients that find the queue full get their SYN-ACK but have
// their final ACK dropped; the server retransmits the SYN-ACK five times
// (1, 2, 4, 8, 16 s apart), then forgets the half-open connection, and a
// write by the client after that meets a listener that knows nothing of
// it: RST.
//
// On a current kernel a SYN that arrives while the accept queue is already
// full is dropped outright (no SYN-ACK at all), and a SYN that arrives while
// backlog requests are pending is answered with a stateless SYN cookie
// (never retransmitted). The claimed pattern therefore needs SYNs that
// arrive while there is still room, whose ACKs arrive once there is not:
// the first wave of backlog clients fills the queue to one short of full,
// then the rest connect at once; the first of them takes the last place.
var synackExperiment = &experiment{
	name:  "synack",
	title: "accept queue full, accept never called: the final ACK is dropped and the SYN-ACK retransmitted",
	claim: "listen(5), no accept; past the queue's room the third ACK of the handshake is dropped, " +
		"the SYN-ACK is retransmitted 5 times, after which the connection is dropped and a later write is answered by RST",
	defaults: Params{Backlog: 5, Clients: 8, Hold: 66 * time.Second},
	duration: func(p Params) time.Duration { return p.Hold + 5*time.Second },
	check: func(p Params) error {
		if p.Clients < p.Backlog+2 {
			return fmt.Errorf("lab synack: with backlog %d the queue holds %d, so it needs at least %d clients for one to overflow",
				p.Backlog, p.Backlog+1, p.Backlog+2)
		}
		if p.Clients-p.Backlog > p.Backlog && p.Backlog > 0 {
			return fmt.Errorf("lab synack: the second wave (%d clients) must not exceed the backlog (%d), or Linux answers its SYNs with cookies; use at most %d clients",
				p.Clients-p.Backlog, p.Backlog, 2*p.Backlog)
		}
		return nil
	},
	run:     runSynack,
	verdict: synackVerdict,
}

// synackPayload is what the clients write at the hold.
var synackPayload = []byte("ping")

// synackReadWait is how long a client waits for an answer to its write.
const synackReadWait = 3 * time.Second

func runSynack(r *run) error {
	p := r.params
	l, err := r.srv.listen(serverPort, p.Backlog)
	if err != nil {
		return fmt.Errorf("lab: listen: %w", err)
	}
	r.closeAtEnd(l)
	r.tl.add("server", "listen(%v, backlog %d); accept() is never called", r.target, p.Backlog)

	// Wave 1 fills the accept queue to one short of full.
	wave1, err := r.openClients(1, p.Backlog)
	if err != nil {
		return err
	}
	r.mark("wave1")
	r.connectAll(wave1)
	for _, c := range wave1 {
		c.waitConnect(r.tl, 5*time.Second)
	}
	time.Sleep(200 * time.Millisecond) // the last final ACKs cross the wire
	r.snapshot(l, "after wave 1")

	// Wave 2: more than the last place, at once.
	wave2, err := r.openClients(p.Backlog+1, p.Clients-p.Backlog)
	if err != nil {
		return err
	}
	w2 := r.mark("wave2")
	r.connectAll(wave2)
	for _, c := range wave2 {
		c.waitConnect(r.tl, 5*time.Second)
	}
	// Between the retransmissions, and around the expiry of the half-open
	// entry at 63 s (1+2+4+8+16 s, then 32 s more), which Linux's timer
	// wheel fires up to a second late; the write waits until 66 s.
	for _, at := range []time.Duration{500 * time.Millisecond, 62 * time.Second, 65500 * time.Millisecond} {
		if at >= p.Hold {
			break
		}
		r.sleepUntil(w2 + at)
		r.snapshot(l, fmt.Sprintf("wave 2 + %.1f s", at.Seconds()))
	}
	r.sleepUntil(w2 + p.Hold)
	r.mark("write")
	var wg sync.WaitGroup
	for _, c := range append(wave1, wave2...) {
		if !c.rec.Connected {
			continue
		}
		if c.write(r.tl, synackPayload) != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.read(r.tl, synackReadWait)
		}()
	}
	wg.Wait()
	r.snapshot(l, "at the end")
	return nil
}

// synackTolerance is the allowed deviation of each retransmission gap.
const synackTolerance = 0.10

// expectedSynAckGaps are Linux's SYN-ACK retransmission intervals with
// tcp_synack_retries=5: the 1 s initial timeout doubled each time.
var expectedSynAckGaps = []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}

// SynAckGaps returns the intervals between the SYN-ACKs the server sent
// client n.
func (r *Result) SynAckGaps(n int) []time.Duration {
	t := r.Capture.SynAckTimes(n)
	var gaps []time.Duration
	for i := 1; i < len(t); i++ {
		gaps = append(gaps, t[i]-t[i-1])
	}
	return gaps
}

// GapsMatch reports whether gaps are want within tol (a fraction).
func GapsMatch(gaps, want []time.Duration, tol float64) bool {
	if len(gaps) != len(want) {
		return false
	}
	for i := range gaps {
		if math.Abs(float64(gaps[i]-want[i])) > tol*float64(want[i]) {
			return false
		}
	}
	return true
}

// ResetAfterWrite reports whether the server answered client n's data,
// written at or after the "write" mark, with an RST.
func (r *Result) ResetAfterWrite(n int) (time.Duration, bool) {
	write := r.Marks["write"]
	sawData := false
	for _, p := range r.Capture.ForClient(n) {
		if p.At < write {
			continue
		}
		if p.ToServer && p.Len > 0 {
			sawData = true
		}
		if !p.ToServer && p.RST && sawData {
			return p.At, true
		}
	}
	return 0, false
}

func formatGaps(gaps []time.Duration) string {
	var s []string
	for _, g := range gaps {
		s = append(s, fmt.Sprintf("%.2f", g.Seconds()))
	}
	return strings.Join(s, ", ") + " s"
}

func synackVerdict(res *Result) []string {
	var v []string
	p := res.Params
	if q, ok := res.queueAt("after wave 1"); ok && q.AcceptQueue >= 0 {
		v = append(v, fmt.Sprintf("after wave 1 (clients 1-%d): %s", p.Backlog, q))
	}
	if q, ok := res.queueAt("wave 2 + 0.5 s"); ok && q.AcceptQueue >= 0 {
		v = append(v, fmt.Sprintf("after wave 2: %s (backlog+1 = %d fit)", q, p.Backlog+1))
	}
	var overflowed, schedOK, reset []int
	for _, c := range res.Clients {
		sa := res.Capture.SynAckTimes(c.N)
		if len(sa) <= 1 {
			continue
		}
		overflowed = append(overflowed, c.N)
		gaps := res.SynAckGaps(c.N)
		line := fmt.Sprintf("client %d: connect() = 0 after %s; %d SYN-ACKs, gaps %s", c.N, secs(c.ConnectTook()), len(sa), formatGaps(gaps))
		if GapsMatch(gaps, expectedSynAckGaps, synackTolerance) {
			schedOK = append(schedOK, c.N)
			line += " = 1, 2, 4, 8, 16 s within 10%"
		} else {
			line += " (not Linux's 1, 2, 4, 8, 16 s)"
		}
		if at, ok := res.ResetAfterWrite(c.N); ok {
			reset = append(reset, c.N)
			line += fmt.Sprintf("; its write at %s answered by RST at %s, read() = %s", secs(c.WriteAt), secs(at), errText(c.ReadErr))
		} else {
			line += fmt.Sprintf("; its write at %s was not answered by RST (read: %s)", secs(c.WriteAt), errText(c.ReadErr))
		}
		v = append(v, line)
	}
	var cookies []string
	for _, c := range []string{"SyncookiesSent", "ListenOverflowSynCookieSent"} {
		if n := counterValue(res.Counters, c); n > 0 {
			cookies = append(cookies, fmt.Sprintf("%s %d", c, n))
		}
	}
	if len(cookies) > 0 {
		v = append(v, "SYN cookies were sent ("+strings.Join(cookies, ", ")+"): cookie SYN-ACKs keep no state and are never retransmitted")
	}
	// Clients that got into the queue: their write is simply ACKed.
	var quiet []string
	for _, c := range res.Clients {
		if _, ok := res.ResetAfterWrite(c.N); !ok && len(res.Capture.SynAckTimes(c.N)) == 1 {
			quiet = append(quiet, fmt.Sprint(c.N))
		}
	}
	v = append(v, fmt.Sprintf("clients %s are in the accept queue: their write is ACKed by the server and their read() stays blocked", list(quiet)))
	if q1, ok := res.queueAt("wave 2 + 62.0 s"); ok && q1.SynQueue >= 0 {
		if q2, ok := res.queueAt("wave 2 + 65.5 s"); ok {
			v = append(v, fmt.Sprintf("half-open entries: %d at 62 s, %d at 65.5 s after wave 2 (dropped after the last retry)", q1.SynQueue, q2.SynQueue))
		}
	}
	want := p.Clients - p.Backlog - 1
	switch {
	case len(overflowed) >= want && len(schedOK) == len(overflowed) && len(reset) == len(overflowed):
		v = append(v, fmt.Sprintf("the claim holds: %d client(s) had the final ACK dropped, 5 SYN-ACK retransmissions on Linux's schedule, and an RST for the later write", len(overflowed)))
	case len(overflowed) == 0:
		v = append(v, "the claimed pattern did not appear: no SYN-ACK was retransmitted")
	default:
		v = append(v, fmt.Sprintf("the claim holds in part: %d client(s) overflowed (expected %d), %d on Linux's schedule, %d reset after writing",
			len(overflowed), want, len(schedOK), len(reset)))
	}
	return v
}

func errText(err error) string {
	if err == nil {
		return "data"
	}
	if err == errTimeout {
		return "still blocked"
	}
	var e unix.Errno
	if errors.As(err, &e) && unix.ErrnoName(e) != "" {
		return unix.ErrnoName(e)
	}
	return err.Error()
}
