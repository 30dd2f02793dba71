package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"tunstack/lab/netns"
)

// timewait: four runs about who keeps TIME-WAIT and what the bind rules
// let through, each on a fresh path:
//
//	(a) the stack under test is a client: it connects to one kernel server
//	    address and port again and again and closes first, so every
//	    connection leaves a TIME-WAIT entry on its side. With eight local
//	    ports, tcp_tw_reuse=0 makes the ninth connect fail; with
//	    tcp_tw_reuse=1 a connect takes over a TIME-WAIT entry once it is
//	    older than one second, and none fails.
//	(b) the stack is the server and closes first: the TIME-WAIT entries
//	    are the server's, the kernel client reuses its eight ports, and a
//	    SYN for a 4-tuple in TIME-WAIT reopens it (RFC 6191); tcp_tw_reuse
//	    changes nothing there.
//	(c) a server restarted on its port while its connection is in
//	    TIME-WAIT: bind fails with EADDRINUSE without SO_REUSEADDR and
//	    succeeds with it.
//	(d) two listeners with SO_REUSEPORT on one port: both binds succeed,
//	    the connections are shared between their queues, and a third
//	    listener without the option gets EADDRINUSE.
var timeWaitExperiment = &experiment{
	name:  "timewait",
	title: "TIME-WAIT stays with whoever closes first: tcp_tw_reuse frees a client's ports after 1 s, SO_REUSEADDR lets a server restart, SO_REUSEPORT shares a port",
	claim: "the side that closes first keeps TIME-WAIT; a client that closes first runs out of ports toward one server unless " +
		"tcp_tw_reuse lets it take over TIME-WAIT entries older than 1 s (timestamps on), which does nothing for a server; " +
		"a restarted server needs SO_REUSEADDR to bind over its TIME-WAIT connections; SO_REUSEPORT lets listeners share a port",
	duration: func(Params) time.Duration { return 14 * time.Second },
	options: func(o *Options) {
		o.Profile = profileOrLinux(o.Profile).Clone()
		twSetting(o, 0)
	},
	run:     runTimeWait,
	verdict: timeWaitVerdict,
	print:   printTimeWait,
}

// The timewait lab's fixed settings.
const (
	// twPortMin..twPortMax is the ephemeral range of whichever side runs
	// out of ports: eight ports, an odd end so that Linux takes the range
	// as it is (it prefers start and end of different parity).
	twPortMin, twPortMax = 40000, 40007
	twPorts              = twPortMax - twPortMin + 1
	// twPeerPort is the kernel server's port in run (a).
	twPeerPort = 9000
	// twReuseConnects is how many connects run (a) makes with reuse on.
	twReuseConnects = 3 * twPorts
	// twServerPace and twServerConnects are run (b)'s.
	twServerPace     = 100 * time.Millisecond
	twServerConnects = 3 * twPorts
	// The ports of runs (c) and (d) on the stack under test.
	twRestartPort   = 8100
	twReusePortPort = 8200
	twShareConnects = 16
)

// TimeWaitData is what the timewait lab measured.
type TimeWaitData struct {
	Client  []*ConnectLoop // run (a): tcp_tw_reuse 0, then 1
	Server  []*ConnectLoop // run (b): tcp_tw_reuse 0, then 1
	Restart []RestartTry   // run (c): without SO_REUSEADDR, then with it
	Share   *ReusePortRun  // run (d)
}

// ConnectLoop is one connect-and-close-first loop.
type ConnectLoop struct {
	TwReuse  int
	Setting  string // how tcp_tw_reuse and the port range were set
	Attempts []ConnectAttempt
	// FirstFailure is the attempt whose connect failed first (0: none).
	FirstFailure int
	// Reused counts the connections that took a 4-tuple whose previous
	// connection had not reached the end of TIME-WAIT.
	Reused int
	// FirstReuseAge is, for the first reuse, how long the 4-tuple's previous
	// connection had been closed (its last packet) when the new SYN left.
	FirstReuseAge time.Duration
	// MaxTimeWait is the most TIME-WAIT entries seen on the side that
	// closed first (the stack under test in (a) and (b)).
	MaxTimeWait int
}

