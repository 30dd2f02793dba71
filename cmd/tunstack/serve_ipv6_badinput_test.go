package main

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tunstack/lab/netns"
	"tunstack/stack"
	"tunstack/wire"
)

// packetSocket is an AF_PACKET socket bound to a device in a namespace:
// what it sends reaches the device's transmit path byte for byte, so a
// TUN hands it to the stack as written, with lengths no IP layer checked
// or rewrote (a raw IPv6 socket would have the kernel fix the Payload
// Length).
type packetSocket struct {
	fd      int
	ifindex int
}

func openPacketSocket(t *testing.T, ns *netns.NS, dev string) *packetSocket {
	t.Helper()
	ps := &packetSocket{fd: -1}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		ps.ifindex = ifi.Index
		// SOCK_DGRAM: no link-layer header (a TUN has none); the protocol
		// is the packet's, in network byte order.
		ps.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IPV6)))
		return err
	})
	if err != nil {
		t.Fatalf("packet socket on %s: %v", dev, err)
	}
	t.Cleanup(func() { unix.Close(ps.fd) })
	return ps
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// nextSeqFrom reads packets the stack wrote to the TUN, which the packet
// socket sees arrive, until a TCP segment with data from server to client,
// and returns the sequence number after it: the stack's SND.NXT once it
// was sent. It gives up after 10 s.
func (ps *packetSocket) nextSeqFrom(t *testing.T, server, client netip.AddrPort) uint32 {
	t.Helper()
	tv := unix.Timeval{Sec: 1}
	if err := unix.SetsockoptTimeval(ps.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(ps.fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("reading the packet socket: %v", err)
		}
		ip := wire.IPv6(buf[:n])
		if ip.Valid() != nil || ip.NextHeader() != wire.ProtoTCP || ip.SrcAddr() != server.Addr() || ip.DstAddr() != client.Addr() {
			continue
		}
		seg := wire.TCP(ip.Payload())
		if seg.Valid() != nil || seg.SrcPort() != server.Port() || seg.DstPort() != client.Port() || len(seg) == seg.DataOffset() {
			continue
		}
		return seg.Seq() + uint32(len(seg)-seg.DataOffset())
	}
	t.Fatalf("no data segment from %s to %s in 10 s", server, client)
	return 0
}

func (ps *packetSocket) send(t *testing.T, name string, pkt []byte) {
	t.Helper()
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: ps.ifindex}
	if err := unix.Sendto(ps.fd, pkt, 0, to); err != nil {
		t.Fatalf("sending %s: %v", name, err)
	}
}

// ipv6Packet is a fixed header from src to dst with next header nh and the
// payload given; payloadLen is written as the Payload Length, whatever the
// payload's real length (-1: the real one).
func ipv6Packet(src, dst netip.Addr, nh uint8, payload []byte, payloadLen int) []byte {
	b := make([]byte, wire.IPv6HeaderLen+len(payload))
	if payloadLen < 0 {
		payloadLen = len(payload)
	}
	wire.PutIPv6Header(b, wire.IPv6Fields{Src: src.As16(), Dst: dst.As16(), NextHeader: nh, HopLimit: 64}, payloadLen)
	copy(b[wire.IPv6HeaderLen:], payload)
	return b
}

// tcpSegment6 is a 20-byte TCP header from src to dst with a good
// checksum over the IPv6 pseudo-header.
func tcpSegment6(src, dst netip.AddrPort, seq uint32, flags uint8) []byte {
	seg := make([]byte, wire.TCPHeaderLen)
	wire.PutTCPHeader(seg, wire.TCPFields{SrcPort: src.Port(), DstPort: dst.Port(), Seq: seq, Flags: flags, Window: 1000}, 0)
	wire.TCP(seg).ComputeChecksumAddr(src.Addr(), dst.Addr())
	return seg
}

// packetTooBig6 is a Packet Too Big from router to the stack, quoting a
// segment the stack sent from stack to peer with sequence number seq.
func packetTooBig6(t *testing.T, router netip.Addr, stack, peer netip.AddrPort, seq uint32) []byte {
	t.Helper()
	quoted := ipv6Packet(stack.Addr(), peer.Addr(), wire.ProtoTCP, tcpSegment6(stack, peer, seq, wire.FlagACK), -1)
	out := make([]byte, 1280)
	n, err := wire.PutICMPv6Error(out, wire.ICMPv6ErrorFields{Src: router.As16(), HopLimit: 64, Type: wire.ICMPv6PacketTooBig, Param: 1280}, wire.IPv6(quoted))
	if err != nil {
		t.Fatal(err)
	}
	return out[:n]
}

