package stack

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"tunstack/netif"
	"tunstack/tcpcore"
	"tunstack/wire"
)

// queueLink is the peer's side of an in-memory multiqueue link: the
// sharded stack has one pipe per queue, and the peer, a stack of one
// engine, writes each packet on the queue a multiqueue TUN would put it
// on (Linux behaviour, tun_automq_select_queue: the queue its flow was
// last written on from the sharded side, else the flow's hash modulo the
// queues) and reads what any queue carries. force, when set, overrides
// that choice for the packets it claims, to put them on a queue of the
// test's choosing.
type queueLink struct {
	ends []*netif.PipeEnd // ends[i]: the peer's end of queue i
	in   chan []byte
	done chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	last  map[flowPair]int // queue each flow was last written on by the shards
	force func(pkt []byte) (queue int, ok bool)
	once  sync.Once
	// What each queue carried to its shard, for awaitIdle: packets the
	// peer wrote on queue i, packets shard i's reader took, and whether
	// that reader is waiting in a read (it reads again only once it has
	// done with its last batch, passing on included). idle is signalled
	// on each change.
	written, taken []int
	reading        []bool
	idle           *sync.Cond
	forced         uint64 // packets force put on a queue
}

// flowPair is a flow's addresses and ports in a symmetric order, as the
// kernel's symmetric hash sees them.
type flowPair struct{ a, b netip.AddrPort }

func pairOf(pkt []byte) (flowPair, bool) {
	if len(pkt) < wire.IPv4HeaderLen || pkt[0]>>4 != 4 {
		return flowPair{}, false
	}
	p := wire.IPv4(pkt)
	if p.Protocol() != wire.ProtoTCP || len(p.Payload()) < 4 {
		return flowPair{}, false
	}
	t := wire.TCP(p.Payload())
	a, b := netip.AddrPortFrom(p.SrcAddr(), t.SrcPort()), netip.AddrPortFrom(p.DstAddr(), t.DstPort())
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	return flowPair{a, b}, true
}

// newQueueLinks returns the shards' links and the peer's link over them.
func newQueueLinks(t testing.TB, queues int) ([]netif.Link, *queueLink) {
	q := &queueLink{in: make(chan []byte, 4096), done: make(chan struct{}), last: make(map[flowPair]int),
		written: make([]int, queues), taken: make([]int, queues), reading: make([]bool, queues)}
	q.idle = sync.NewCond(&q.mu)
	var shards []netif.Link
	for i := range queues {
		peer, shard := netif.NewPipe(testMTU)
		q.ends = append(q.ends, peer)
		shards = append(shards, &shardEnd{Link: shard, q: q, i: i})
	}
	for i := range q.ends {
		q.wg.Add(1)
		go q.read(i)
	}
	t.Cleanup(func() { q.Close() })
	return shards, q
}

// read moves what queue i carries to the peer, recording the flow's queue
// as tun_flow_update does on each write from the device's side.
func (q *queueLink) read(i int) {
	defer q.wg.Done()
	bufs, sizes := [][]byte{make([]byte, testMTU)}, []int{0}
	for {
		n, err := q.ends[i].ReadPackets(bufs, sizes)
		if err != nil {
			return
		}
		if n == 0 {
			continue
		}
		pkt := bytes.Clone(bufs[0][:sizes[0]])
		if f, ok := pairOf(pkt); ok {
			q.mu.Lock()
			q.last[f] = i
			q.mu.Unlock()
		}
		select {
		case q.in <- pkt:
		case <-q.done:
			return
		}
	}
}

// shardEnd is shard i's end of its queue, counting what its reader takes.
type shardEnd struct {
	netif.Link
	q *queueLink
	i int
}

func (e *shardEnd) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	q := e.q
	q.mu.Lock()
	q.reading[e.i] = true
	q.idle.Broadcast()
	q.mu.Unlock()
	n, err := e.Link.ReadPackets(bufs, sizes)
	q.mu.Lock()
	q.reading[e.i] = false
	q.taken[e.i] += n
	q.idle.Broadcast()
	q.mu.Unlock()
	return n, err
}