// ConnectAttempt is one connect of a loop.
type ConnectAttempt struct {
	N         int
	At        time.Duration // when connect() was called
	Port      uint16        // the client's local port, if it got one
	Err       error         // what connect() returned
	TimeWait  int           // TIME-WAIT entries just before the call (-1: not visible)
	Reused    bool          // the 4-tuple was in TIME-WAIT at the closer
	ReusedAge time.Duration // since the previous connection on it was closed
	// For run (a): the age of the oldest TIME-WAIT entry of the stack
	// under test when connect was called, counted from its close
	// (OldestClosed) and from when the entry was first seen (OldestSeen);
	// the stack entered TIME-WAIT between the two. 0: no entry.
	OldestClosed, OldestSeen time.Duration
}

// RestartTry is one server restart of run (c).
type RestartTry struct {
	ReuseAddr bool
	TimeWait  int   // the stack's TIME-WAIT entries when it rebinds
	BindErr   error // what the second listen returned
	Served    bool  // a client was served by the restarted listener
}

// ReusePortRun is run (d).
type ReusePortRun struct {
	FirstErr, SecondErr error // the two SO_REUSEPORT listeners
	ThirdErr            error // a listener without SO_REUSEPORT on the same port
	Accepted            [2]int
	Connects            int
	Failed              int
}

// twSetting sets tcp_tw_reuse and the ephemeral port range for a run
// whose stack under test is the one that closes first.
func twSetting(o *Options, reuse int) {
	o.Profile.TwReuse = reuse
	o.Profile.LocalPortMin, o.Profile.LocalPortMax = twPortMin, twPortMax
	o.serverSysctls = [][2]string{
		{"net/ipv4/tcp_tw_reuse", fmt.Sprint(reuse)},
		{"net/ipv4/ip_local_port_range", fmt.Sprintf("%d %d", twPortMin, twPortMax)},
		{"net/ipv4/tcp_timestamps", "1"},
	}
}

// twSettingText says how run's settings were made on stack.
func twSettingText(stack string, reuse int) string {
	if stack == "linux" {
		return fmt.Sprintf("net.ipv4.tcp_tw_reuse=%d, ip_local_port_range %d-%d", reuse, twPortMin, twPortMax)
	}
	return fmt.Sprintf("profile TwReuse=%d, LocalPortMin..Max %d-%d", reuse, twPortMin, twPortMax)
}

func runTimeWait(r *run) error {
	data := &TimeWaitData{}
	r.data = data
	first := true
	// onTopology runs fn on the run's own topology the first time, then on
	// a fresh one built from o.
	onTopology := func(o Options, fn func(*topology, underTest) error) error {
		t := r.topo
		if !first {
			o.Pcap = nil
			var err error
			if t, err = newTopology(r.ctx, &o); err != nil {
				return err
			}
			defer t.close()
		}
		first = false
		sut, err := newUnderTest(r.ctx, t)
		if err != nil {
			return err
		}
		return fn(t, sut)
	}
	base := *r.opts
	for _, reuse := range []int{0, 1} {
		o := base
		o.Profile = base.Profile.Clone()
		twSetting(&o, reuse)
		err := onTopology(o, func(t *topology, sut underTest) error {
			loop, err := r.clientLoop(t, sut, reuse)
			data.Client = append(data.Client, loop)
			return err
		})
		if err != nil {
			return fmt.Errorf("timewait (a), tcp_tw_reuse %d: %w", reuse, err)
		}
	}
	for _, reuse := range []int{0, 1} {
		o := base
		o.Profile = base.Profile.Clone()
		twSetting(&o, reuse)
		err := onTopology(o, func(t *topology, sut underTest) error {
			loop, err := r.serverLoop(t, sut, reuse)
			data.Server = append(data.Server, loop)
			return err
		})
		if err != nil {
			return fmt.Errorf("timewait (b), tcp_tw_reuse %d: %w", reuse, err)
		}
	}
	o := base
	o.Profile = base.Profile.Clone()
	return onTopology(o, func(t *topology, sut underTest) error {
		for i, reuseAddr := range []bool{false, true} {
			try, err := r.restart(t, sut, twRestartPort+uint16(i), reuseAddr)
			if err != nil {
				return fmt.Errorf("timewait (c): %w", err)
			}
			data.Restart = append(data.Restart, try)
		}
		share, err := r.reusePort(t, sut)
		if err != nil {
			return fmt.Errorf("timewait (d): %w", err)
		}
		data.Share = share
		return nil
	})
}

