package tcpcore

import (
	"flag"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"tunstack/wire"
)

var idleHeapProfile = flag.String("idle.heapprofile", "", "BenchmarkIdleConnHeap writes a heap profile of its idle connections to this file")

// openIdle opens n connections from kernel-like peers (MSS, SACK,
// timestamps, window scaling on the SYN) to a listener of e, completes
// each handshake and accepts it, and returns the connections.
func openIdle(tb testing.TB, e *Engine, now Time, n int) []*Conn {
	tb.Helper()
	srv := netip.MustParseAddrPort("198.18.0.2:80")
	l, err := e.Listen(now, srv, 4096, SockOpts{NoDelay: true, KeepAlive: true})
	if err != nil {
		tb.Fatal(err)
	}
	conns := make([]*Conn, 0, n)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true, HasTS: true, TSVal: 7, HasWScale: true, WScale: 7}
	for i := range n {
		// One peer address per 50,000 ports, as many peers would.
		peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(i / 50000)}), uint16(10000+i%50000))
		e.Input(now, peer.Addr(), srv.Addr(), tseg{flags: fS, seq: peerISN, wnd: 65535, opts: syn}.encode(peer, srv))
		pkts := e.Output(nil)
		if len(pkts) != 1 {
			tb.Fatalf("connection %d: %d packets after the SYN, want the SYN-ACK", i, len(pkts))
		}
		sa := wire.TCP(pkts[0].Segment())
		var o wire.TCPOptions
		wire.ParseTCPOptions(sa.Options(), &o)
		iss := Seq(sa.Seq())
		e.Release(pkts)
		ack := tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 502, opts: wire.TCPOptions{HasTS: true, TSVal: 8, TSEcr: o.TSVal}}
		e.Input(now, peer.Addr(), srv.Addr(), ack.encode(peer, srv))
		e.Release(e.Output(nil))
		c, err := l.Accept(now)
		if err != nil {
			tb.Fatalf("connection %d: accept: %v", i, err)
		}
		conns = append(conns, c)
	}
	return conns
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkIdleConnHeap reports the engine's live heap per established idle
// connection (B/conn), what the stack adds to it being its own Conn. Run
// with -benchtime=100000x for the figure at 100,000 connections.
func BenchmarkIdleConnHeap(b *testing.B) {
	if *idleHeapProfile != "" {
		runtime.MemProfileRate = 1
	}
	e, err := NewEngine(Config{Profile: testProfile(), MTU: 1500, Secret: [32]byte{9}})
	if err != nil {
		b.Fatal(err)
	}
	now := Time(time.Second)
	before := liveHeap()
	conns := openIdle(b, e, now, b.N)
	e.Advance(now.Add(time.Second))
	e.Release(e.Output(nil))
	after := liveHeap()
	// Signed: a heap that shrank under the measurement (a collection
	// freeing what came before it) would wrap an unsigned difference.
	grew := int64(after) - int64(before)
	if grew <= 0 {
		b.Fatalf("the live heap grew by %d bytes with %d idle connections open: the measurement missed them", grew, b.N)
	}
	b.ReportMetric(float64(grew)/float64(b.N), "B/conn")
	b.ReportMetric(0, "ns/op")
	if *idleHeapProfile != "" {
		f, err := os.Create(*idleHeapProfile)
		if err != nil {
			b.Fatal(err)
		}
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	runtime.KeepAlive(conns)
	runtime.KeepAlive(e)
}
