package tcpcore

import (
	"encoding/binary"
	"testing"

	"tunstack/wire"
)

// benchConn sets up an established connection with timestamps and SACK,
// as a Linux peer would have it.
func benchConn(b *testing.B) (*peer, *Conn, Seq) {
	t := &testing.T{}
	p := newPeer(t, nil)
	syn := wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 1, SACKPermitted: true, HasWScale: true, WScale: 7}
	c, iss := p.listenAndAccept(syn)
	if c == nil {
		b.Fatal("handshake failed")
	}
	return p, c, iss
}

// BenchmarkBulkReceive measures the in-order receive path: one full-sized
// segment in, read by the application, the engine's ACKs released.
func BenchmarkBulkReceive(b *testing.B) {
	p, c, iss := benchConn(b)
	e := p.e
	seg := tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535,
		opts: wire.TCPOptions{HasTS: true, TSVal: 100, TSEcr: 1}, payload: make([]byte, 1448)}
	pkt := seg.encode(remote, local)
	t := wire.TCP(pkt)
	buf := make([]byte, 64<<10)
	seq := uint32(peerISN + 1)
	src, dst := remote.Addr().As4(), local.Addr().As4()
	b.SetBytes(1448)
	var out []*Packet // reused, as a driver does
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint32(pkt[4:], seq)
		t.ComputeChecksum(src, dst)
		seq += 1448
		p.now += 10000
		e.Input(p.now, remoteIP, localIP, pkt)
		c.Read(p.now, buf)
		out = benchDrive(e, p.now, out)
	}
}

// benchDrive does what the driver does after input: sends (releases) the
// engine's output, reusing out, wakes the sockets and runs the timers due
// by now. It returns out for the next call.
func benchDrive(e *Engine, now Time, out []*Packet) []*Packet {
	out = e.Output(out[:0])
	e.Release(out)
	for _, w := range e.Wakeups() {
		w.Wake()
	}
	if dl, ok := e.NextDeadline(); ok && dl <= now {
		e.Advance(now)
	}
	return out
}

// BenchmarkBulkReceiveGRO is BulkReceive with the segments arriving as
// GRO units of 16 (a TSO packet from the kernel, its checksum vouched for
// by the link): one op is one segment, so the figure compares with
// BulkReceive's.
func BenchmarkBulkReceiveGRO(b *testing.B) {
	const segs = 16
	p, c, iss := benchConn(b)
	e := p.e
	seg := tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535,
		opts: wire.TCPOptions{HasTS: true, TSVal: 100, TSEcr: 1}, payload: make([]byte, segs*1448)}
	pkt := seg.encode(remote, local)
	buf := make([]byte, 64<<10)
	seq := uint32(peerISN + 1)
	meta := InputMeta{SegSize: 1448, ChecksumOK: true}
	b.SetBytes(1448)
	var out []*Packet // reused, as a driver does
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += segs {
		binary.BigEndian.PutUint32(pkt[4:], seq)
		seq += segs * 1448
		p.now += 10000
		e.InputGRO(p.now, remoteIP, localIP, pkt, meta)
		for {
			if n, _ := c.Read(p.now, buf); n == 0 {
				break
			}
		}
		out = benchDrive(e, p.now, out)
	}
}

// BenchmarkBulkSend measures the send path: the application writes one
// segment's worth, the engine emits it, and every second segment an ACK
// comes back.
func BenchmarkBulkSend(b *testing.B) { benchBulkSend(b, false) }

// BenchmarkBulkSendChecksumOffload is BulkSend with the checksums left
// partial for the link (Config.ChecksumOffload), the descriptor output.
func BenchmarkBulkSendChecksumOffload(b *testing.B) { benchBulkSend(b, true) }

// BenchmarkBulkSendBurst measures the send path a burst at a time: the
// application writes 16 segments' worth, the engine emits them, and one
// ACK acknowledges them all; per byte, as BulkSend.
func BenchmarkBulkSendBurst(b *testing.B) { benchBulkSendBurst(b, false, false) }

// BenchmarkBulkSendBurstSegmentOffload is BulkSendBurst with the chunks of
// Config.SegmentOffload, the output to a TUN that takes GSO packets.
func BenchmarkBulkSendBurstSegmentOffload(b *testing.B) { benchBulkSendBurst(b, true, false) }

// BenchmarkBulkSendBurstZeroCopy is BulkSendBurstSegmentOffload with
// Config.ZeroCopyChunks: the chunks' payloads stay in the send ring.
func BenchmarkBulkSendBurstZeroCopy(b *testing.B) { benchBulkSendBurst(b, true, true) }

