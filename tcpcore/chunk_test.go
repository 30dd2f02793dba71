package tcpcore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tunstack/wire"
)

// cutChunk cuts a packet of Output as Linux's tcp_gso_segment cuts a GSO
// packet: each segment gets the header with its own sequence number, PSH
// only on the last, and a partial checksum over its own length. A packet
// of one segment comes back as it is.
func cutChunk(p *Packet) [][]byte {
	seg := p.Segment()
	if a, b := p.Tail(); len(a) > 0 {
		seg = append(append(bytes.Clone(seg), a...), b...)
	}
	size := p.SegmentSize()
	if size == 0 {
		return [][]byte{bytes.Clone(seg)}
	}
	hl := wire.TCP(seg).DataOffset()
	payload := seg[hl:]
	var out [][]byte
	for off := 0; off < len(payload); off += size {
		n := min(size, len(payload)-off)
		s := append(bytes.Clone(seg[:hl]), payload[off:off+n]...)
		binary.BigEndian.PutUint32(s[4:], wire.TCP(seg).Seq()+uint32(off))
		if off+n < len(payload) {
			s[13] &^= wire.FlagPSH
		}
		wire.TCP(s).SetChecksum(^wire.Fold(wire.PseudoHeaderSumAddr(p.Src, p.Dst, wire.ProtoTCP, len(s))))
		out = append(out, s)
	}
	return out
}

// With Config.SegmentOffload the engine queues runs of data segments as
// chunks, and cutting them as the kernel does gives back, byte for byte,
// the segments the engine sends without it on the same inputs: slow
// start over several round trips, a window that cuts a segment short,
// PSH where the send queue empties, a retransmission timeout, and a FIN.
// With Config.ZeroCopyChunks too, the chunks' payloads are the send
// ring's spans (one chunk at least wrapping the ring's end) and give the
// same bytes. The sender's books agree too after every round: a run of
// segments sent at once (sendRun) records each segment in the
// retransmission and delivery queues, the counters and the timers as
// one sent at a time does. Over both families.
func TestSegmentOffloadCutsBackToTheSameSegments(t *testing.T) {
	for _, f := range []family{ipv4, ipv6} {
		t.Run(f.String(), func(t *testing.T) {
			var runs [3][][]byte
			var books [3][]string
			var chunks, bigChunk, wrapped int
			for i, mode := range []string{"plain", "chunks", "zero-copy"} {
				e, err := NewEngine(Config{Profile: testProfile(), MTU: 1500, Secret: [32]byte{9}, ChecksumOffload: true,
					SegmentOffload: mode != "plain", ZeroCopyChunks: mode == "zero-copy"})
				if err != nil {
					t.Fatal(err)
				}
				now := Time(time.Second)
				l, r := f.addrs()
				// A send buffer of its own size keeps the ring from
				// growing with the window, so its contents wrap its end.
				c, err := e.Connect(now, netip.AddrPortFrom(l.Addr(), 0), r, SockOpts{SndBuf: 50_000})
				if err != nil {
					t.Fatal(err)
				}
				collect := func() []*Packet {
					pkts := e.Output(nil)
					for _, p := range pkts {
						if p.SegmentSize() != 0 && mode == "chunks" {
							chunks++
							bigChunk = max(bigChunk, p.Segments())
						}
						if a, b := p.Tail(); mode == "zero-copy" && len(b) > 0 && len(a) > 0 {
							wrapped++
						}
						runs[i] = append(runs[i], cutChunk(p)...)
					}
					return pkts
				}
				syn := collect()
				sa := wire.TCP(syn[0].Segment())
				local := netip.AddrPortFrom(l.Addr(), sa.SrcPort())
				e.Release(syn)
				now = now.Add(time.Millisecond)
				opts := wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 1, TSEcr: 1, SACKPermitted: true, HasWScale: true, WScale: 7}
				e.Input(now, r.Addr(), l.Addr(), tseg{flags: fSA, seq: peerISN, ack: Seq(sa.Seq()) + 1, wnd: 65535, opts: opts}.encode(r, local))
				e.Release(collect())
				data := make([]byte, 400_000)
				for j := range data {
					data[j] = byte(j * 7)
				}
				written := 0
				// The peer's window: 2 MB, then one that ends inside a segment.
				wnd := uint16(2_000_000 >> 7)
				closed := false
				for round := 0; round < 40; round++ {
					if written < len(data) {
						n, _ := c.Write(now, data[written:])
						written += n
					}
					if written == len(data) && round >= 9 && !closed {
						c.Close(now)
						closed = true
					}
					pkts := collect()
					var top Seq
					sent := false
					for _, p := range pkts {
						s := wire.TCP(p.Segment())
						end := Seq(s.Seq()).Add(len(s) - s.DataOffset() + p.TailLen())
						if s.Flags()&wire.FlagFIN != 0 {
							end = end.Add(1)
						}
						if !sent || end.GT(top) {
							top, sent = end, true
						}
					}
					e.Release(pkts)
					books[i] = append(books[i], senderBooks(c))
					if !sent {
						continue
					}
					if round == 5 {
						wnd = uint16((c.sndNxt.Sub(top) + 30_000 + 700) >> 7)
					}
					if round == 3 {
						// No ACK: the tail loss probe and then the
						// retransmission timer fire, resending from
						// SND.UNA, collected by the next round.
						for range 3 {
							now = now.Add(time.Second)
							e.Advance(now)
						}
						continue
					}
					now = now.Add(time.Millisecond)
					ack := tseg{flags: wire.FlagACK, seq: peerISN + 1, ack: top, wnd: wnd,
						opts: wire.TCPOptions{HasTS: true, TSVal: uint32(round + 2), TSEcr: 1}}
					e.Input(now, r.Addr(), l.Addr(), ack.encode(r, local))
				}
				e.Release(collect())
			}
			fins, short := 0, 0
			for _, s := range runs[0] {
				tcp := wire.TCP(s)
				if tcp.Flags()&wire.FlagFIN != 0 {
					fins++
				}
				if n := len(s) - tcp.DataOffset(); n > 0 && n < 1000 {
					short++
				}
			}
			t.Logf("%d segments, %d chunks, the largest of %d segments; %d FIN, %d short; %d zero-copy chunks wrapping the ring", len(runs[0]), chunks, bigChunk, fins, short, wrapped)
			seen, resent := map[uint32]bool{}, 0
			for _, s := range runs[0] {
				if tcp := wire.TCP(s); len(s) > tcp.DataOffset() {
					if seen[tcp.Seq()] {
						resent++
					}
					seen[tcp.Seq()] = true
				}
			}
			if resent == 0 {
				t.Fatal("no data segment was retransmitted: the test does not reach the retransmission timeout")
			}
			if wrapped == 0 {
				t.Fatal("no zero-copy chunk wrapped the send ring's end: the test does not reach the two-span case")
			}
			if fins != 1 || short == 0 {
				t.Fatalf("the transfer had %d FIN and %d short segments: want a FIN and a window that cuts a segment short", fins, short)
			}
			if len(runs[0]) < 100 {
				t.Fatalf("the plain engine sent %d segments, want a long transfer", len(runs[0]))
			}
			if chunks == 0 || bigChunk < 10 {
				t.Fatalf("SegmentOffload queued %d chunks, the largest of %d segments: want chunks of many", chunks, bigChunk)
			}
			for m := 1; m < len(runs); m++ {
				for j := range min(len(books[0]), len(books[m])) {
					if books[0][j] != books[m][j] {
						t.Fatalf("mode %d: the sender's books after round %d differ:\n plain %s\n mode  %s", m, j, books[0][j], books[m][j])
					}
				}
				for j := range min(len(runs[0]), len(runs[m])) {
					if !bytes.Equal(runs[0][j], runs[m][j]) {
						t.Fatalf("mode %d: segment %d differs:\n plain %s\n cut   %s", m, j, describe(runs[0][j]), describe(runs[m][j]))
					}
				}
				if len(runs[0]) != len(runs[m]) {
					t.Fatalf("mode %d: cut chunks give %d segments, the plain engine sent %d", m, len(runs[m]), len(runs[0]))
				}
			}
		})
	}
}

