package lab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"tunstack/viz"
)

// synflood floods the stack under test's listener with SYNs from sources
// that never answer (SYNInjector, from the clients' namespace) while
// kernel clients connect, send a request and read a reply; the same run
// on tunstack, gVisor and Linux. It is the lab form of the SYN-flood test
// of `serve` (cmd/tunstack), which checks memory bounds; this one shows
// what each stack does with the flood, on the wire and in its counters.
var synFloodExperiment = &experiment{
	name:  "synflood",
	title: "SYN flood with cookies: spoofed SYNs at the listener while kernel clients connect and fetch a reply",
	claim: "with SYN cookies on, a flood of SYNs from sources that never answer fills the SYN queue only to its bound " +
		"(backlog+1 on Linux) and is answered with cookies beyond it, which keep no state; " +
		"real clients meanwhile connect at once and get their whole reply",
	defaults: Params{Backlog: 128, Clients: 10},
	duration: func(p Params) time.Duration { return synFloodDuration + synFloodTail + time.Second },
	check: func(p Params) error {
		if p.Clients > 50 {
			return fmt.Errorf("lab synflood: %d clients is more than the lab runs; use at most 50", p.Clients)
		}
		return nil
	},
	run:     runSYNFlood,
	verdict: synFloodVerdict,
	print:   printSYNFlood,
}

// synFloodSources are the spoofed sources: the upper half of the link's
// /24, where no host is (the clients are 198.18.0.1, the server .2). The
// link's prefix is the one every server routes on (the Linux server's
// namespace has no other route, and a kernel listener that cannot route a
// SYN-ACK keeps no request for it), so the SYN-ACKs to them go out on the
// link on every stack; the clients' kernel, which does not own them and
// does not forward, drops them (InAddrErrors). They never answer.
var synFloodSources = netip.MustParsePrefix("198.18.0.128/25")

// synFloodSources6 are the IPv6 experiment's: inside the link's /64 for
// the same reason, away from the clients (::1) and the server (::2).
var synFloodSources6 = netip.MustParsePrefix("fd00:7475:6e73::1:0/112")

// floodSources is the spoofed sources for the server's family.
func floodSources(server netip.Addr) netip.Prefix {
	if server.Is6() {
		return synFloodSources6
	}
	return synFloodSources
}

const (
	synFloodSYNs = 5000
	// synFloodRate paces the flood at 2,500 SYN/s, two seconds in all:
	// bursts of 25 every 10 ms, far below the TUN's queue of 500.
	synFloodRate     = 2500
	synFloodTick     = 10 * time.Millisecond
	synFloodMaxBurst = 100 // SYNs per tick at most, when a tick comes late
	synFloodDuration = synFloodSYNs * time.Second / synFloodRate
	// The clients start once the SYN queue has filled (129 SYNs take
	// about 50 ms) and are spread over the flood.
	synFloodFirstClient = 200 * time.Millisecond
	synFloodReply       = 64 << 10
	synFloodSample      = 100 * time.Millisecond
	// synFloodTail is how long the run goes on after the flood: its last
	// SYNs cross the wire's delay and the listener answers them, and the
	// samples show it going quiet.
	synFloodTail    = 500 * time.Millisecond
	synFloodRequest = "GET /\n"
)

// SYNFloodData is what the synflood lab measured (Result.Data).
type SYNFloodData struct {
	Sources netip.Prefix
	Target  netip.AddrPort // the flooded listener
	Origin  time.Time      // the experiment's start, to which the durations below are relative

	FloodStart, FloodEnd time.Duration
	Sent                 uint64 // SYNs the kernel queued
	ENOBUFS              int    // ticks whose burst met a full device queue (sent again the next tick)

	// CookieCounter names the stack's counter of SYN cookies sent, "" if
	// it has none.
	CookieCounter string
	// Samples are the listener's queues and the cookie counter every
	// 100 ms from the flood's start.
	Samples []SYNFloodSample

	Clients  []SYNFloodClient
	Accepted int // connections the server accepted

	// From the capture at the server, of the flood's sources only.
	FloodSYNs, FloodSYNACKs, FloodSYNACKRetrans int
	// HalfOpen counts the flood sources whose SYN-ACK was retransmitted:
	// the entries the listener kept in its SYN queue (a cookie's SYN-ACK
	// is sent once and forgotten). Their first retransmission comes a
	// second after the SYN-ACK, inside the flood.
	HalfOpen int
}

// SYNFloodSample is the listener at one instant; -1 where the stack does
// not show it.
type SYNFloodSample struct {
	At                    time.Duration
	CookiesSent           int64
	SynQueue, AcceptQueue int
}

