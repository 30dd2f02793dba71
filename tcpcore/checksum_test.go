package tcpcore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"tunstack/wire"
)

// The engine verifies every inbound TCP checksum over the pseudo-header of
// the segment's family (RFC 9293 §3.1, RFC 8200 §8.1): a segment with a
// bad one is dropped and counted, and the listener never sees it. A
// segment whose addresses are of two families, or IPv4-mapped, has no
// pseudo-header to verify against and is dropped as an error.
func TestInboundChecksumVerifiedPerFamily(t *testing.T) {
	for _, f := range []family{ipv4, ipv6} {
		t.Run(f.String(), func(t *testing.T) {
			p := newPeerFamily(t, nil, f, 1500)
			if _, err := p.e.Listen(p.now, p.local, 16, SockOpts{}); err != nil {
				t.Fatal(err)
			}
			syn := tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn}.encode(p.remote, p.local)
			syn[16] ^= 0xff // corrupt the checksum
			p.e.Input(p.now, p.remote.Addr(), p.local.Addr(), syn)
			p.expectNone()
			if st := p.e.Stats(); st.InCsumErrors != 1 {
				t.Fatalf("InCsumErrors = %d, want 1", st.InCsumErrors)
			}

			good := tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn}.encode(p.remote, p.local)
			other := remoteIP6
			if f == ipv6 {
				other = remoteIP
			}
			p.e.Input(p.now, other, p.local.Addr(), good)
			mapped := netip.AddrFrom16(remoteIP.As16())
			p.e.Input(p.now, mapped, p.local.Addr(), good)
			p.expectNone()
			if st := p.e.Stats(); st.InErrs != 2 {
				t.Fatalf("InErrs = %d after segments from another family and from a mapped address, want 2", st.InErrs)
			}

			// The same SYN with its checksum intact is answered, in its family.
			p.e.Input(p.now, p.remote.Addr(), p.local.Addr(), good)
			if sa := p.next(); sa.flags != fSA || sa.ack != peerISN+1 || sa.src != p.local.Addr() || sa.dst != p.remote.Addr() {
				t.Fatalf("got %v from %v to %v, want a SYN-ACK for the intact SYN from %v to %v", sa, sa.src, sa.dst, p.local.Addr(), p.remote.Addr())
			}
		})
	}
}

// Connect takes two addresses of one family, or IPv4-mapped ones for
// IPv4: an IPv6 source toward an IPv4 peer cannot be.
func TestConnectFamiliesMustMatch(t *testing.T) {
	p := newPeer(t, nil)
	if _, err := p.e.Connect(p.now, netip.AddrPortFrom(localIP6, 0), remote, SockOpts{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Connect from IPv6 to IPv4 = %v, want EINVAL", err)
	}
	if _, err := p.e.Connect(p.now, netip.AddrPortFrom(localIP, 0), remote6, SockOpts{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Connect from IPv4 to IPv6 = %v, want EINVAL", err)
	}
	if _, err := p.e.Listen(p.now, netip.MustParseAddrPort("[fe80::1%eth0]:80"), 1, SockOpts{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Listen on a zoned address = %v, want EINVAL", err)
	}
}

// With Config.ChecksumOffload every outbound segment leaves its checksum
// partial: the field holds the pseudo-header sum over the segment's
// length, folded and not complemented, so that summing the segment from
// its TCP header (what a device or the kernel does for virtio's
// NEEDS_CSUM) gives the checksum; Packet.ChecksumPartial says so. Without
// it the checksum is complete. Over both families, for a SYN and for a
// data segment.
func TestChecksumOffloadLeavesThePseudoHeaderSum(t *testing.T) {
	for _, f := range []family{ipv4, ipv6} {
		t.Run(f.String(), func(t *testing.T) {
			for _, offload := range []bool{false, true} {
				e, err := NewEngine(Config{Profile: testProfile(), MTU: 1500, Secret: [32]byte{9}, ChecksumOffload: offload})
				if err != nil {
					t.Fatal(err)
				}
				l, r := f.addrs()
				c, err := e.Connect(Time(time.Second), netip.AddrPortFrom(l.Addr(), 0), r, SockOpts{})
				if err != nil {
					t.Fatal(err)
				}
				syn := e.Output(nil)
				if len(syn) != 1 {
					t.Fatalf("connect sent %d segments, want a SYN", len(syn))
				}
				sa := wire.TCP(syn[0].Segment())
				// A SYN-ACK, then data from the application.
				synAck := tseg{flags: fSA, seq: peerISN, ack: Seq(sa.Seq()) + 1, wnd: 65535, opts: plainSyn}.
					encode(r, netip.AddrPortFrom(l.Addr(), sa.SrcPort()))
				e.Input(Time(time.Second), r.Addr(), l.Addr(), synAck)
				c.Write(Time(time.Second), bytes.Repeat([]byte{'d'}, 1000))
				pkts := append(syn, e.Output(nil)...)
				if len(pkts) < 3 {
					t.Fatalf("got %d segments, want SYN, ACK and data", len(pkts))
				}
				for i, p := range pkts {
					seg := wire.TCP(p.Segment())
					if p.ChecksumPartial() != offload {
						t.Fatalf("segment %d: ChecksumPartial %v with ChecksumOffload %v", i, p.ChecksumPartial(), offload)
					}
					if !offload {
						if !seg.ChecksumValidAddr(p.Src, p.Dst) {
							t.Fatalf("segment %d: bad checksum without offload", i)
						}
						continue
					}
					want := ^wire.Fold(wire.PseudoHeaderSumAddr(p.Src, p.Dst, wire.ProtoTCP, len(seg)))
					if got := binary.BigEndian.Uint16(seg[16:]); got != want {
						t.Fatalf("segment %d: checksum field %#04x, want the pseudo-header sum %#04x", i, got, want)
					}
					// Finish it as the receiver of NEEDS_CSUM does.
					seg.SetChecksum(wire.Fold(wire.Checksum(seg, 0)))
					if !seg.ChecksumValidAddr(p.Src, p.Dst) {
						t.Fatalf("segment %d: the finished checksum is not valid", i)
					}
				}
				e.Release(pkts)
			}
		})
	}
}
