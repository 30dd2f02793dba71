package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"tunstack/policy"
)

// zero-window checks the common account of a slow receiver (its window
// falls to zero, the sender probes it) in both directions, on one listener:
//
//   - client 1, a kernel socket with a small SO_RCVBUF, connects and stops
//     reading while the stack under test writes to it: its window falls to
//     zero, the stack under test probes it (RFC 9293 §3.8.6.1) with growing
//     gaps, and when the client reads again its window update restarts the
//     transfer;
//   - client 2 writes to the stack under test, whose application does not
//     read: the stack's small receive buffer fills, it advertises a zero
//     window, answers the kernel's probes with it, and sends a window update
//     when the application reads again;
//   - client 3 writes to the stack under test before its application has
//     even accepted the connection: the same, while the connection waits in
//     the accept queue, until the application accepts it and reads.
//
// Each direction carries zwBytes of seeded random data, hashed with
// SHA-256 at both ends.
var zeroWindowExperiment = &experiment{
	name:  "zero-window",
	title: "a receiver that stops reading, both ways: zero window, zero-window probes with backoff, window update on reading again",
	claim: "a slow receiver brings the sender's window to 0; the sender then sends zero-window probes (ZWP) " +
		"for the receiver to ACK with its window, typically 3 of them, 30-60 s apart; after 3 some stacks send RST and drop the connection",
	defaults: Params{Backlog: 2, Clients: 3, Hold: 4 * time.Second},
	duration: func(p Params) time.Duration { return 3*p.Hold + 3*time.Second },
	check: func(p Params) error {
		if p.Clients != 3 {
			return fmt.Errorf("lab zero-window uses exactly 3 clients (the stack sends to one; two send to it, after and before accept), not %d", p.Clients)
		}
		if p.Hold < time.Second {
			return fmt.Errorf("lab zero-window: the receivers stop reading for --hold; %s is too short to see probes back off, give at least 1s", p.Hold)
		}
		return nil
	},
	profile: func(p *policy.Profile) { p.RcvBuf = zwStackRcvBuf },
	run:     runZeroWindow,
	verdict: zeroWindowVerdict,
}

const (
	// zwBytes is what each direction carries: many times either receive
	// buffer, so the window closes whatever the sender's buffer holds.
	zwBytes = 64 << 10
	// zwClientRcvBuf is client 1's SO_RCVBUF; Linux doubles it (socket(7)),
	// and advertises about half of that.
	zwClientRcvBuf = 4096
	// zwStackRcvBuf is the stack under test's default receive buffer
	// (tcp_rmem[1]): the profile's RcvBuf for tunstack and gVisor, the
	// sysctl in the server's namespace for Linux.
	zwStackRcvBuf = 8192
	// zwTransferWait bounds each transfer after reading resumes.
	zwTransferWait = 20 * time.Second
)

// ZeroWindowData is what the zero-window lab measured: one Transfer per
// direction, the stack under test's send first.
type ZeroWindowData struct {
	Transfers []*Transfer
}

// Transfer is one direction of a zero-window run: who sent what, whether
// it arrived intact, and what the capture shows of the receiver's window.
type Transfer struct {
	Name          string // "server -> client 1"
	Client        int
	ToServer      bool // the data flows from the client to the server
	Bytes         int
	SentSHA256    string
	ReceivedBytes int
	ReceivedSHA   string
	Err           error // the first error of either end, if any

	StopAt   time.Duration // when the receiving application stopped reading
	ResumeAt time.Duration // when it read again

	// From the capture (filled by the verdict):
	Window0     bool
	Window0At   time.Duration   // first zero window advertised by the receiver
	Probes      []time.Duration // zero-window probes by the sender, in order
	ProbeForms  []string        // "SND.UNA-1, no data" or "1 new byte" per probe
	Reopened    bool
	ReopenedAt  time.Duration // first non-zero window after the zero window
	ReopenedWnd int           // its size, bytes
}

// Intact reports whether the receiver got exactly what the sender sent.
func (t *Transfer) Intact() bool {
	return t.Err == nil && t.ReceivedBytes == t.Bytes && t.SentSHA256 == t.ReceivedSHA
}

// ProbeGaps are the intervals between consecutive probes.
func (t *Transfer) ProbeGaps() []time.Duration {
	var g []time.Duration
	for i := 1; i < len(t.Probes); i++ {
		g = append(g, t.Probes[i]-t.Probes[i-1])
	}
	return g
}

