package gvisorstack

import (
	"bytes"
	"context"
	"io"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"tunstack/policy"
)

var (
	zwLocal  = tcpip.AddrFrom4([4]byte{10, 0, 0, 1})
	zwRemote = tcpip.AddrFrom4([4]byte{10, 0, 0, 9})
)

// tcpPacket builds an IPv4 TCP packet with valid checksums.
func tcpPacket(src, dst tcpip.Address, sport, dport uint16, seq, ack uint32, flags header.TCPFlags, wnd uint16, opts, payload []byte) []byte {
	for len(opts)%4 != 0 {
		opts = append(opts, header.TCPOptionNOP)
	}
	tcpLen := header.TCPMinimumSize + len(opts)
	pkt := make([]byte, header.IPv4MinimumSize+tcpLen+len(payload))
	ip := header.IPv4(pkt)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(pkt)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: src, DstAddr: dst,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	h := header.TCP(ip.Payload())
	h.Encode(&header.TCPFields{
		SrcPort: sport, DstPort: dport, SeqNum: seq, AckNum: ack,
		DataOffset: uint8(tcpLen), Flags: flags, WindowSize: wnd,
	})
	copy(h[header.TCPMinimumSize:], opts)
	copy(h[tcpLen:], payload)
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(tcpLen+len(payload)))
	h.SetChecksum(^checksum.Checksum(h, xsum))
	return pkt
}

// fromGVisor is a segment gVisor sends on the test connection.
func fromGVisor(seq, ack uint32, flags header.TCPFlags, wnd uint16, payload []byte) []byte {
	return tcpPacket(zwLocal, zwRemote, 40000, 80, seq, ack, flags, wnd, nil, payload)
}

// toGVisor is a segment of the peer on the test connection.
func toGVisor(seq, ack uint32, flags header.TCPFlags, wnd uint16, opts, payload []byte) []byte {
	return tcpPacket(zwRemote, zwLocal, 80, 40000, seq, ack, flags, wnd, opts, payload)
}