// senderBooks describes what the sender keeps per segment sent and per
// transmission pass: the retransmission queue's records, the delivery
// queue, the counters, the flight and the timers.
func senderBooks(c *Conn) string {
	var b strings.Builder
	q := &c.txq
	for _, r := range q.recs[q.head:] {
		fmt.Fprintf(&b, "[%d,%d)@%d/%x/%d ", r.start, r.end, r.sentAt, r.flags, r.sendNo)
	}
	for i := int32(0); i < c.sent.n; i++ {
		s := c.sent.ring[(int(c.sent.head)+int(i))%len(c.sent.ring)]
		fmt.Fprintf(&b, "<%d@%d ", s.end, s.sentAt)
	}
	fmt.Fprintf(&b, "out %d/%d/%d data %d bytes %d nxt %d max %d sml %d flight %d..%d rtt %v %d@%d rto %d tlp %d persist %d last %d/%d",
		c.info.SegsOut, c.e.stats.SegsOut, q.sends, c.dataSegsOut, c.bytesSent, c.sndNxt, c.sndMax, c.sndSml,
		c.maxFlight, c.flightRoundEnd, c.rttTiming, c.rttSeq, c.rttTime, c.rtoAt, c.tlpAt, c.persistAt, c.lastSend, c.lastDataOut)
	return b.String()
}

func describe(s []byte) string {
	tcp := wire.TCP(s)
	return fmt.Sprintf("seq %d ack %d flags %#x len %d", tcp.Seq(), tcp.Ack(), tcp.Flags(), len(s)-tcp.DataOffset())
}

// SegmentOffload without ChecksumOffload is refused: the chunks' checksums
// are finished by the link that cuts them.
func TestSegmentOffloadNeedsChecksumOffload(t *testing.T) {
	if _, err := NewEngine(Config{Profile: testProfile(), MTU: 1500, SegmentOffload: true}); err == nil {
		t.Fatal("NewEngine took SegmentOffload without ChecksumOffload")
	}
}