// GapsGrow reports whether each probe gap is at least factor times the one
// before; it needs at least two gaps.
func (t *Transfer) GapsGrow(factor float64) bool {
	g := t.ProbeGaps()
	if len(g) < 2 {
		return false
	}
	for i := 1; i < len(g); i++ {
		if float64(g[i]) < factor*float64(g[i-1]) {
			return false
		}
	}
	return true
}

// seededBytes returns n random bytes from a fixed seed, the same every run.
func seededBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	var key [32]byte
	key[0] = byte(seed)
	rand.NewChaCha8(key).Read(b)
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func runZeroWindow(r *run) error {
	d := &ZeroWindowData{}
	r.data = d
	if k, ok := r.srv.(*kernelServer); ok {
		// tcp_rmem is per network namespace: the kernel server's default
		// receive buffer, as the profile's RcvBuf is the user stacks'.
		rmem := fmt.Sprintf("4096 %d 6291456", zwStackRcvBuf)
		if err := setSysctls(k.ns, [][2]string{{"net/ipv4/tcp_rmem", rmem}}, "server", &r.topo.sysctls); err != nil {
			return err
		}
	}
	l, err := r.srv.listen(serverPort, r.params.Backlog)
	if err != nil {
		return fmt.Errorf("lab: listen: %w", err)
	}
	r.closeAtEnd(l)
	r.tl.add("server", "listen(%v); default receive buffer %d bytes", r.target, zwStackRcvBuf)

	out, err := zwServerSends(r, l)
	if out != nil {
		d.Transfers = append(d.Transfers, out)
	}
	if err != nil {
		return err
	}
	in, err := zwClientSends(r, l)
	if in != nil {
		d.Transfers = append(d.Transfers, in)
	}
	if err != nil {
		return err
	}
	early, err := zwSendsBeforeAccept(r, l)
	if early != nil {
		d.Transfers = append(d.Transfers, early)
	}
	return err
}

// zwConnect opens client n, applies set to its socket before connect, and
// accepts its connection.
func zwConnect(r *run, l listener, n int, set func(fd int) string) (*client, serverConn, error) {
	cs, err := r.openClients(n, 1)
	if err != nil {
		return nil, nil, err
	}
	c := cs[0]
	if set != nil {
		var note string
		c.s.control(func(fd int) { note = set(fd) })
		r.tl.add(clientName(n), "%s", note)
	}
	c.startConnect(r.tl, r.target)
	if err := c.waitConnect(r.tl, 5*time.Second); err != nil {
		return nil, nil, fmt.Errorf("lab zero-window: client %d could not connect: %w", n, err)
	}
	sc, err := l.accept(5 * time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("lab zero-window: accept for client %d: %w", n, err)
	}
	r.tl.add("server", "accept() = client %d (port %d)", n, sc.remotePort())
	return c, sc, nil
}

// zwServerSends is the first direction: the stack under test writes to
// client 1, which stops reading for Hold.
func zwServerSends(r *run, l listener) (*Transfer, error) {
	c, sc, err := zwConnect(r, l, 1, func(fd int) string {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, zwClientRcvBuf)
		got, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		return fmt.Sprintf("setsockopt(SO_RCVBUF, %d): the kernel makes it %d", zwClientRcvBuf, got)
	})
	if err != nil {
		return nil, err
	}
	data := seededBytes(zwBytes, 1)
	t := &Transfer{Name: "server -> client 1", Client: 1, Bytes: len(data), SentSHA256: sha256Hex(data)}
	t.StopAt = r.mark("stop-1")
	r.tl.addAt(t.StopAt, clientName(1), "stops reading for %s", r.params.Hold)

	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.tl.add("server", "write(%d bytes, sha256 %s...)", len(data), t.SentSHA256[:16])
		n, err := sc.write(data, r.params.Hold+zwTransferWait)
		if err != nil {
			werr = fmt.Errorf("server write: %d bytes, then %w", n, err)
		}
		r.tl.add("server", "write() = %d%s", n, errSuffix(err))
	}()

	r.sleepUntil(t.StopAt + r.params.Hold)
	t.ResumeAt = r.mark("resume-1")
	r.tl.addAt(t.ResumeAt, clientName(1), "reads again")
	h := sha256.New()
	got, rerr := readAllInto(h, func(p []byte, d time.Duration) (int, error) { return c.s.read(p, d) }, len(data), zwTransferWait)
	t.ReceivedBytes, t.ReceivedSHA = got, hex.EncodeToString(h.Sum(nil))
	r.tl.add(clientName(1), "read %d bytes in all, sha256 %s...%s", got, t.ReceivedSHA[:16], errSuffix(rerr))
	wg.Wait()
	t.Err = firstErr(werr, rerr)
	return t, nil
}