// awaitIdle waits until every packet the peer has written reached its
// shard and every shard's reader is back in a read, its batches done,
// and returns how many packets force had put on a queue by then; it
// fails the test if that takes longer than limit.
func (q *queueLink) awaitIdle(t *testing.T, limit time.Duration) uint64 {
	t.Helper()
	expired := false
	timer := time.AfterFunc(limit, func() {
		q.mu.Lock()
		expired = true
		q.idle.Broadcast()
		q.mu.Unlock()
	})
	defer timer.Stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for !expired {
		idle := true
		for i := range q.written {
			if q.taken[i] != q.written[i] || !q.reading[i] {
				idle = false
			}
		}
		if idle {
			return q.forced
		}
		q.idle.Wait()
	}
	t.Fatalf("the shards did not take in every packet within %v: written %v, taken %v", limit, q.written, q.taken)
	return 0
}

func (q *queueLink) setForce(f func(pkt []byte) (int, bool)) {
	q.mu.Lock()
	q.force = f
	q.mu.Unlock()
}

// queueOf picks pkt's queue and counts it as written there. The caller
// holds q.mu.
func (q *queueLink) queueOf(pkt []byte) int {
	i := q.pick(pkt)
	q.written[i]++
	q.idle.Broadcast()
	return i
}

func (q *queueLink) pick(pkt []byte) int {
	if q.force != nil {
		if i, ok := q.force(pkt); ok {
			q.forced++
			return i
		}
	}
	f, ok := pairOf(pkt)
	if !ok {
		return 0
	}
	if i, ok := q.last[f]; ok {
		return i
	}
	h := fnv.New32a()
	h.Write([]byte(fmt.Sprint(f)))
	return int(h.Sum32() % uint32(len(q.ends)))
}

func (q *queueLink) MTU() int { return testMTU }

func (q *queueLink) WritePackets(pkts [][]byte) (int, error) {
	for i, p := range pkts {
		q.mu.Lock()
		qi := q.queueOf(p)
		q.mu.Unlock()
		if _, err := q.ends[qi].WritePackets([][]byte{p}); err != nil {
			return i, err
		}
	}
	return len(pkts), nil
}

func (q *queueLink) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	var p []byte
	select {
	case p = <-q.in:
	case <-q.done:
		return 0, net.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n], p)
		n++
		if n == len(bufs) {
			return n, nil
		}
		select {
		case p = <-q.in:
		default:
			return n, nil
		}
	}
}

func (q *queueLink) Close() error {
	q.once.Do(func() {
		close(q.done)
		for _, e := range q.ends {
			e.Close()
		}
	})
	q.wg.Wait()
	return nil
}