// clientLoop is run (a): the stack under test connects to a kernel
// server and closes first. Connects 1 to 8 follow each other as soon as
// the previous connection is in TIME-WAIT, taking the eight ports; connect
// 9 comes at once, when every entry is younger than a second. Then, with
// tcp_tw_reuse=0, one more connect once the oldest entry is older than
// twReuseWait; with tcp_tw_reuse=1, connects up to twReuseConnects, each
// once the oldest entry is that old.
func (r *run) clientLoop(t *topology, sut underTest, reuse int) (*ConnectLoop, error) {
	loop := &ConnectLoop{TwReuse: reuse, Setting: twSettingText(r.opts.Stack, reuse)}
	peer := netip.AddrPortFrom(t.addrs.client, twPeerPort)
	stop, err := kernelEchoUntilEOF(r.ctx, t.clientNS, peer)
	if err != nil {
		return loop, err
	}
	defer stop()
	r.tl.add("lab", "(a) %s: the stack connects to the kernel at %v and closes first", loop.Setting, peer)
	// The TIME-WAIT entries of this side, by local port: when our close
	// returned and when the entry was first seen; the stack entered
	// TIME-WAIT between the two.
	type entry struct{ closed, seen time.Time }
	tw := map[uint16]entry{}
	oldest := func() (entry, bool) {
		var o entry
		found := false
		for _, e := range tw {
			if !found || e.seen.Before(o.seen) {
				o, found = e, true
			}
		}
		return o, found
	}
	n := twPorts + 2
	if reuse != 0 {
		n = twReuseConnects
	}
	for i := 1; i <= n && r.ctx.Err() == nil; i++ {
		if i > twPorts+1 {
			// Wait until the oldest entry is past tcp_tw_reuse's second.
			if o, ok := oldest(); ok {
				sleepCtx(r.ctx, time.Until(o.seen.Add(twReuseWait)))
			}
		}
		a := ConnectAttempt{N: i, At: r.tl.now(), TimeWait: sut.timeWait()}
		loop.MaxTimeWait = max(loop.MaxTimeWait, a.TimeWait)
		called := time.Now()
		if o, ok := oldest(); ok {
			a.OldestClosed, a.OldestSeen = called.Sub(o.closed), called.Sub(o.seen)
		}
		c, port, err := sut.dial(peer, 2*time.Second)
		a.Port, a.Err = port, err
		if err == nil {
			if e, ok := tw[port]; ok {
				a.Reused, a.ReusedAge = true, called.Sub(e.closed)
				if loop.Reused == 0 {
					loop.FirstReuseAge = a.ReusedAge
				}
				loop.Reused++
				delete(tw, port)
			}
			// One byte each way, then close first; the peer answers
			// the FIN with its own, which leaves this side in
			// TIME-WAIT.
			want := len(tw) + 1
			if err := closeFirst(c); err != nil {
				a.Err = err
			} else {
				closed := time.Now()
				if !awaitTimeWait(r.ctx, sut, want, 2*time.Second) {
					a.Err = fmt.Errorf("the connection did not reach TIME-WAIT within 2 s of its close (%d entries, want %d)", sut.timeWait(), want)
				}
				tw[port] = entry{closed: closed, seen: time.Now()}
			}
		}
		loop.Attempts = append(loop.Attempts, a)
		if a.Err != nil {
			if loop.FirstFailure == 0 {
				loop.FirstFailure = i
			}
			r.tl.add("lab", "(a) connect %d failed: %s", i, describeErrno(a.Err))
		}
	}
	return loop, nil
}

// twReuseWait is how old the oldest TIME-WAIT entry is made before the
// connects that may take it over: past tcp_tw_reuse's one second.
const twReuseWait = 1200 * time.Millisecond

// awaitTimeWait waits until sut has at least want connections in
// TIME-WAIT, or timeout; it reports whether they were seen. A stack that
// cannot count them (-1) is not waited for.
func awaitTimeWait(ctx context.Context, sut underTest, want int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		n := sut.timeWait()
		if n < 0 || n >= want {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		sleepCtx(ctx, time.Millisecond)
	}
}

// closeFirst writes a request, reads the one-byte answer and closes: the
// close is ours, first; the kernel peer closes when it reads our FIN.
func closeFirst(c serverConn) error {
	if _, err := c.write([]byte("q"), 2*time.Second); err != nil {
		c.close()
		return err
	}
	buf := make([]byte, 16)
	if _, err := c.read(buf, 2*time.Second); err != nil {
		c.close()
		return fmt.Errorf("reading the answer: %w", err)
	}
	return c.close()
}