// SYNFloodClient is one kernel client's fetch.
type SYNFloodClient struct {
	N           int
	Port        uint16
	Start       time.Duration // connect() called
	ConnectTook time.Duration
	Connected   bool
	Bytes       int    // of the reply
	Err         string // what went wrong, "" if nothing
}

// cookieCounters are the names under which each stack counts SYN cookies
// sent: Linux's and ours (nstat's name), gVisor's.
var cookieCounters = []string{"SyncookiesSent", "ListenOverflowSynCookieSent"}

func runSYNFlood(r *run) error {
	p := r.params
	l, err := r.srv.listen(serverPort, p.Backlog)
	if err != nil {
		return fmt.Errorf("lab: listen: %w", err)
	}
	r.closeAtEnd(l)
	r.tl.add("server", "listen(%v, backlog %d); accepts each client, reads its request, writes %d bytes, closes", r.target, p.Backlog, synFloodReply)
	sources := floodSources(r.target.Addr())
	d := &SYNFloodData{Sources: sources, Target: r.target, Origin: r.tl.start}
	for _, c := range r.srv.counters() {
		if slices.Contains(cookieCounters, c.Name) {
			d.CookieCounter = c.Name
		}
	}

	var inj *SYNInjector
	if err := r.topo.clientNS.Do(func() (err error) {
		inj, err = NewSYNInjector(r.target, sources, 5)
		return err
	}); err != nil {
		return err
	}
	defer inj.Close()
	cs, err := r.openClients(1, p.Clients)
	if err != nil {
		return err
	}

	// The server: accept, read the request, write the reply, close.
	stop := make(chan struct{})
	var srvWG sync.WaitGroup
	var accepted sync.Mutex
	srvWG.Add(1)
	go func() {
		defer srvWG.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			sc, err := l.accept(100 * time.Millisecond)
			if err == errTimeout {
				continue
			}
			if err != nil {
				return
			}
			accepted.Lock()
			d.Accepted++
			accepted.Unlock()
			srvWG.Add(1)
			go func() {
				defer srvWG.Done()
				defer sc.close()
				buf := make([]byte, 512)
				if _, err := sc.read(buf, 3*time.Second); err != nil {
					return
				}
				sc.write(bytes.Repeat([]byte{'x'}, synFloodReply), 5*time.Second)
			}()
		}
	}()

	// The sampler: the cookie counter and the queues every 100 ms.
	var smpWG sync.WaitGroup
	smpWG.Add(1)
	go func() {
		defer smpWG.Done()
		tick := time.NewTicker(synFloodSample)
		defer tick.Stop()
		for {
			q := l.queue()
			s := SYNFloodSample{At: r.tl.now(), CookiesSent: -1, SynQueue: q.SynQueue, AcceptQueue: q.AcceptQueue}
			if d.CookieCounter != "" {
				s.CookiesSent = int64(counterValue(r.srv.counters(), d.CookieCounter))
			}
			d.Samples = append(d.Samples, s)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	// The clients, spread over the flood.
	d.FloodStart = r.mark("flood")
	r.tl.add("flood", "%d SYNs from %s at %d SYN/s begin", synFloodSYNs, d.Sources, synFloodRate)
	d.Clients = make([]SYNFloodClient, len(cs))
	var cliWG sync.WaitGroup
	spacing := (synFloodDuration - 2*synFloodFirstClient) / time.Duration(max(1, len(cs)-1))
	for i, c := range cs {
		cliWG.Add(1)
		go func() {
			defer cliWG.Done()
			rec := &d.Clients[i]
			rec.N = c.n
			r.sleepUntil(d.FloodStart + synFloodFirstClient + time.Duration(i)*spacing)
			fetchDuringFlood(r, c, rec)
		}()
	}

	// The flood, paced.
	tick := time.NewTicker(synFloodTick)
	for inj.Sent() < synFloodSYNs && r.ctx.Err() == nil {
		<-tick.C
		due := min(synFloodSYNs, uint64((r.tl.now()-d.FloodStart)*synFloodRate/time.Second))
		if n := min(int(due)-int(inj.Sent()), synFloodMaxBurst); n > 0 {
			if _, err := inj.Send(n); errors.Is(err, unix.ENOBUFS) {
				d.ENOBUFS++
			} else if err != nil {
				tick.Stop()
				close(stop)
				cliWG.Wait()
				srvWG.Wait()
				smpWG.Wait()
				return fmt.Errorf("lab synflood: injecting SYN %d: %w", inj.Sent(), err)
			}
		}
	}
	tick.Stop()
	d.Sent = inj.Sent()
	d.FloodEnd = r.mark("flood-end")
	r.tl.add("flood", "%d SYNs sent", d.Sent)
	cliWG.Wait()
	r.sleepUntil(d.FloodEnd + synFloodTail)
	close(stop)
	srvWG.Wait()
	smpWG.Wait()
	r.mark("end")

	// The flood as the capture at the server saw it, by full address (the
	// flood's sources share ports, which the common capture reading keys
	// flows by).
	c, err := viz.ReadCapture(bytes.NewReader(r.topo.captureSnapshot()))
	if err != nil {
		return fmt.Errorf("lab synflood: the capture: %w", err)
	}
	for _, cn := range c.Conns {
		if cn.Local != r.target || !floodSources(r.target.Addr()).Contains(cn.Remote.Addr()) {
			continue
		}
		retransmitted := false
		for _, s := range cn.In.Segments {
			if s.SYN && !s.Retransmission {
				d.FloodSYNs++
			}
		}
		for _, s := range cn.Out.Segments {
			switch {
			case !s.SYN:
			case s.Retransmission:
				d.FloodSYNACKRetrans++
				retransmitted = true
			default:
				d.FloodSYNACKs++
			}
		}
		if retransmitted {
			d.HalfOpen++
		}
	}
	r.data = d
	return nil
}

// fetchDuringFlood is one client: connect, send the request, read the
// reply to its end.
func fetchDuringFlood(r *run, c *client, rec *SYNFloodClient) {
	if c.startConnect(r.tl, r.target) != nil {
		rec.Err = fmt.Sprintf("connect: %v", describeErrno(c.rec.ConnectErr))
		return
	}
	rec.Port, rec.Start = c.port, c.rec.ConnectCalled
	if err := c.waitConnect(r.tl, 5*time.Second); err != nil {
		rec.Err = fmt.Sprintf("connect: %v", describeErrno(err))
		return
	}
	rec.Connected, rec.ConnectTook = true, c.rec.ConnectTook()
	if err := c.write(r.tl, []byte(synFloodRequest)); err != nil {
		rec.Err = fmt.Sprintf("write: %v", describeErrno(err))
		return
	}
	buf := make([]byte, 16<<10)
	for {
		n, err := c.s.read(buf, 5*time.Second)
		rec.Bytes += n
		if err == io.EOF {
			break
		}
		if err != nil {
			rec.Err = fmt.Sprintf("read after %d bytes: %v", rec.Bytes, describeErrno(err))
			return
		}
	}
	c.rec.ReadN = rec.Bytes
	r.tl.add(clientName(c.n), "read %d bytes, then EOF", rec.Bytes)
	if rec.Bytes != synFloodReply {
		rec.Err = fmt.Sprintf("got %d bytes of %d", rec.Bytes, synFloodReply)
	}
}

// served reports whether a client got its whole reply.
func (c SYNFloodClient) served() bool { return c.Err == "" && c.Bytes == synFloodReply }

// target is the flooded listener; the IPv4 one for data from before the
// field.
func (d *SYNFloodData) target() netip.AddrPort {
	if d.Target.IsValid() {
		return d.Target
	}
	return netip.AddrPortFrom(serverAddr, serverPort)
}

// SynQueuePeak is the largest SYN queue sampled, -1 if the stack does not
// show it.
func (d *SYNFloodData) SynQueuePeak() int {
	peak := -1
	for _, s := range d.Samples {
		peak = max(peak, s.SynQueue)
	}
	return peak
}

// Cookies is the cookie counter's increase over the run, -1 without one.
func (d *SYNFloodData) Cookies() int64 {
	if d.CookieCounter == "" || len(d.Samples) == 0 {
		return -1
	}
	return d.Samples[len(d.Samples)-1].CookiesSent - d.Samples[0].CookiesSent
}

// Served counts the clients that got their whole reply.
func (d *SYNFloodData) Served() int {
	n := 0
	for _, c := range d.Clients {
		if c.served() {
			n++
		}
	}
	return n
}

func synFloodVerdict(res *Result) []string {
	d, ok := res.Data.(*SYNFloodData)
	if !ok {
		return []string{"the experiment recorded nothing"}
	}
	bound := res.Params.Backlog + 1
	var v []string
	v = append(v, fmt.Sprintf("flood: %d SYNs from %s in %s (%d SYN/s asked; ENOBUFS from a full device queue %d times, each burst sent again the next tick)",
		d.Sent, d.Sources, secs(d.FloodEnd-d.FloodStart), synFloodRate, d.ENOBUFS))
	if uint64(d.FloodSYNs) != d.Sent {
		v = append(v, fmt.Sprintf("the capture at the server holds %d of the %d flood SYNs: the rest did not reach the stack by the end of the run", d.FloodSYNs, d.Sent))
	}
	v = append(v, fmt.Sprintf("at the listener (capture): %d flood SYNs in, %d SYN-ACKs out to them, %d SYN-ACK retransmissions from %d half-open entries (a cookie's SYN-ACK is never retransmitted)",
		d.FloodSYNs, d.FloodSYNACKs, d.FloodSYNACKRetrans, d.HalfOpen))
	if c := d.Cookies(); c >= 0 {
		v = append(v, fmt.Sprintf("cookies: %s +%d", d.CookieCounter, c))
	} else {
		v = append(v, "cookies: the stack counts none")
	}
	peak := d.SynQueuePeak()
	switch {
	case peak > bound:
		v = append(v, fmt.Sprintf("SYN queue: peak %d in the 100 ms samples, past Linux's bound for backlog %d (%d) for an instant; the entries that kept state are the %d half-open ones above",
			peak, res.Params.Backlog, bound, d.HalfOpen))
	case peak >= 0:
		v = append(v, fmt.Sprintf("SYN queue: peak %d in the 100 ms samples (Linux's bound for backlog %d: %d)", peak, res.Params.Backlog, bound))
	default:
		v = append(v, "SYN queue: not visible on this stack; the half-open entries above are its size as the wire shows it")
	}
	var took []time.Duration
	var failed []string
	for _, c := range d.Clients {
		if c.Connected {
			took = append(took, c.ConnectTook)
		}
		if !c.served() {
			failed = append(failed, fmt.Sprintf("%d (%s)", c.N, c.Err))
		}
	}
	slices.Sort(took)
	line := fmt.Sprintf("clients: %d of %d got the whole %d-byte reply; server accepted %d", d.Served(), len(d.Clients), synFloodReply, d.Accepted)
	if len(took) > 0 {
		line += fmt.Sprintf("; connect() took median %s, max %s", secs(took[len(took)/2]), secs(took[len(took)-1]))
	}
	if len(failed) > 0 {
		line += "; not served: " + strings.Join(failed, ", ")
	}
	v = append(v, line)

	answered := d.FloodSYNACKs >= d.FloodSYNs && d.FloodSYNs > 0
	// The entries that kept state are those whose SYN-ACK the capture
	// shows retransmitted; a sample of the queue may see one more for an
	// instant (Linux's did) without one more entry keeping state.
	bounded := d.HalfOpen <= bound
	served := d.Served() == len(d.Clients)
	switch {
	case answered && bounded && served:
		v = append(v, fmt.Sprintf("the claim holds: every flood SYN was answered, at most %d kept half-open, the rest with cookies, and every client was served", bound))
	default:
		var why []string
		if !answered {
			why = append(why, fmt.Sprintf("%d of %d flood SYNs went unanswered", d.FloodSYNs-min(d.FloodSYNs, d.FloodSYNACKs), d.FloodSYNs))
		}
		if !bounded {
			why = append(why, fmt.Sprintf("the listener kept more than %d half-open entries", bound))
		}
		if !served {
			why = append(why, fmt.Sprintf("%d of %d clients were not served", len(d.Clients)-d.Served(), len(d.Clients)))
		}
		v = append(v, "the claim does not hold here: "+strings.Join(why, "; "))
	}
	return v
}

// printSYNFlood writes the report: settings, the samples, the clients and
// the verdict (a packet-by-packet timeline of 10,000 handshake segments
// would say nothing).
func printSYNFlood(r *Result, w io.Writer) {
	fmt.Fprintf(w, "== lab %s on %s (profile %s)\n", r.Experiment, r.Stack, r.Profile)
	fmt.Fprintf(w, "%s\n", r.Title)
	fmt.Fprintf(w, "claim: %s\n", r.Claim)
	fmt.Fprintf(w, "settings: backlog %d, %d clients; clients -> server delay %s; %s\n", r.Params.Backlog, r.Params.Clients, r.Delay, strings.Join(r.Sysctls, ", "))
	if d, ok := r.Data.(*SYNFloodData); ok {
		fmt.Fprintf(w, "\nthe listener every %s (seconds since start; -1: not shown by the stack):\n", synFloodSample)
		for _, s := range d.Samples {
			fmt.Fprintf(w, "  %7.3f  SYN queue %4d  accept queue %3d  cookies sent %d\n", s.At.Seconds(), s.SynQueue, s.AcceptQueue, s.CookiesSent)
		}
		fmt.Fprintf(w, "\nclients:\n")
		for _, c := range d.Clients {
			status := "served"
			if !c.served() {
				status = c.Err
			}
			fmt.Fprintf(w, "  client %2d port %5d  connect at %s took %s  %d bytes  %s\n", c.N, c.Port, secs(c.Start), secs(c.ConnectTook), c.Bytes, status)
		}
	}
	fmt.Fprintf(w, "\ncounters: %s\n", formatCounters(r.Counters))
	fmt.Fprintf(w, "\nverdict:\n")
	for _, v := range r.Verdict {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}
