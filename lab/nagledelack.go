package lab

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// nagle-delack reproduces the well-known stall of Nagle's algorithm meeting
// delayed ACKs in HTTP's request/response pattern. A requester writes a
// small header, then a small body, then reads the reply; the responder reads
// the whole request and answers with one write. With Nagle on, the body
// waits in the requester's send buffer until the header is acknowledged;
// the responder has nothing to send (it waits for the body) so it delays
// that ACK; the request stalls for the delayed-ACK timer.
//
// Part A puts the requester, and so Nagle's algorithm, on the stack under
// test, and the delaying ACKer on a kernel client: the stall shows the
// stack's Nagle against Linux's delayed ACK. Part B swaps the roles: a
// kernel client's Nagle against the stack's delayed ACK (gVisor has none).
// Each mode runs on a connection of its own:
//
//	A nagle     stack: Nagle on;     kernel client ACKs as it likes
//	A nodelay   stack: TCP_NODELAY;  kernel client ACKs as it likes
//	A quickack  stack: Nagle on;     kernel client sets TCP_QUICKACK before each read
//	B nagle     kernel client: Nagle on;    the stack ACKs as it likes
//	B nodelay   kernel client: TCP_NODELAY; the stack ACKs as it likes
var nagleDelackExperiment = &experiment{
	name:  "nagle-delack",
	title: "write-write-read: Nagle holds the second write until the first is ACKed, and the peer delays that ACK",
	claim: "delayed ACKs wait 100-200 ms for data to piggyback on, and HTTP's request/response pattern leaves little to piggyback on; " +
		"Nagle's algorithm holds small segments while earlier data is unacknowledged; together the request waits for the delayed-ACK timer",
	// Hold is the requester's pause between requests.
	defaults: Params{Backlog: 8, Clients: len(nagleModes), Hold: 10 * time.Millisecond},
	duration: func(p Params) time.Duration {
		return time.Duration(len(nagleModes)*nagleRequests) * (60*time.Millisecond + p.Hold)
	},
	check: func(p Params) error {
		if p.Clients != len(nagleModes) {
			return fmt.Errorf("lab nagle-delack uses one client per mode, %d in all, not %d", len(nagleModes), p.Clients)
		}
		return nil
	},
	run:     runNagleDelack,
	verdict: nagleDelackVerdict,
}

// nagleMode is one connection of the lab: who requests and how each end
// is set.
type nagleMode struct {
	Part     string // "A": the stack under test requests; "B": a kernel client does
	Name     string // nagle, nodelay, quickack
	NoDelay  bool   // TCP_NODELAY on the requester
	QuickAck bool   // TCP_QUICKACK on the responder before each read
}

var nagleModes = []nagleMode{
	{Part: "A", Name: "nagle"},
	{Part: "A", Name: "nodelay", NoDelay: true},
	{Part: "A", Name: "quickack", QuickAck: true},
	{Part: "B", Name: "nagle"},
	{Part: "B", Name: "nodelay", NoDelay: true},
}

const (
	// nagleRequests is the number of requests per mode: enough for Linux
	// to leave its quick-ACK start and settle into delaying ACKs.
	nagleRequests  = 12
	nagleHeaderLen = 40  // the request's first write
	nagleBodyLen   = 160 // its second write
	nagleReplyLen  = 300 // the response, one write
	// nagleStall separates a stalled request from a quick one: well above
	// the path's round trip (the wire's 5 ms plus scheduling), well below
	// Linux's 40 ms delayed-ACK floor.
	nagleStall = 20 * time.Millisecond
	// nagleWait bounds each read of a request or reply.
	nagleWait = 2 * time.Second
)

// NagleData is what the nagle-delack lab measured, one run per mode.
type NagleData struct {
	Runs []*NagleRun
}

// NagleRun is one mode's connection and its requests.
type NagleRun struct {
	Mode      nagleMode
	Client    int
	Requester string // "server" or "client n"
	Requests  []*NagleRequest
	Err       error
}

// NagleRequest is one request/response exchange.
type NagleRequest struct {
	N       int
	Start   time.Duration // the requester's first write
	Latency time.Duration // until it had read the whole reply

	// From the capture (filled by the verdict):
	HeaderAt time.Duration // the header's segment left the requester
	BodyAt   time.Duration // the body's segment left it
	AckAt    time.Duration // the responder acknowledged the header
	ReplyAt  time.Duration // the reply's last byte reached the requester
	Together bool          // header and body went in one segment
	Held     bool          // the body left only once the header was ACKed
}