// TestServeDropsBadIPv6PacketsCountingEachAndKeepsConnections sends serve's
// stack, from a packet socket on the kernel's side of the TUN, IPv6
// packets that are malformed, lying or not ours: each is dropped under
// the nstat counter Linux would use, visible in the metrics, and an
// established IPv6 connection goes on working.
func TestServeDropsBadIPv6PacketsCountingEachAndKeepsConnections(t *testing.T) {
	netns.RequireRoot(t)
	s := startServe(t, "--metrics", "127.0.0.1:0")
	host, stackAddr := s.cfg.HostAddr6, s.cfg.StackAddr6

	// A live connection to the echo service over IPv6.
	var conn net.Conn
	echo := netip.AddrPortFrom(stackAddr, s.cfg.EchoPort)
	if err := s.ns.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp6", echo.String(), 10*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial %s: %v", echo, err)
	}
	defer conn.Close()
	roundTrip := func(when string) {
		t.Helper()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		msg := []byte("still here " + when)
		if _, err := conn.Write(msg); err != nil {
			t.Fatalf("echo write %s: %v", when, err)
		}
		got := make([]byte, len(msg))
		if _, err := readFull(conn, got); err != nil || string(got) != string(msg) {
			t.Fatalf("echo %s: read %q, %v; want %q", when, got, err, msg)
		}
	}
	client := netip.MustParseAddrPort(conn.LocalAddr().String())
	server := netip.MustParseAddrPort(conn.RemoteAddr().String())
	ps := openPacketSocket(t, s.ns, s.cfg.Dev)
	roundTrip("before")
	// The echo is acknowledged, so nothing is in flight: SND.UNA and
	// SND.NXT are both the end of the echo, and any other sequence number
	// is out of window.
	sndNxt := ps.nextSeqFrom(t, server, client)
	mss := s.serverMSS(t, server, client)

	_, before := s.scrape(t)

	tcpToUs := tcpSegment6(client, server, 1, wire.FlagACK)
	destOpts := func(next uint8) []byte { // an empty Destination Options header: PadN to 8 bytes
		return []byte{next, 0, 1, 4, 0, 0, 0, 0}
	}
	var chain []byte // more extension headers than anyone walks, each naming the next
	for range wire.IPv6MaxExtHeaders + 8 {
		chain = append(chain, destOpts(wire.ProtoDestOpts)...)
	}
	badSum := ipv6Packet(host, stackAddr, wire.ProtoICMPv6, []byte{128, 0, 0x12, 0x34, 0, 1, 0, 1}, -1) // an echo request with a wrong checksum
	sends := []struct {
		name string
		pkt  []byte
	}{
		{"a 20-byte IPv6 header", ipv6Packet(host, stackAddr, wire.ProtoTCP, nil, 0)[:20]},
		{"a Payload Length 100 bytes past the packet", ipv6Packet(host, stackAddr, wire.ProtoTCP, tcpToUs, len(tcpToUs)+100)},
		{"a hop-by-hop header longer than the packet", ipv6Packet(host, stackAddr, 0, []byte{wire.ProtoTCP, 10, 1, 4, 0, 0, 0, 0}, -1)},
		{"a chain of destination options that never ends", ipv6Packet(host, stackAddr, wire.ProtoDestOpts, chain, -1)},
		{"an unknown next header", ipv6Packet(host, stackAddr, 253, make([]byte, 8), -1)},
		{"TCP for another address", ipv6Packet(host, netip.MustParseAddr("fd00:7475:6e73::99"), wire.ProtoTCP, tcpToUs, -1)},
		{"an ICMPv6 echo request with a bad checksum", badSum},
		{"a Packet Too Big quoting a connection the stack does not have", packetTooBig6(t, host, server, netip.AddrPortFrom(client.Addr(), client.Port()+1), sndNxt)},
		{"a Packet Too Big quoting our connection at a sequence number not in flight", packetTooBig6(t, host, server, client, sndNxt+1<<30)},
	}
	for _, p := range sends {
		ps.send(t, p.name, p.pkt)
	}

	// Each counter moves by exactly what was sent; the kernel's own MLD
	// reports and router solicitations may add ICMPv6 messages in.
	want := map[string]float64{
		"tunstack_ip6_in_hdr_errors_total":          3, // short header, hop-by-hop past the end, endless chain
		"tunstack_ip6_in_truncated_pkts_total":      1,
		"tunstack_ip6_in_unknown_protos_total":      1,
		"tunstack_ip6_in_addr_errors_total":         1,
		"tunstack_icmp6_in_errors_total":            2, // the bad checksum, the Packet Too Big for no connection
		"tunstack_tcpext_out_of_window_icmps_total": 1,
		"tunstack_icmp6_out_msgs_total":             1, // the Parameter Problem about the unknown next header
	}
	atLeast := map[string]float64{
		"tunstack_icmp6_in_msgs_total":   3,
		"tunstack_ip6_in_receives_total": float64(len(sends)),
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, after := s.scrape(t)
		var missing []string
		for name, w := range want {
			if d := value(t, after, name) - value(t, before, name); d != w {
				missing = append(missing, fmt.Sprintf("%s rose by %v, want %v", name, d, w))
			}
		}
		for name, w := range atLeast {
			if d := value(t, after, name) - value(t, before, name); d < w {
				missing = append(missing, fmt.Sprintf("%s rose by %v, want at least %v", name, d, w))
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, m := range missing {
				t.Error(m)
			}
			break
		}
		time.Sleep(50 * time.Millisecond) // between scrapes: the counters are read, not waited on
	}
	if now := s.serverMSS(t, server, client); now != mss {
		t.Errorf("the connection's MSS went from %d to %d: a Packet Too Big out of window was taken", mss, now)
	}
	roundTrip("after")
}

// serverMSS is the MSS the stack sends with on its connection
// local-remote.
func (s *served) serverMSS(t *testing.T, local, remote netip.AddrPort) uint32 {
	t.Helper()
	in, ok := s.sess.network.(stack.Inspector)
	if !ok {
		t.Fatal("serve's stack cannot list its sockets")
	}
	for _, so := range in.Sockets() {
		if so.Local == local && so.Remote == remote && so.TCPInfo != nil {
			return so.TCPInfo.SndMSS
		}
	}
	t.Fatalf("the stack has no connection %s-%s", local, remote)
	return 0
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