func TestZeroWindowRepairDecisions(t *testing.T) {
	const a = 7000 // gVisor's RCV.NXT at its zero window
	z := newZeroWindowRepair()
	scratch := make([]byte, testMTU)
	ts := make([]byte, 12)
	n := header.EncodeNOP(ts)
	n += header.EncodeNOP(ts[n:])
	n += header.EncodeTSOption(111, 222, ts[n:])
	ts = ts[:n]

	if got := z.inbound(toGVisor(a+64, 500, header.TCPFlagAck, 300, nil, []byte("x")), scratch); got != nil {
		t.Fatal("a copy before gVisor advertised a zero window")
	}
	z.outbound(fromGVisor(100, a, header.TCPFlagAck, 0, nil))
	if z.n.Load() != 1 {
		t.Fatalf("tracking %d connections after a zero window, want 1", z.n.Load())
	}

	// A pure ACK at RCV.NXT is taken by gVisor itself.
	if got := z.inbound(toGVisor(a, 400, header.TCPFlagAck, 300, ts, nil), scratch); got != nil {
		t.Fatal("a copy of a pure ACK at RCV.NXT")
	}
	// Data with the same ACK brings gVisor's sender nothing new.
	if got := z.inbound(toGVisor(a, 400, header.TCPFlagAck, 300, ts, []byte("data")), scratch); got != nil {
		t.Fatal("a copy of an acknowledgment gVisor has taken already")
	}

	// Data at RCV.NXT acknowledging more: copied.
	in := toGVisor(a, 500, header.TCPFlagAck|header.TCPFlagPsh, 300, ts, []byte("data"))
	got := z.inbound(in, scratch)
	if got == nil {
		t.Fatal("no copy of a data segment with a new ACK at a zero window")
	}
	checkPureACK(t, got, in, a)
	// A pure ACK beyond RCV.NXT (the peer's SND.NXT), same ACK: nothing new.
	if got := z.inbound(toGVisor(a+64, 500, header.TCPFlagAck, 300, ts, nil), scratch); got != nil {
		t.Fatal("a second copy of the same acknowledgment")
	}
	// ... unless it carries SACK blocks.
	sack := make([]byte, 12)
	n = header.EncodeNOP(sack)
	n += header.EncodeNOP(sack[n:])
	n += header.EncodeSACKBlocks([]header.SACKBlock{{Start: 600, End: 700}}, sack[n:])
	in = toGVisor(a+64, 500, header.TCPFlagAck, 300, sack[:n], nil)
	if got := z.inbound(in, scratch); got == nil {
		t.Fatal("no copy of an ACK with SACK blocks")
	} else {
		checkPureACK(t, got, in, a)
	}
	// A window update is new.
	if got := z.inbound(toGVisor(a+64, 500, header.TCPFlagAck, 301, nil, nil), scratch); got == nil {
		t.Fatal("no copy of a window update")
	}
	// Another connection is none of its business.
	other := tcpPacket(zwRemote, zwLocal, 81, 40000, a+64, 900, header.TCPFlagAck, 300, nil, nil)
	if got := z.inbound(other, scratch); got != nil {
		t.Fatal("a copy for a connection not at a zero window")
	}
	// A FIN with a new ACK is copied, then the connection forgotten.
	in = toGVisor(a+64, 600, header.TCPFlagAck|header.TCPFlagFin, 300, nil, nil)
	if got := z.inbound(in, scratch); got == nil {
		t.Fatal("no copy of a FIN's new ACK")
	} else {
		checkPureACK(t, got, in, a)
	}
	if z.n.Load() != 0 {
		t.Fatal("the connection is still tracked after its FIN")
	}

	// gVisor's RCV.NXT moving at zero window starts over.
	z.outbound(fromGVisor(100, a, header.TCPFlagAck, 0, nil))
	if got := z.inbound(toGVisor(a+64, 600, header.TCPFlagAck, 300, nil, nil), scratch); got == nil {
		t.Fatal("no copy after gVisor advertised zero again")
	}
	z.outbound(fromGVisor(100, a+64, header.TCPFlagAck, 0, nil))
	if got := z.inbound(toGVisor(a+128, 600, header.TCPFlagAck, 300, nil, nil), scratch); got == nil {
		t.Fatal("no copy at a new RCV.NXT")
	} else if s := header.TCP(got[header.IPv4MinimumSize:]).SequenceNumber(); s != a+64 {
		t.Fatalf("copy at sequence number %d, want the new RCV.NXT %d", s, a+64)
	}

	// An open window, or a RST either way, ends the tracking.
	z.outbound(fromGVisor(100, a+64, header.TCPFlagAck, 10, nil))
	if z.n.Load() != 0 {
		t.Fatal("tracked after gVisor opened its window")
	}
	z.outbound(fromGVisor(100, a, header.TCPFlagAck, 0, nil))
	z.inbound(toGVisor(a+64, 600, header.TCPFlagRst|header.TCPFlagAck, 0, nil, nil), scratch)
	if z.n.Load() != 0 {
		t.Fatal("tracked after the peer's RST")
	}
	z.outbound(fromGVisor(100, a, header.TCPFlagAck, 0, nil))
	z.outbound(fromGVisor(100, a, header.TCPFlagRst|header.TCPFlagAck, 0, nil))
	if z.n.Load() != 0 {
		t.Fatal("tracked after gVisor's RST")
	}

	// The map is capped.
	for i := range maxZeroWindowConns + 10 {
		z.outbound(tcpPacket(zwLocal, zwRemote, uint16(1000+i), 80, 1, a, header.TCPFlagAck, 0, nil, nil))
	}
	if n := z.n.Load(); n != maxZeroWindowConns {
		t.Fatalf("tracking %d connections, want the cap %d", n, maxZeroWindowConns)
	}
}