// Stalled reports whether the request took longer than a quick round trip.
func (q *NagleRequest) Stalled() bool { return q.Latency >= nagleStall }

// Wire is the request's time on the wire, from the header leaving the
// requester to the end of the reply reaching it: the latency less the
// time the programs took to run, which a busy machine stretches.
func (q *NagleRequest) Wire() time.Duration { return q.ReplyAt - q.HeaderAt }

// WireStalled reports whether the exchange on the wire took longer than a
// quick round trip.
func (q *NagleRequest) WireStalled() bool { return q.ReplyAt > 0 && q.Wire() >= nagleStall }

// Run returns the run of a part and mode ("A", "nagle"), or nil.
func (d *NagleData) Run(part, mode string) *NagleRun {
	for _, r := range d.Runs {
		if r.Mode.Part == part && r.Mode.Name == mode {
			return r
		}
	}
	return nil
}

// Latencies returns the requests' latencies in order.
func (r *NagleRun) Latencies() []time.Duration {
	var l []time.Duration
	for _, q := range r.Requests {
		l = append(l, q.Latency)
	}
	return l
}

// Median is the median request latency.
func (r *NagleRun) Median() time.Duration {
	l := r.Latencies()
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return l[len(l)/2]
}

// Count counts the requests for which keep holds.
func (r *NagleRun) Count(keep func(*NagleRequest) bool) int {
	n := 0
	for _, q := range r.Requests {
		if keep(q) {
			n++
		}
	}
	return n
}

// nagleEnd is one end of a request/response connection, kernel socket or
// the stack under test's connection, seen the same way.
type nagleEnd struct {
	who      string
	write    func(p []byte) error
	read     func(p []byte, timeout time.Duration) (int, error)
	quickAck func() error // nil where the end cannot set it
}