// serverLoop is run (b): kernel clients with eight ports connect to the
// stack under test, which answers and closes first, once every
// twServerPace.
func (r *run) serverLoop(t *topology, sut underTest, reuse int) (*ConnectLoop, error) {
	loop := &ConnectLoop{TwReuse: reuse, Setting: twSettingText(r.opts.Stack, reuse)}
	var note []string
	if err := setSysctls(t.clientNS, [][2]string{{"net/ipv4/ip_local_port_range", fmt.Sprintf("%d %d", twPortMin, twPortMax)}}, "client", &note); err != nil {
		return loop, err
	}
	l, err := sut.listenWith(serverPort, 128, false, false)
	if err != nil {
		return loop, fmt.Errorf("listen: %w", err)
	}
	defer l.close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			sc, err := l.accept(3 * time.Second)
			if err != nil {
				return
			}
			// The server answers and closes first: TIME-WAIT is its.
			answer(sc)
		}
	}()
	defer wg.Wait()
	r.tl.add("lab", "(b) %s: kernel clients (ports %d-%d) connect to the stack, which closes first, every %s", loop.Setting, twPortMin, twPortMax, twServerPace)
	to := netip.AddrPortFrom(t.addrs.server, serverPort)
	lastEnd := map[uint16]time.Time{}
	start := time.Now()
	for i := 1; i <= twServerConnects; i++ {
		sleepCtx(r.ctx, time.Until(start.Add(time.Duration(i-1)*twServerPace)))
		a := ConnectAttempt{N: i, At: r.tl.now(), TimeWait: sut.timeWait()}
		loop.MaxTimeWait = max(loop.MaxTimeWait, a.TimeWait)
		called := time.Now()
		port, err := kernelRequest(r.ctx, t.clientNS, to)
		a.Port, a.Err = port, err
		if end, ok := lastEnd[port]; ok && port != 0 {
			a.Reused, a.ReusedAge = true, called.Sub(end)
			if loop.Reused == 0 {
				loop.FirstReuseAge = a.ReusedAge
			}
			loop.Reused++
		}
		if err == nil {
			lastEnd[port] = time.Now()
		} else if loop.FirstFailure == 0 {
			loop.FirstFailure = i
			r.tl.add("lab", "(b) connect %d failed: %s", i, describeErrno(err))
		}
		loop.Attempts = append(loop.Attempts, a)
	}
	return loop, nil
}

// restart is one try of run (c): a server on port accepts a connection
// and closes it first, leaving it in TIME-WAIT; the listener closes; a
// new listener binds the same port.
func (r *run) restart(t *topology, sut underTest, port uint16, reuseAddr bool) (RestartTry, error) {
	try := RestartTry{ReuseAddr: reuseAddr}
	to := netip.AddrPortFrom(t.addrs.server, port)
	r.tl.add("lab", "(c) SO_REUSEADDR %v: a server on port %d closes a connection first, then restarts", reuseAddr, port)
	l, err := sut.listenWith(port, 16, reuseAddr, false)
	if err != nil {
		return try, fmt.Errorf("first listen on %d: %w", port, err)
	}
	before := sut.timeWait()
	served := serveOne(l)
	if _, err := kernelRequest(r.ctx, t.clientNS, to); err != nil {
		l.close()
		return try, fmt.Errorf("client of the first server: %w", err)
	}
	if err := <-served; err != nil {
		l.close()
		return try, fmt.Errorf("first server: %w", err)
	}
	// The server closed first; its connection is in TIME-WAIT once the
	// client's FIN has arrived.
	awaitTimeWait(r.ctx, sut, before+1, 2*time.Second)
	l.close()
	try.TimeWait = sut.timeWait() - before
	l2, err := sut.listenWith(port, 16, reuseAddr, false)
	try.BindErr = err
	if err != nil {
		r.tl.add("lab", "(c) the restarted server's listen on %d: %s", port, describeErrno(err))
		return try, nil
	}
	defer l2.close()
	served = serveOne(l2)
	if _, err := kernelRequest(r.ctx, t.clientNS, to); err == nil && <-served == nil {
		try.Served = true
	}
	r.tl.add("lab", "(c) the restarted server listens on %d and served a client: %v", port, try.Served)
	return try, nil
}

// serveOne accepts one connection on l, answers one request and closes it
// first.
func serveOne(l listener) <-chan error {
	done := make(chan error, 1)
	go func() {
		sc, err := l.accept(3 * time.Second)
		if err != nil {
			done <- err
			return
		}
		done <- answer(sc)
	}()
	return done
}

// answer reads one request on sc, answers it with one byte and closes sc:
// the server closes first, so TIME-WAIT is its.
func answer(sc serverConn) error {
	buf := make([]byte, 16)
	if _, err := sc.read(buf, 2*time.Second); err != nil {
		sc.close()
		return err
	}
	sc.write([]byte("a"), 2*time.Second)
	return sc.close()
}