// zwClientSends is the second direction: client 2 writes to the stack
// under test, whose application stops reading for Hold.
func zwClientSends(r *run, l listener) (*Transfer, error) {
	c, sc, err := zwConnect(r, l, 2, nil)
	if err != nil {
		return nil, err
	}
	return zwToServer(r, c, 2, "client 2 -> server", "stops reading client 2 for %s", func() (serverConn, error) {
		r.tl.add("server", "reads client 2 again")
		return sc, nil
	})
}

// zwSendsBeforeAccept is the third direction: client 3 connects and
// writes while the server's application has not accepted it, so its
// receive buffer fills in the accept queue; after Hold the application
// accepts it and reads everything.
func zwSendsBeforeAccept(r *run, l listener) (*Transfer, error) {
	cs, err := r.openClients(3, 1)
	if err != nil {
		return nil, err
	}
	c := cs[0]
	c.startConnect(r.tl, r.target)
	if err := c.waitConnect(r.tl, 5*time.Second); err != nil {
		return nil, fmt.Errorf("lab zero-window: client 3 could not connect: %w", err)
	}
	return zwToServer(r, c, 3, "client 3 -> server, before accept", "does not accept client 3 for %s", func() (serverConn, error) {
		sc, err := l.accept(5 * time.Second)
		if err != nil {
			return nil, fmt.Errorf("lab zero-window: accept for client 3: %w", err)
		}
		r.tl.add("server", "accept() = client 3 (port %d), and reads", sc.remotePort())
		return sc, nil
	})
}

// zwToServer runs one client-to-server transfer: client n writes its
// seeded data while the server's application leaves it alone for Hold
// (stopNote says how); then resume gives the server's connection (accepting
// it, if need be) and the server reads everything.
func zwToServer(r *run, c *client, n int, name, stopNote string, resume func() (serverConn, error)) (*Transfer, error) {
	data := seededBytes(zwBytes, uint64(n))
	t := &Transfer{Name: name, Client: n, ToServer: true, Bytes: len(data), SentSHA256: sha256Hex(data)}
	t.StopAt = r.mark(fmt.Sprintf("stop-%d", n))
	r.tl.addAt(t.StopAt, "server", stopNote, r.params.Hold)

	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.tl.add(clientName(n), "write(%d bytes, sha256 %s...)", len(data), t.SentSHA256[:16])
		m, err := sockWriteAll(c.s, data, r.params.Hold+zwTransferWait)
		if err != nil {
			werr = fmt.Errorf("client %d write: %d bytes, then %w", n, m, err)
		}
		r.tl.add(clientName(n), "write() = %d%s", m, errSuffix(err))
	}()

	r.sleepUntil(t.StopAt + r.params.Hold)
	t.ResumeAt = r.mark(fmt.Sprintf("resume-%d", n))
	sc, err := resume()
	if err != nil {
		wg.Wait()
		return t, err
	}
	h := sha256.New()
	got, rerr := readAllInto(h, sc.read, len(data), zwTransferWait)
	t.ReceivedBytes, t.ReceivedSHA = got, hex.EncodeToString(h.Sum(nil))
	r.tl.add("server", "read %d bytes in all, sha256 %s...%s", got, t.ReceivedSHA[:16], errSuffix(rerr))
	wg.Wait()
	t.Err = firstErr(werr, rerr)
	return t, nil
}