func runNagleDelack(r *run) error {
	d := &NagleData{}
	r.data = d
	l, err := r.srv.listen(serverPort, r.params.Backlog)
	if err != nil {
		return fmt.Errorf("lab: listen: %w", err)
	}
	r.closeAtEnd(l)
	r.tl.add("server", "listen(%v); %d requests per mode: a %d-byte header, a %d-byte body, a %d-byte reply",
		r.target, nagleRequests, nagleHeaderLen, nagleBodyLen, nagleReplyLen)
	for i, m := range nagleModes {
		run, err := nagleRunMode(r, l, i+1, m)
		if run != nil {
			d.Runs = append(d.Runs, run)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// nagleRunMode opens client n's connection, sets it up for mode m and
// runs the requests on it.
func nagleRunMode(r *run, l listener, n int, m nagleMode) (*NagleRun, error) {
	cs, err := r.openClients(n, 1)
	if err != nil {
		return nil, err
	}
	c := cs[0]
	c.startConnect(r.tl, r.target)
	if err := c.waitConnect(r.tl, 5*time.Second); err != nil {
		return nil, fmt.Errorf("lab nagle-delack: client %d could not connect: %w", n, err)
	}
	sc, err := l.accept(5 * time.Second)
	if err != nil {
		return nil, fmt.Errorf("lab nagle-delack: accept for client %d: %w", n, err)
	}
	kernel := &nagleEnd{
		who:   clientName(n),
		write: func(p []byte) error { _, err := sockWriteAll(c.s, p, nagleWait); return err },
		read:  c.s.read,
		quickAck: func() error {
			var err error
			c.s.control(func(fd int) { err = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1) })
			return err
		},
	}
	stack := &nagleEnd{
		who:   "server",
		write: func(p []byte) error { _, err := sc.write(p, nagleWait); return err },
		read:  sc.read,
	}
	setKernelNoDelay := func(on bool) error {
		var err error
		c.s.control(func(fd int) { err = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, boolInt(on)) })
		return err
	}
	req, resp := stack, kernel
	setReq, setResp := sc.setNoDelay, setKernelNoDelay
	if m.Part == "B" {
		req, resp = kernel, stack
		setReq, setResp = setKernelNoDelay, sc.setNoDelay
	}
	// The responder answers with one write; TCP_NODELAY keeps its own
	// Nagle out of the picture.
	if err := firstErr(setReq(m.NoDelay), setResp(true)); err != nil {
		return nil, fmt.Errorf("lab nagle-delack: TCP_NODELAY: %w", err)
	}
	run := &NagleRun{Mode: m, Client: n, Requester: req.who}
	nagleLabel := map[bool]string{false: "Nagle on", true: "TCP_NODELAY"}[m.NoDelay]
	ack := "delays ACKs as it likes"
	if m.QuickAck {
		ack = "sets TCP_QUICKACK before each read"
	}
	r.tl.add("note", "mode %s/%s on client %d's connection: %s requests (%s), %s answers and %s",
		m.Part, m.Name, n, req.who, nagleLabel, resp.who, ack)

	header := bytes.Repeat([]byte{'h'}, nagleHeaderLen)
	body := bytes.Repeat([]byte{'b'}, nagleBodyLen)
	reply := bytes.Repeat([]byte{'r'}, nagleReplyLen)
	respErr := make(chan error, 1)
	go func() { respErr <- nagleRespond(r, resp, m.QuickAck, nagleRequests, reply) }()
	buf := make([]byte, nagleReplyLen)
	for i := 1; i <= nagleRequests; i++ {
		if i > 1 {
			time.Sleep(r.params.Hold)
		}
		q := &NagleRequest{N: i, Start: r.tl.now()}
		err := firstErr(req.write(header), req.write(body))
		if err == nil {
			_, err = readFull(req.read, buf)
		}
		q.Latency = r.tl.now() - q.Start
		if err != nil {
			run.Err = fmt.Errorf("request %d: %w", i, err)
			r.tl.add(req.who, "request %d failed: %v", i, errText(err))
			break
		}
		run.Requests = append(run.Requests, q)
		r.tl.addAt(q.Start, req.who, "request %d: write(%d-byte header), write(%d-byte body), read()", i, nagleHeaderLen, nagleBodyLen)
		r.tl.add(req.who, "request %d: reply read after %s", i, ms(q.Latency))
	}
	if err := <-respErr; err != nil && run.Err == nil {
		run.Err = err
	}
	return run, nil
}

// nagleRespond reads n requests and answers each with one write.
func nagleRespond(r *run, e *nagleEnd, quickAck bool, n int, reply []byte) error {
	buf := make([]byte, nagleHeaderLen+nagleBodyLen)
	for i := 1; i <= n; i++ {
		if quickAck {
			// Linux clears TCP_QUICKACK as it goes; applications that
			// want it set it again before each read.
			if err := e.quickAck(); err != nil {
				return fmt.Errorf("TCP_QUICKACK: %w", err)
			}
		}
		if _, err := readFull(e.read, buf); err != nil {
			return fmt.Errorf("%s reading request %d: %w", e.who, i, err)
		}
		if err := e.write(reply); err != nil {
			return fmt.Errorf("%s answering request %d: %w", e.who, i, err)
		}
	}
	return nil
}

// readFull fills p, each read waiting at most nagleWait.
func readFull(read func([]byte, time.Duration) (int, error), p []byte) (int, error) {
	got := 0
	for got < len(p) {
		n, err := read(p[got:], nagleWait)
		got += n
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// analyzeNagle finds each request's header and body segments in the
// capture and the responder's ACK of the header, and says which bodies
// waited for that ACK.
func analyzeNagle(res *Result, run *NagleRun) []Event {
	var notes []Event
	reqToServer := run.Mode.Part == "B" // the requester is the client in part B
	pkts := res.Capture.ForClient(run.Client)
	const reqLen = nagleHeaderLen + nagleBodyLen
	for _, q := range run.Requests {
		start := uint32(1 + (q.N-1)*reqLen) // relative seq of the header
		bodySeq := start + nagleHeaderLen
		replyEnd := uint32(1 + q.N*nagleReplyLen)
		var header, bodyP, ackP, replyP *Packet
		for i := range pkts {
			p := &pkts[i]
			if replyP == nil && p.ToServer != reqToServer && p.Len > 0 && int32(p.Seq+uint32(p.Len)-replyEnd) >= 0 {
				replyP = p
			}
			if p.ToServer == reqToServer && p.Len > 0 && p.Retrans == 0 {
				if header == nil && p.Seq == start {
					header = p
				}
				if bodyP == nil && p.Seq <= bodySeq && bodySeq < p.Seq+uint32(p.Len) {
					bodyP = p
				}
			}
			if header != nil && ackP == nil && p.ToServer != reqToServer && p.ACK && int32(p.Ack-bodySeq) >= 0 {
				ackP = p
			}
		}
		if header == nil || bodyP == nil || ackP == nil || replyP == nil {
			continue
		}
		q.HeaderAt, q.BodyAt, q.AckAt, q.ReplyAt = header.At, bodyP.At, ackP.At, replyP.At
		q.Together = header == bodyP
		q.Held = !q.Together && bodyP.At >= ackP.At
		responder := endpointAddr(res, !reqToServer)
		// The capture is at the server: it sees a request leave in part A
		// and arrive in part B.
		when := "left"
		if reqToServer {
			when = "arrived"
		}
		what := "an ACK alone"
		if ackP.Len > 0 {
			what = "the reply"
		}
		switch {
		case q.Held:
			notes = append(notes, Event{At: bodyP.At, Who: "note", What: fmt.Sprintf(
				"request %d: the body (seq %d:%d) was held by Nagle until %s ACKed the header (seq %d:%d) %s after it %s, with %s",
				q.N, bodySeq, bodySeq+nagleBodyLen, responder, start, bodySeq, ms(ackP.At-header.At), when, what)})
		case q.Together:
			notes = append(notes, Event{At: bodyP.At, Who: "note", What: fmt.Sprintf(
				"request %d: header and body left in one segment", q.N)})
		default:
			notes = append(notes, Event{At: bodyP.At, Who: "note", What: fmt.Sprintf(
				"request %d: the body left %s after the header, before its ACK; %s ACKed both with %s",
				q.N, ms(bodyP.At-header.At), responder, what)})
		}
	}
	return notes
}

func nagleDelackVerdict(res *Result) []string {
	d, _ := res.Data.(*NagleData)
	if d == nil {
		return []string{"no request was recorded"}
	}
	var v []string
	for _, run := range d.Runs {
		addNotes(res, analyzeNagle(res, run))
		m := run.Mode
		var b strings.Builder
		fmt.Fprintf(&b, "%s/%s (%s requests", m.Part, m.Name, run.Requester)
		if m.NoDelay {
			b.WriteString(" with TCP_NODELAY")
		} else {
			b.WriteString(" with Nagle on")
		}
		if m.QuickAck {
			b.WriteString(", the responder sets TCP_QUICKACK")
		}
		fmt.Fprintf(&b, "): latencies %s; median %s", formatMs(run.Latencies()), ms(run.Median()))
		stalled := run.Count((*NagleRequest).Stalled)
		wire := run.Count((*NagleRequest).WireStalled)
		held := run.Count(func(q *NagleRequest) bool { return q.Held })
		fmt.Fprintf(&b, "; %d of %d stalled (>= %s), %d of them on the wire; %d bodies held for the header's ACK",
			stalled, len(run.Requests), ms(nagleStall), wire, held)
		if held > 0 {
			var waits []time.Duration
			for _, q := range run.Requests {
				if q.Held {
					waits = append(waits, q.AckAt-q.HeaderAt)
				}
			}
			slices.Sort(waits)
			fmt.Fprintf(&b, ", its ACK %s to %s after the header (seen at the server)", ms(waits[0]), ms(waits[len(waits)-1]))
		}
		if run.Err != nil {
			fmt.Fprintf(&b, "; stopped: %v", run.Err)
		}
		v = append(v, b.String())
	}
	if a, n := d.Run("A", "nagle"), d.Run("A", "nodelay"); a != nil && n != nil {
		v = append(v, fmt.Sprintf("the stack under test's Nagle against Linux's delayed ACK: median %s with Nagle, %s with TCP_NODELAY", ms(a.Median()), ms(n.Median())))
	}
	if b, n := d.Run("B", "nagle"), d.Run("B", "nodelay"); b != nil && n != nil {
		v = append(v, fmt.Sprintf("Linux's Nagle against the stack under test's delayed ACK: median %s with Nagle, %s with TCP_NODELAY", ms(b.Median()), ms(n.Median())))
	}
	return v
}
