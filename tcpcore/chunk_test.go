package tcpcore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
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
// PSH where the send queue empties, and a FIN. Over both families.
func TestSegmentOffloadCutsBackToTheSameSegments(t *testing.T) {
	for _, f := range []family{ipv4, ipv6} {
		t.Run(f.String(), func(t *testing.T) {
			var runs [2][][]byte
			var chunks, bigChunk int
			for i, gso := range []bool{false, true} {
				e, err := NewEngine(Config{Profile: testProfile(), MTU: 1500, Secret: [32]byte{9}, ChecksumOffload: true, SegmentOffload: gso})
				if err != nil {
					t.Fatal(err)
				}
				now := Time(time.Second)
				l, r := f.addrs()
				c, err := e.Connect(now, netip.AddrPortFrom(l.Addr(), 0), r, SockOpts{})
				if err != nil {
					t.Fatal(err)
				}
				collect := func() []*Packet {
					pkts := e.Output(nil)
					for _, p := range pkts {
						if p.SegmentSize() != 0 {
							chunks++
							bigChunk = max(bigChunk, p.Segments())
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
				for round := 0; round < 12; round++ {
					if written < len(data) {
						n, _ := c.Write(now, data[written:])
						written += n
					}
					if written == len(data) && round == 9 {
						c.Close(now)
					}
					pkts := collect()
					var top Seq
					sent := false
					for _, p := range pkts {
						s := wire.TCP(p.Segment())
						end := Seq(s.Seq()).Add(len(s) - s.DataOffset())
						if s.Flags()&wire.FlagFIN != 0 {
							end = end.Add(1)
						}
						if !sent || end.GT(top) {
							top, sent = end, true
						}
					}
					e.Release(pkts)
					if !sent {
						continue
					}
					if round == 5 {
						wnd = uint16((c.sndNxt.Sub(top) + 30_000 + 700) >> 7)
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
			t.Logf("%d segments, %d chunks, the largest of %d segments; %d FIN, %d short", len(runs[0]), chunks, bigChunk, fins, short)
			if fins != 1 || short == 0 {
				t.Fatalf("the transfer had %d FIN and %d short segments: want a FIN and a window that cuts a segment short", fins, short)
			}
			if len(runs[0]) < 100 {
				t.Fatalf("the plain engine sent %d segments, want a long transfer", len(runs[0]))
			}
			if chunks == 0 || bigChunk < 10 {
				t.Fatalf("SegmentOffload queued %d chunks, the largest of %d segments: want chunks of many", chunks, bigChunk)
			}
			if len(runs[0]) != len(runs[1]) {
				t.Fatalf("cut chunks give %d segments, the plain engine sent %d", len(runs[1]), len(runs[0]))
			}
			for j := range runs[0] {
				if !bytes.Equal(runs[0][j], runs[1][j]) {
					t.Fatalf("segment %d differs:\n plain %s\n cut   %s", j, describe(runs[0][j]), describe(runs[1][j]))
				}
			}
		})
	}
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