// newShardedPair starts a stack of `queues` shards at addrB and a peer of
// one engine at addrA on an in-memory multiqueue link.
func newShardedPair(t testing.TB, queues int) (sharded, peer *Stack, q *queueLink) {
	t.Helper()
	links, q := newQueueLinks(t, queues)
	var secret [32]byte
	binary.LittleEndian.PutUint64(secret[:], uint64(queues))
	sharded, err := NewShards(links, Config{Addr: addrB, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	secret[8] = 1
	peer, err = New(q, Config{Addr: addrA, Secret: secret})
	if err != nil {
		sharded.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		peer.Close()
		sharded.Close()
	})
	if sharded.Shards() != queues {
		t.Fatalf("Shards() = %d, want %d", sharded.Shards(), queues)
	}
	return sharded, peer, q
}

// shardOf is the index of the shard c runs on.
func shardOf(s *Stack, c net.Conn) int {
	for i, sh := range s.grp.shards {
		if c.(*Conn).s == sh {
			return i
		}
	}
	return -1
}

// echoBacklog is the echo listener's backlog: above the 300 connects
// echoConns makes at once, so that no shard's accept queue overflows
// when the acceptor falls behind (an overflow drops handshakes and, once
// the SYN queue has gone to cookies, resets the clients' pipelined data:
// the listener tests cover that, these check steering).
const echoBacklog = 1024

// echoConns opens n connections from peer to the sharded stack's echo
// service at once, each writing a different 20 KiB and reading it back,
// and returns the server's side of each.
func echoConns(t *testing.T, sharded, peer *Stack, n int) []net.Conn {
	t.Helper()
	ln, err := sharded.Listen(netip.AddrPortFrom(addrB, 7).String(), echoBacklog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var accepted []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- func() error {
				c, err := peer.Dial(ctx, "tcp", netip.AddrPortFrom(addrB, 7).String())
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				want := make([]byte, 20<<10)
				for j := range want {
					want[j] = byte(i*7 + j*13 + j>>9)
				}
				go func() { c.Write(want); c.(*Conn).CloseWrite() }()
				got, err := io.ReadAll(c)
				if err != nil {
					return err
				}
				if !bytes.Equal(got, want) {
					return fmt.Errorf("connection %d: %d bytes back, differing from the %d sent", i, len(got), len(want))
				}
				return nil
			}()
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return accepted
}

// TestShardsEchoKeepsEachFlowOnOneShard runs 300 concurrent echo
// connections into a stack of 2 and of 4 shards: every byte comes back,
// the one listener accepts from every shard, each connection runs on the
// shard its first segment arrived on and no other shard has it, and since
// the link keeps each flow on the queue it was answered on, no segment
// is passed between shards.
func TestShardsEchoKeepsEachFlowOnOneShard(t *testing.T) {
	for _, queues := range []int{2, 4} {
		t.Run(fmt.Sprint(queues, " queues"), func(t *testing.T) {
			sharded, peer, _ := newShardedPair(t, queues)
			accepted := echoConns(t, sharded, peer, 300)
			if len(accepted) != 300 {
				t.Fatalf("accepted %d connections, want 300", len(accepted))
			}
			per := make([]int, queues)
			for _, c := range accepted {
				i := shardOf(sharded, c)
				per[i]++
				local := c.LocalAddr().(*net.TCPAddr).AddrPort()
				remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()
				for j, sh := range sharded.grp.shards {
					sh.mu.Lock()
					has := sh.e.HasConn(local, remote)
					sh.mu.Unlock()
					if has && j != i {
						t.Errorf("connection %v is on shard %d and also on shard %d", remote, i, j)
					}
				}
			}
			for i, n := range per {
				if n == 0 {
					t.Errorf("shard %d accepted nothing (per shard: %v): the listener does not take from every shard", i, per)
				}
			}
			if n := sharded.IPStats().PassedOn; n != 0 {
				t.Errorf("%d packets passed between shards, though each flow stayed on its queue", n)
			}
			if got := sharded.Stats().PassiveEstablished; got != 300 {
				t.Errorf("Stats().PassiveEstablished = %d summed over the shards, want 300", got)
			}
			if st := peer.Stats(); st.OutRsts != 0 {
				t.Errorf("the peer sent %d RSTs", st.OutRsts)
			}
		})
	}
}

// TestShardsPassOnMisSteeredSegments puts every segment of established
// connections on a queue other than their shard's, as the kernel does to
// a flow idle for more than three seconds: the shard that reads them has
// no connection for them and must hand them to the one that has, not
// answer with RST. It does so both for a connection the sharded stack
// accepted and for one it dialed.
func TestShardsPassOnMisSteeredSegments(t *testing.T) {
	const queues = 2
	sharded, peer, q := newShardedPair(t, queues)

	// One accepted connection, one dialed.
	ln, err := sharded.Listen(netip.AddrPortFrom(addrB, 7).String(), 8)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pln, err := peer.Listen(netip.AddrPortFrom(addrA, 9).String(), 8)
	if err != nil {
		t.Fatal(err)
	}
	defer pln.Close()
	for _, l := range []net.Listener{ln, pln} {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in, err := peer.Dial(ctx, "tcp", netip.AddrPortFrom(addrB, 7).String())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := sharded.Dial(ctx, "tcp", netip.AddrPortFrom(addrA, 9).String())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// A first exchange on each, with the flows on their queues.
	for _, c := range []net.Conn{in, out} {
		roundTrip(t, c, []byte("steered"))
	}
	if n := sharded.IPStats().PassedOn; n != 0 {
		t.Fatalf("%d packets passed between shards before any was mis-steered", n)
	}

	// From now on the peer's segments go to the other queue.
	owner := make(map[flowPair]int)
	for _, sh := range sharded.grp.shards {
		for _, info := range sh.allConns() {
			f, _ := pairOf(fakeSegment(info.Local, info.Remote))
			owner[f] = indexOf(sharded, sh)
		}
	}
	q.setForce(func(pkt []byte) (int, bool) {
		f, ok := pairOf(pkt)
		if !ok {
			return 0, false
		}
		i, ok := owner[f]
		if !ok {
			return 0, false
		}
		return (i + 1) % queues, true
	})
	for _, c := range []net.Conn{in, out} {
		msg := bytes.Repeat([]byte("x"), 100<<10)
		roundTrip(t, c, msg)
	}
	// A segment is counted as moved when the peer writes it and as
	// passed on once a shard has taken it in: the peer's last ACKs may
	// still be on their way when the reply has been read. Once every
	// shard has taken in all it was sent, each moved segment has been
	// passed on, and nothing else has.
	q.setForce(nil) // the peer's delayed ACKs from now on go where they belong
	moved := q.awaitIdle(t, 30*time.Second)
	if moved == 0 {
		t.Fatal("no segment was put on the wrong queue")
	}
	if n := sharded.IPStats().PassedOn; n != moved {
		t.Fatalf("PassedOn = %d, want the %d segments put on the wrong queue", n, moved)
	}
	if st := sharded.Stats(); st.OutRsts != 0 {
		t.Errorf("the sharded stack sent %d RSTs", st.OutRsts)
	}
	// What the metrics export (TcpExtTunstackPassedOn) is the shards'
	// sum too.
	if m, ip := sharded.Metrics().IP.PassedOn, sharded.IPStats().PassedOn; m != ip {
		t.Errorf("Metrics().IP.PassedOn = %d, IPStats().PassedOn = %d", m, ip)
	}
}

func indexOf(s *Stack, sh *Stack) int {
	for i, x := range s.grp.shards {
		if x == sh {
			return i
		}
	}
	return -1
}

// fakeSegment is an IPv4 TCP header from remote to local, for pairOf.
func fakeSegment(local, remote netip.AddrPort) []byte {
	b := make([]byte, wire.IPv4HeaderLen+wire.TCPHeaderLen)
	wire.PutIPv4Header(b, wire.IPv4Fields{Src: remote.Addr().As4(), Dst: local.Addr().As4(), Protocol: wire.ProtoTCP, TTL: 64}, wire.TCPHeaderLen)
	binary.BigEndian.PutUint16(b[20:], remote.Port())
	binary.BigEndian.PutUint16(b[22:], local.Port())
	return b
}

// roundTrip writes msg on c, whose peer echoes, and reads it back.
func roundTrip(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	werr := make(chan error, 1)
	go func() { _, err := c.Write(msg); werr <- err }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading back %d bytes: %v", len(msg), err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("the echo differs from what was sent")
	}
}

// TestShardsAggregateTheirViews checks that a stack of shards shows one
// listener per address with its shards' queues summed, lists every
// shard's connections, and splits the ephemeral ports between shards.
func TestShardsAggregateTheirViews(t *testing.T) {
	const queues = 3
	sharded, peer, _ := newShardedPair(t, queues)
	echoConns(t, sharded, peer, 30)
	var listeners int
	for _, si := range sharded.Sockets() {
		if si.State == tcpcore.Listen {
			listeners++
			if si.SendQ != echoBacklog {
				t.Errorf("listener's Send-Q (backlog) = %d, want the %d each shard has", si.SendQ, echoBacklog)
			}
		}
	}
	if listeners != 1 {
		t.Errorf("Sockets lists %d listeners, want the one", listeners)
	}
	m := sharded.Metrics()
	if len(m.Listeners) != 1 || m.Engine.PassiveEstablished != 30 {
		t.Errorf("Metrics: %d listeners, %d passive opens; want 1 and 30", len(m.Listeners), m.Engine.PassiveEstablished)
	}
	prof := sharded.grp.shards[0].e.Profile()
	for i, sh := range sharded.grp.shards[1:] {
		p := sh.e.Profile()
		if p.LocalPortMin != prof.LocalPortMax+1 {
			t.Errorf("shard %d's ports start at %d, not after shard %d's end %d", i+1, p.LocalPortMin, i, prof.LocalPortMax)
		}
		prof = p
	}
}

// TestShardsOneConnectionForSYNsOnSeveralQueues puts a copy of each of
// 200 clients' SYNs on every queue at once, as the kernel does when it
// moves a flow between queues while the client retransmits its SYN (its
// flow table ages out, or a write of the flow on another queue moves it):
// the shards read the copies concurrently, and exactly one of them may
// open the connection. Each flow's copies on the other queues are passed
// to that shard (the owner table), none opens a second connection on
// the same 4-tuple, and no shard answers with RST. The table then holds
// those flows and no more, and a SYN that opens nothing (to a port with
// no listener) leaves nothing in it.
func TestShardsOneConnectionForSYNsOnSeveralQueues(t *testing.T) {
	for _, queues := range []int{2, 4} {
		t.Run(fmt.Sprint(queues, " queues"), func(t *testing.T) {
			const flows = 200
			links, q := newQueueLinks(t, queues)
			sharded, err := NewShards(links, Config{Addr: addrB})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sharded.Close() })
			ln, err := sharded.Listen(netip.AddrPortFrom(addrB, 7).String(), echoBacklog)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()

			// Every SYN is written on all the queues before the next.
			for i := range flows {
				syn := clientSYN(netip.AddrPortFrom(addrA, uint16(20000+i)), netip.AddrPortFrom(addrB, 7), uint32(i)*7919)
				for _, end := range q.ends {
					if _, err := end.WritePackets([][]byte{syn}); err != nil {
						t.Fatal(err)
					}
				}
			}
			deadline := time.Now().Add(30 * time.Second)
			// The reader counts a batch in before handling it: wait for
			// every copy to reach an engine, directly or passed on (a
			// copy is counted in TCPIn by the shard whose engine takes
			// it).
			want := uint64(flows * (queues - 1))
			for sharded.IPStats().TCPIn < flows*uint64(queues) {
				if time.Now().After(deadline) {
					t.Fatalf("%d of the %d SYNs reached an engine", sharded.IPStats().TCPIn, flows*queues)
				}
				time.Sleep(time.Millisecond)
			}
			for i := range flows {
				remote := netip.AddrPortFrom(addrA, uint16(20000+i))
				var on []int
				for j, sh := range sharded.grp.shards {
					sh.mu.Lock()
					if sh.e.HasConn(netip.AddrPortFrom(addrB, 7), remote) {
						on = append(on, j)
					}
					sh.mu.Unlock()
				}
				if len(on) != 1 {
					t.Errorf("client %v has a connection on shards %v, want exactly one", remote, on)
				}
			}
			// The copies that arrived on the owner's queue are its own;
			// every other copy was passed to it, once.
			if got := sharded.IPStats().PassedOn; got != want {
				t.Errorf("PassedOn = %d, want %d (each flow's copies on the queues other than its shard's)", got, want)
			}
			st := sharded.Stats()
			if st.PassiveOpens != flows {
				t.Errorf("PassiveOpens = %d summed over the shards, want %d: one per client", st.PassiveOpens, flows)
			}
			if st.OutRsts != 0 {
				t.Errorf("the shards sent %d RSTs", st.OutRsts)
			}
			if n := sharded.grp.owners.len(); n != flows {
				t.Errorf("the owner table holds %d flows, want the %d connections", n, flows)
			}

			// A SYN to a port with no listener claims its flow, is
			// answered with RST, and gives the claim up: the table keeps
			// only flows an engine has.
			rst := make(chan struct{})
			go func() {
				for {
					select {
					case p := <-q.in:
						if tcp := wire.TCP(wire.IPv4(p).Payload()); tcp.SrcPort() == 8 && tcp.Flags()&wire.FlagRST != 0 {
							close(rst)
							return
						}
					case <-q.done:
						return
					}
				}
			}()
			syn := clientSYN(netip.AddrPortFrom(addrA, 30000), netip.AddrPortFrom(addrB, 8), 1)
			if _, err := q.ends[0].WritePackets([][]byte{syn}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-rst:
			case <-time.After(30 * time.Second):
				t.Fatal("no RST for a SYN to a port without a listener")
			}
			if n := sharded.grp.owners.len(); n != flows {
				t.Errorf("after a SYN answered with RST the owner table holds %d flows, want %d", n, flows)
			}
		})
	}
}