// reusePort is run (d).
func (r *run) reusePort(t *topology, sut underTest) (*ReusePortRun, error) {
	res := &ReusePortRun{Connects: twShareConnects}
	r.tl.add("lab", "(d) two listeners with SO_REUSEPORT on port %d", twReusePortPort)
	var ls [2]listener
	for i := range ls {
		l, err := sut.listenWith(twReusePortPort, 64, false, true)
		if i == 0 {
			res.FirstErr = err
		} else {
			res.SecondErr = err
		}
		if err != nil {
			for _, o := range ls[:i] {
				o.close()
			}
			return res, nil
		}
		ls[i] = l
	}
	defer ls[0].close()
	defer ls[1].close()
	if l, err := sut.listenWith(twReusePortPort, 64, false, false); err == nil {
		l.close()
	} else {
		res.ThirdErr = err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(r.ctx)
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				sc, err := l.accept(200 * time.Millisecond)
				if err == errTimeout {
					continue
				}
				if err != nil {
					return
				}
				mu.Lock()
				res.Accepted[i]++
				mu.Unlock()
				answer(sc)
			}
		}()
	}
	to := netip.AddrPortFrom(t.addrs.server, twReusePortPort)
	for range twShareConnects {
		if _, err := kernelRequest(r.ctx, t.clientNS, to); err != nil {
			res.Failed++
		}
	}
	cancel()
	wg.Wait()
	r.tl.add("lab", "(d) %d connections: %d to the first listener, %d to the second", twShareConnects, res.Accepted[0], res.Accepted[1])
	return res, nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// kernelEchoUntilEOF runs a kernel server on addr in ns: for every
// connection it answers each read with one byte and closes when the
// client has closed (after the client's FIN), so that the client is the
// side that closes first. stop closes the listener and waits for its
// connections.
func kernelEchoUntilEOF(ctx context.Context, ns *netns.NS, addr netip.AddrPort) (stop func(), err error) {
	var ln net.Listener
	err = ns.Do(func() error {
		var err error
		ln, err = (&net.ListenConfig{}).Listen(ctx, tcpNetwork(addr.Addr()), addr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kernel server on %v: %w", addr, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 64)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return func() { ln.Close(); wg.Wait() }, nil
}

// kernelRequest connects from ns to to with a kernel socket, sends one
// byte, reads the answer and the server's close, then closes: the server
// closes first. It returns the local port the kernel picked.
func kernelRequest(ctx context.Context, ns *netns.NS, to netip.AddrPort) (uint16, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		d := net.Dialer{Timeout: 3 * time.Second}
		c, err = d.DialContext(ctx, tcpNetwork(to.Addr()), to.String())
		return err
	})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("q")); err != nil {
		return port, err
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return port, err
	}
	if len(got) != 1 {
		return port, fmt.Errorf("the server answered %d bytes, want 1", len(got))
	}
	return port, nil
}

func timeWaitData(res *Result) *TimeWaitData {
	d, _ := res.Data.(*TimeWaitData)
	if d == nil {
		d = &TimeWaitData{}
	}
	return d
}