func benchBulkSendBurst(b *testing.B, gso, zeroCopy bool) {
	p, c, iss := benchConn(b)
	p.e.cfg.ChecksumOffload, p.e.cfg.SegmentOffload, p.e.cfg.ZeroCopyChunks = true, gso, zeroCopy
	e := p.e
	const burst = 16
	ack := tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535,
		opts: wire.TCPOptions{HasTS: true, TSVal: 100, TSEcr: 1}}
	pkt := ack.encode(remote, local)
	t := wire.TCP(pkt)
	data := make([]byte, burst*1448)
	acked := uint32(iss + 1)
	src, dst := remote.Addr().As4(), local.Addr().As4()
	b.SetBytes(int64(len(data)))
	var out []*Packet // reused, as a driver does
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.now += 10000
		for w := 0; w < len(data); {
			n, err := c.Write(p.now, data[w:])
			if err != nil {
				b.Fatalf("write: %v", err)
			}
			w += n
			out = e.Output(out[:0])
			e.Release(out)
			if w < len(data) || c.sndNxt != c.sndUna.Add(c.sndBuf.Len()) {
				// Acknowledge what is out, to make room.
				acked = uint32(c.sndNxt)
				binary.BigEndian.PutUint32(pkt[8:], acked)
				t.ComputeChecksum(src, dst)
				e.Input(p.now, remoteIP, localIP, pkt)
				out = e.Output(out[:0])
				e.Release(out)
			}
		}
		acked = uint32(c.sndNxt)
		binary.BigEndian.PutUint32(pkt[8:], acked)
		t.ComputeChecksum(src, dst)
		e.Input(p.now, remoteIP, localIP, pkt)
		out = e.Output(out[:0])
		e.Release(out)
		for _, w := range e.Wakeups() {
			w.Wake()
		}
	}
}

func benchBulkSend(b *testing.B, offload bool) {
	p, c, iss := benchConn(b)
	p.e.cfg.ChecksumOffload = offload
	c.SetNoDelay(p.now, true)
	e := p.e
	ack := tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535,
		opts: wire.TCPOptions{HasTS: true, TSVal: 100, TSEcr: 1}}
	pkt := ack.encode(remote, local)
	t := wire.TCP(pkt)
	data := make([]byte, 1448)
	acked := uint32(iss + 1)
	src, dst := remote.Addr().As4(), local.Addr().As4()
	b.SetBytes(1448)
	var out []*Packet // reused, as a driver does
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.now += 10000
		if _, err := c.Write(p.now, data); err != nil {
			b.Fatalf("write: %v", err)
		}
		out = e.Output(out[:0])
		e.Release(out)
		if i%2 == 1 {
			acked += 2 * 1448
			binary.BigEndian.PutUint32(pkt[8:], acked)
			t.ComputeChecksum(src, dst)
			e.Input(p.now, remoteIP, localIP, pkt)
			out = e.Output(out[:0])
			e.Release(out)
		}
		for _, w := range e.Wakeups() {
			w.Wake()
		}
	}
}

// BenchmarkPureAck measures an ACK that acknowledges nothing new (the
// cheapest segment a busy connection sees).
func BenchmarkPureAck(b *testing.B) {
	p, _, iss := benchConn(b)
	e := p.e
	ack := tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535,
		opts: wire.TCPOptions{HasTS: true, TSVal: 100, TSEcr: 1}}
	pkt := ack.encode(remote, local)
	var out []*Packet // reused, as a driver does
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Input(p.now, remoteIP, localIP, pkt)
		out = e.Output(out[:0])
		e.Release(out)
	}
}

// BenchmarkSACKLargeScoreboard measures the scoreboard at its bound (512
// disjoint SACKed ranges, as a peer describing one hole per segment of a
// large window leaves it). Per operation, an ACK's worth of work: a block
// that splits a hole in the middle (an insert, which at the bound also
// drops the lowest range), the block that fills the hole (a merge with
// both neighbours), the search for what a block newly covers that
// recovery makes for each block, and RFC 6675's loss boundary. Each
// operation also restores the board with one 4 KiB copy, so the figure is
// an upper bound.
func BenchmarkSACKLargeScoreboard(b *testing.B) {
	const seg = 1448
	una := Seq(1000)
	base := make([]seqRange, 0, maxScoreboardBlocks)
	for i := 0; i < maxScoreboardBlocks; i++ {
		s := una + Seq((2*i+1)*seg)
		base = append(base, seqRange{s, s + seg}) // every other segment SACKed
	}
	sb := scoreboard{blocks: make([]seqRange, len(base), maxScoreboardBlocks+1)}
	mid := una + Seq(maxScoreboardBlocks*seg) // a hole in the middle
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sb.blocks = sb.blocks[:len(base)]
		copy(sb.blocks, base)
		sb.sackedBytes = maxScoreboardBlocks * seg
		sb.add(mid+100, mid+200)
		_, _ = sb.nextGap(mid, mid+seg)
		_, _ = sb.span(mid, mid+seg)
		sb.add(mid, mid+seg)
		_ = sb.lossBoundary(una, 3, seg)
	}
}