// len counts the flows in the table.
func (o *owners) len() int {
	n := 0
	for i := range o.stripes {
		st := &o.stripes[i]
		st.mu.Lock()
		n += len(st.m)
		st.mu.Unlock()
	}
	return n
}

// clientSYN is a client's SYN from remote to local with initial sequence
// number iss and an MSS option, its checksums computed.
func clientSYN(remote, local netip.AddrPort, iss uint32) []byte {
	opt := wire.AppendTCPOption(nil, wire.MSSOption(1460))
	b := make([]byte, wire.IPv4HeaderLen+wire.TCPHeaderLen+len(opt))
	wire.PutIPv4Header(b, wire.IPv4Fields{Src: remote.Addr().As4(), Dst: local.Addr().As4(), Protocol: wire.ProtoTCP, TTL: 64}, wire.TCPHeaderLen+len(opt))
	tcp := wire.TCP(b[wire.IPv4HeaderLen:])
	wire.PutTCPHeader(tcp, wire.TCPFields{SrcPort: remote.Port(), DstPort: local.Port(), Seq: iss, Flags: wire.FlagSYN, Window: 65535}, len(opt))
	copy(tcp[wire.TCPHeaderLen:], opt)
	tcp.ComputeChecksum(remote.Addr().As4(), local.Addr().As4())
	return b
}