// timeWaitVerdict checks the claim's four parts.
func timeWaitVerdict(res *Result) []string {
	d := timeWaitData(res)
	var v []string
	for _, l := range d.Client {
		if len(l.Attempts) <= twPorts {
			v = append(v, fmt.Sprintf("(a) tcp_tw_reuse=%d: only %d connects were made", l.TwReuse, len(l.Attempts)))
			continue
		}
		a := l.Attempts[twPorts]
		first := fmt.Sprintf("(a) tcp_tw_reuse=%d: the first %d connects took the %d ports, each left in TIME-WAIT by our close; connect %d, with %d entries in TIME-WAIT, the oldest %s old, returned %s",
			l.TwReuse, twPorts, twPorts, a.N, a.TimeWait, secs(a.OldestSeen), connectResult(a))
		var rest []string
		for _, b := range l.Attempts[twPorts+1:] {
			rest = append(rest, connectResult(b))
		}
		if l.TwReuse == 0 {
			v = append(v, first+fmt.Sprintf("; once the oldest was %s old: %s", secs(l.Attempts[len(l.Attempts)-1].OldestSeen), strings.Join(rest, ", ")))
			continue
		}
		v = append(v, first+fmt.Sprintf("; then %d connects, each once the oldest entry was over a second old: %d took over a TIME-WAIT entry, the first %s after its close, %d failed",
			len(l.Attempts)-twPorts-1, l.Reused, secs(l.FirstReuseAge), failures(l)-boolInt(a.Err != nil)))
	}
	if len(d.Server) == 2 {
		s0, s1 := d.Server[0], d.Server[1]
		ok0, ok1 := len(s0.Attempts)-failures(s0), len(s1.Attempts)-failures(s1)
		same := "the same with both settings: tcp_tw_reuse does nothing for the server"
		if ok0 != ok1 {
			same = "different with the two settings"
		}
		v = append(v, fmt.Sprintf("(b) the stack as the server that closes first: %d of %d and %d of %d connections served (tcp_tw_reuse 0 and 1), %d and %d of them on a 4-tuple still in TIME-WAIT at the server, up to %d and %d TIME-WAIT entries: %s",
			ok0, len(s0.Attempts), ok1, len(s1.Attempts), s0.Reused, s1.Reused, s0.MaxTimeWait, s1.MaxTimeWait, same))
	}
	for _, t := range d.Restart {
		res := "bind succeeded"
		if t.BindErr != nil {
			res = "listen failed: " + describeErrno(t.BindErr)
		} else if t.Served {
			res += " and the restarted server served a client"
		}
		v = append(v, fmt.Sprintf("(c) restart with SO_REUSEADDR %v, %d TIME-WAIT entries on the port: %s", t.ReuseAddr, t.TimeWait, res))
	}
	if s := d.Share; s != nil {
		v = append(v, fmt.Sprintf("(d) SO_REUSEPORT: listeners %s and %s; %d connections shared %d/%d (%d failed); a listener without SO_REUSEPORT: %s",
			bindText(s.FirstErr), bindText(s.SecondErr), s.Connects, s.Accepted[0], s.Accepted[1], s.Failed, bindText(s.ThirdErr)))
	}
	return v
}

// connectResult is what one connect returned, in a few words.
func connectResult(a ConnectAttempt) string {
	switch {
	case a.Err != nil:
		return describeErrno(a.Err)
	case a.Reused:
		return "ok, a TIME-WAIT entry taken over"
	}
	return "ok"
}

func failures(l *ConnectLoop) int {
	n := 0
	for _, a := range l.Attempts {
		if a.Err != nil {
			n++
		}
	}
	return n
}

func bindText(err error) string {
	if err == nil {
		return "bound"
	}
	return describeErrno(err)
}

// printTimeWait is the lab's report: the two loops attempt by attempt,
// then the restart and SO_REUSEPORT runs.
func printTimeWait(res *Result, w io.Writer) {
	d := timeWaitData(res)
	fmt.Fprintf(w, "== lab %s on %s (profile %s)\n%s\nclaim: %s\n", res.Experiment, res.Stack, res.Profile, res.Title, res.Claim)
	for _, set := range []struct {
		name  string
		loops []*ConnectLoop
	}{{"(a) the stack connects and closes first", d.Client}, {"(b) kernel clients connect, the stack closes first", d.Server}} {
		for _, l := range set.loops {
			fmt.Fprintf(w, "\n%s; %s:\n", set.name, l.Setting)
			fmt.Fprintf(w, "  %-4s %-8s %-6s %-10s %s\n", "n", "at", "port", "TIME-WAIT", "connect")
			for _, a := range l.Attempts {
				res := "ok"
				switch {
				case a.Err != nil:
					res = describeErrno(a.Err)
				case a.Reused:
					res = fmt.Sprintf("ok, 4-tuple reused %s after its previous connection was closed", secs(a.ReusedAge))
				}
				tw := fmt.Sprint(a.TimeWait)
				if a.TimeWait < 0 {
					tw = "?"
				}
				port := "-"
				if a.Port != 0 {
					port = fmt.Sprint(a.Port)
				}
				fmt.Fprintf(w, "  %-4d %-8s %-6s %-10s %s\n", a.N, secs(a.At), port, tw, res)
			}
		}
	}
	fmt.Fprintf(w, "\nverdict:\n")
	for _, v := range res.Verdict {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}

// portsUsed lists the distinct local ports of a loop.
func (l *ConnectLoop) portsUsed() []uint16 {
	var ps []uint16
	for _, a := range l.Attempts {
		if a.Port != 0 && !slices.Contains(ps, a.Port) {
			ps = append(ps, a.Port)
		}
	}
	slices.Sort(ps)
	return ps
}
