package tcpcore

import (
	"errors"
	"net/netip"
	"testing"
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
