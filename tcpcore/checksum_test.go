package tcpcore

import (
	"errors"
	"net/netip"
	"testing"
)

// The engine verifies every inbound TCP checksum over the IPv4
// pseudo-header: a segment with a bad one is dropped and counted, and the
// listener never sees it. A segment between non-IPv4 addresses cannot be
// verified by an IPv4-only engine and is dropped as an error, as are
// Listen and Connect on such addresses.
func TestInboundChecksumVerifiedAndIPv4Only(t *testing.T) {
	p := newPeer(t, nil)
	if _, err := p.e.Listen(p.now, local, 16, SockOpts{}); err != nil {
		t.Fatal(err)
	}
	syn := tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn}.encode(remote, local)
	syn[16] ^= 0xff // corrupt the checksum
	p.e.Input(p.now, remoteIP, localIP, syn)
	p.expectNone()
	if st := p.e.Stats(); st.InCsumErrors != 1 {
		t.Fatalf("InCsumErrors = %d, want 1", st.InCsumErrors)
	}

	v6 := netip.MustParseAddr("2001:db8::1")
	good := tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn}.encode(remote, local)
	p.e.Input(p.now, v6, localIP, good)
	p.expectNone()
	if st := p.e.Stats(); st.InErrs != 1 {
		t.Fatalf("InErrs = %d after a segment from an IPv6 address, want 1", st.InErrs)
	}
	if _, err := p.e.Listen(p.now, netip.AddrPortFrom(v6, 80), 1, SockOpts{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Listen on IPv6 = %v, want EINVAL", err)
	}
	if _, err := p.e.Connect(p.now, netip.AddrPortFrom(v6, 0), netip.AddrPortFrom(v6, 80), SockOpts{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Connect over IPv6 = %v, want EINVAL", err)
	}

	// The same SYN with its checksum intact is answered.
	p.e.Input(p.now, remoteIP, localIP, good)
	if sa := p.next(); sa.flags != fSA || sa.ack != peerISN+1 {
		t.Fatalf("got %v, want a SYN-ACK for the intact SYN", sa)
	}
}