// readAllInto reads n bytes with read into w, each read waiting at most
// the time left of total.
func readAllInto(w io.Writer, read func([]byte, time.Duration) (int, error), n int, total time.Duration) (int, error) {
	deadline := time.Now().Add(total)
	buf := make([]byte, 64<<10)
	got := 0
	for got < n {
		left := time.Until(deadline)
		if left <= 0 {
			return got, errTimeout
		}
		k, err := read(buf[:min(len(buf), n-got)], left)
		w.Write(buf[:k])
		got += k
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// sockWriteAll writes all of p to a kernel socket, waiting in the
// netpoller for room, for at most timeout.
func sockWriteAll(s *sockFile, p []byte, timeout time.Duration) (int, error) {
	s.f.SetWriteDeadline(time.Now().Add(timeout))
	n, err := s.f.Write(p)
	return n, s.mapErr(err)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ", " + errText(err)
}

// endpointAddr names the side of a client's connection by address.
func endpointAddr(res *Result, toServer bool) string {
	a := addrsFor(res.family())
	if toServer {
		return a.client.String()
	}
	return a.server.String()
}

// analyzeWindow reads the capture of one transfer: when the receiver's
// window first closed, the sender's probes while it stayed closed, and
// when it reopened. It returns the notes to put in the timeline.
func analyzeWindow(res *Result, t *Transfer) []Event {
	var notes []Event
	note := func(at time.Duration, format string, args ...any) {
		notes = append(notes, Event{At: at, Who: "note", What: fmt.Sprintf(format, args...)})
	}
	receiver := endpointAddr(res, !t.ToServer) // the data's receiver
	sender := endpointAddr(res, t.ToServer)
	zero := false
	var rcvAck uint32 // the receiver's latest cumulative ACK
	last := time.Duration(0)
	for _, p := range res.Capture.ForClient(t.Client) {
		if p.SYN || p.RST {
			continue
		}
		fromReceiver := p.ToServer != t.ToServer
		if fromReceiver {
			if p.ACK {
				rcvAck = p.Ack
			}
			switch {
			case p.Window == 0 && !zero && !t.Reopened:
				zero = true
				t.Window0, t.Window0At = true, p.At
				last = p.At
				note(p.At, "window 0 from %s at %s (ack %d): its receive buffer is full", receiver, secs(p.At), p.Ack)
			case p.Window > 0 && zero:
				zero = false
				t.Reopened, t.ReopenedAt, t.ReopenedWnd = true, p.At, p.Window
				note(p.At, "window reopened at %s: %s advertises %d bytes, %s after its application read again",
					secs(p.At), receiver, p.Window, ms(p.At-t.ResumeAt))
			}
			continue
		}
		if !zero {
			continue
		}
		var form string
		switch {
		case p.Len == 0 && p.Seq == rcvAck-1:
			form = "SND.UNA-1, no data"
		case p.Len == 1:
			form = "1 new byte"
		case p.Len > 1:
			form = fmt.Sprintf("%d bytes", p.Len)
		default:
			continue // an ACK of the receiver's own data, not a probe
		}
		t.Probes = append(t.Probes, p.At)
		t.ProbeForms = append(t.ProbeForms, form)
		gap := "after the zero window"
		if len(t.Probes) > 1 {
			gap = "after the last"
		}
		note(p.At, "probe #%d from %s at %s (gap %s %s): %s", len(t.Probes), sender, secs(p.At), ms(p.At-last), gap, form)
		last = p.At
	}
	return notes
}

// ms formats a duration in milliseconds: "212 ms".
func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// addNotes merges analysis notes into the timeline; a note at the same
// instant as a packet follows it.
func addNotes(res *Result, notes []Event) {
	res.Events = append(res.Events, notes...)
	slices.SortStableFunc(res.Events, func(a, b Event) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
}

func zeroWindowVerdict(res *Result) []string {
	d, _ := res.Data.(*ZeroWindowData)
	if d == nil {
		return []string{"no transfer was recorded"}
	}
	var v []string
	for _, t := range d.Transfers {
		addNotes(res, analyzeWindow(res, t))
		receiver, sender := endpointAddr(res, !t.ToServer), endpointAddr(res, t.ToServer)
		var b strings.Builder
		fmt.Fprintf(&b, "%s: ", t.Name)
		if t.Intact() {
			fmt.Fprintf(&b, "%d bytes arrived intact (SHA-256 equal)", t.Bytes)
		} else {
			fmt.Fprintf(&b, "%d of %d bytes arrived, SHA-256 %s", t.ReceivedBytes, t.Bytes, map[bool]string{true: "equal", false: "differs"}[t.SentSHA256 == t.ReceivedSHA])
			if t.Err != nil {
				fmt.Fprintf(&b, " (%v)", t.Err)
			}
		}
		if !t.Window0 {
			fmt.Fprintf(&b, "; %s never advertised a zero window", receiver)
			v = append(v, b.String())
			continue
		}
		fmt.Fprintf(&b, "; window 0 from %s at %s", receiver, secs(t.Window0At))
		if len(t.Probes) == 0 {
			fmt.Fprintf(&b, "; %s sent no zero-window probe", sender)
		} else {
			fmt.Fprintf(&b, "; %d probes from %s (%s), gaps %s", len(t.Probes), sender, probeFormSummary(t.ProbeForms), formatMs(t.ProbeGaps()))
			if t.GapsGrow(1.5) {
				b.WriteString(", each about twice the last (exponential backoff)")
			}
		}
		if t.Reopened {
			fmt.Fprintf(&b, "; window reopened %s after the application read again", ms(t.ReopenedAt-t.ResumeAt))
		} else {
			b.WriteString("; the window never reopened")
		}
		v = append(v, b.String())
	}
	return v
}

func probeFormSummary(forms []string) string {
	var out []string
	for _, f := range forms {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return strings.Join(out, "; ")
}

func formatMs(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)))
	}
	return strings.Join(s, ", ") + " ms"
}