// checkPureACK checks that got is a valid pure ACK copy of in at sequence
// number seq.
func checkPureACK(t *testing.T, got, in []byte, seq uint32) {
	t.Helper()
	ip := header.IPv4(got)
	if !ip.IsValid(len(got)) || int(ip.TotalLength()) != len(got) || ip.CalculateChecksum() != 0xffff {
		t.Fatalf("copy has a bad IPv4 header: % x", got)
	}
	h, o := header.TCP(ip.Payload()), header.TCP(header.IPv4(in).Payload())
	if len(h.Payload()) != 0 {
		t.Fatalf("copy carries %d bytes of data", len(h.Payload()))
	}
	if !h.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(nil, 0), 0) {
		t.Fatal("copy has a bad TCP checksum")
	}
	if h.Flags() != header.TCPFlagAck || h.SequenceNumber() != seq || h.AckNumber() != o.AckNumber() ||
		h.WindowSize() != o.WindowSize() || !bytes.Equal(h.Options(), o.Options()) ||
		h.SourcePort() != o.SourcePort() || h.DestinationPort() != o.DestinationPort() ||
		ip.SourceAddress() != header.IPv4(in).SourceAddress() {
		t.Fatalf("copy flags %v seq %d ack %d wnd %d opts % x; want ACK, %d, %d, %d, % x",
			h.Flags(), h.SequenceNumber(), h.AckNumber(), h.WindowSize(), h.Options(),
			seq, o.AckNumber(), o.WindowSize(), o.Options())
	}
}

// TestZeroWindowRepairFastPathAllocatesNothing: with no connection at a
// zero window, and for the connections not at one, the repair's per-packet
// work allocates nothing.
func TestZeroWindowRepairFastPathAllocatesNothing(t *testing.T) {
	z := newZeroWindowRepair()
	scratch := make([]byte, testMTU)
	out := fromGVisor(100, 7000, header.TCPFlagAck, 500, make([]byte, 1000))
	in := toGVisor(7000, 1100, header.TCPFlagAck, 500, nil, make([]byte, 1000))
	check := func(what string) {
		t.Helper()
		if n := testing.AllocsPerRun(1000, func() {
			z.outbound(out)
			if z.inbound(in, scratch) != nil {
				t.Fatal("a copy for a connection with an open window")
			}
		}); n != 0 {
			t.Fatalf("%s: %v allocations per packet pair", what, n)
		}
	}
	check("no connection at a zero window")
	z.outbound(tcpPacket(zwLocal, zwRemote, 1000, 80, 1, 9, header.TCPFlagAck, 0, nil, nil))
	check("another connection at a zero window")
}

// BenchmarkBulkZeroWindowRepair moves data between two gVisor stacks with
// the zero-window ACK repair off and on: with no connection at a zero
// window the repair's cost must not show.
func BenchmarkBulkZeroWindowRepair(b *testing.B) {
	for _, repair := range []bool{false, true} {
		name := "off"
		if repair {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			o := OptionsFromProfile(policy.Linux())
			o.ZeroWindowACKRepair = repair
			p := newPair(b, &o)
			l, err := p.b.Listen(":80", 1)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			done := make(chan error, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					done <- err
					return
				}
				_, err = io.Copy(io.Discard, c)
				c.Close()
				done <- err
			}()
			c, err := p.a.Dial(context.Background(), "tcp", addrB.String()+":80")
			if err != nil {
				b.Fatal(err)
			}
			chunk := make([]byte, 64<<10)
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			c.Close()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if n := p.a.Stats().ZeroWindowACKRepairs + p.b.Stats().ZeroWindowACKRepairs; n != 0 {
				b.Logf("%d ACK copies", n)
			}
		})
	}
}

// BenchmarkZeroWindowRepairPerPacket is the repair's own cost for one
// outbound and one inbound data packet of a connection with an open
// window, with no connection at a zero window ("idle") and with another
// one at a zero window ("tracking").
func BenchmarkZeroWindowRepairPerPacket(b *testing.B) {
	out := fromGVisor(100, 7000, header.TCPFlagAck, 500, make([]byte, 1000))
	in := toGVisor(7000, 1100, header.TCPFlagAck, 500, nil, make([]byte, 1000))
	scratch := make([]byte, testMTU)
	for _, tracking := range []bool{false, true} {
		name := "idle"
		if tracking {
			name = "tracking"
		}
		b.Run(name, func(b *testing.B) {
			z := newZeroWindowRepair()
			if tracking {
				z.outbound(tcpPacket(zwLocal, zwRemote, 1000, 80, 1, 9, header.TCPFlagAck, 0, nil, nil))
			}
			b.ReportAllocs()
			for range b.N {
				z.outbound(out)
				if z.inbound(in, scratch) != nil {
					b.Fatal("a copy for a connection with an open window")
				}
			}
		})
	}
}
