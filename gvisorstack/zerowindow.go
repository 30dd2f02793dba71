package gvisorstack

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// maxZeroWindowConns caps how many connections the zero-window ACK repair
// tracks at once. Only connections whose last advertised window was zero
// are tracked; beyond the cap an arbitrary one is forgotten, which only
// costs that connection the repair until gVisor advertises zero again.
const maxZeroWindowConns = 1024

// zwKey names a TCP connection from gVisor's side: its own address and
// port, then the peer's.
type zwKey struct {
	laddr, raddr [4]byte
	lport, rport uint16
}

// zwConn is a connection whose last segment from gVisor advertised a zero
// window.
type zwConn struct {
	// ack is the acknowledgment number of that segment: gVisor's RCV.NXT,
	// the only sequence number it accepts while its window is zero.
	ack uint32
	// shown is set once an ACK (ackShown, wndShown) of the peer has reached
	// gVisor in a form it processes at this ack: a pure ACK at RCV.NXT,
	// sent by the peer or made by the repair.
	shown    bool
	ackShown uint32
	wndShown uint16
}

// zeroWindowRepair works around gVisor's zero-window ACK deadlock
// (docs/gvisor.md, "Zero-window ACK deadlock"). While gVisor's receive
// window is zero, its receiver drops every segment that carries data or
// whose sequence number is not RCV.NXT before its sender sees the
// segment's ACK field, and because gVisor rounds its window down, a peer
// that filled the window it was offered has SND.NXT beyond RCV.NXT, so
// all its segments are such segments. RFC 9293 3.10.7.4: "If the RCV.WND
// is zero, no segments will be acceptable, but special allowance should
// be made to accept valid ACKs, URGs, and RSTs." The repair gives that
// allowance from outside: it watches the window and acknowledgment number
// in gVisor's outbound segments, and when an inbound segment of a
// connection at a zero window is one gVisor would refuse, it hands gVisor
// first a pure ACK copy of it at sequence number RCV.NXT, the one form
// gVisor accepts at a zero window, then the segment itself.
//
// Cost when no connection is at a zero window: parsing the IPv4 and TCP
// headers of each outbound packet, and one atomic load per inbound packet;
// no lock, no allocation.
type zeroWindowRepair struct {
	mu    sync.Mutex
	conns map[zwKey]zwConn
	// n is len(conns), read without mu on the fast paths.
	n atomic.Int32
	// repairs counts the ACK copies handed to gVisor.
	repairs atomic.Uint64
}

func newZeroWindowRepair() *zeroWindowRepair {
	return &zeroWindowRepair{conns: make(map[zwKey]zwConn)}
}

// tcpOf returns the IPv4 header and TCP segment of pkt if it is an IPv4
// packet carrying a whole (unfragmented) TCP segment with consistent
// lengths. The repair reads IPv4 only: IPv6 segments pass it unchanged.
func tcpOf(pkt []byte) (header.IPv4, header.TCP, bool) {
	if len(pkt) < header.IPv4MinimumSize || header.IPVersion(pkt) != header.IPv4Version {
		return nil, nil, false
	}
	ip := header.IPv4(pkt)
	ihl := int(ip.HeaderLength())
	total := int(ip.TotalLength())
	if ip.TransportProtocol() != header.TCPProtocolNumber || ihl < header.IPv4MinimumSize ||
		total > len(pkt) || total < ihl+header.TCPMinimumSize ||
		ip.FragmentOffset() != 0 || ip.More() {
		return nil, nil, false
	}
	tcp := header.TCP(pkt[ihl:total])
	off := int(tcp.DataOffset())
	if off < header.TCPMinimumSize || off > len(tcp) {
		return nil, nil, false
	}
	return ip[:ihl], tcp, true
}

// outbound records the window and acknowledgment number of pkt, a packet
// gVisor sends.
func (z *zeroWindowRepair) outbound(pkt []byte) {
	ip, tcp, ok := tcpOf(pkt)
	if !ok {
		return
	}
	flags := tcp.Flags()
	zero := tcp.WindowSize() == 0 &&
		flags&(header.TCPFlagAck|header.TCPFlagSyn|header.TCPFlagRst) == header.TCPFlagAck
	if !zero && z.n.Load() == 0 {
		return // the fast path: nothing to forget
	}
	k := zwKey{laddr: ip.SourceAddress().As4(), raddr: ip.DestinationAddress().As4(),
		lport: tcp.SourcePort(), rport: tcp.DestinationPort()}
	z.mu.Lock()
	defer z.mu.Unlock()
	if !zero {
		// An open window (gVisor accepts the peer's segments again), a
		// RST (the connection is over), or a SYN (a new connection).
		z.forgetLocked(k)
		return
	}
	c, found := z.conns[k]
	if found && c.ack == tcp.AckNumber() {
		return // still at zero, at the same RCV.NXT
	}
	if !found && len(z.conns) >= maxZeroWindowConns {
		for old := range z.conns {
			delete(z.conns, old)
			break
		}
	}
	z.conns[k] = zwConn{ack: tcp.AckNumber()}
	z.n.Store(int32(len(z.conns)))
}

func (z *zeroWindowRepair) forgetLocked(k zwKey) {
	if _, ok := z.conns[k]; ok {
		delete(z.conns, k)
		z.n.Store(int32(len(z.conns)))
	}
}

// inbound decides for pkt, an IPv4 packet for gVisor, whether gVisor must
// see a pure ACK copy of it first. If so it builds the copy in scratch
// (at least len(pkt) bytes) and returns it; otherwise it returns nil.
func (z *zeroWindowRepair) inbound(pkt, scratch []byte) []byte {
	if z.n.Load() == 0 {
		return nil // the fast path: no connection at a zero window
	}
	ip, tcp, ok := tcpOf(pkt)
	if !ok {
		return nil
	}
	k := zwKey{laddr: ip.DestinationAddress().As4(), raddr: ip.SourceAddress().As4(),
		lport: tcp.DestinationPort(), rport: tcp.SourcePort()}
	flags := tcp.Flags()
	z.mu.Lock()
	defer z.mu.Unlock()
	c, found := z.conns[k]
	if !found {
		return nil
	}
	if flags&header.TCPFlagRst != 0 {
		z.forgetLocked(k)
		return nil
	}
	if flags&header.TCPFlagSyn != 0 || flags&header.TCPFlagAck == 0 {
		return nil
	}
	if flags&header.TCPFlagFin != 0 {
		// The FIN's ACK is repaired below; the connection is then
		// forgotten. If gVisor refuses the FIN it answers with an ACK
		// advertising its zero window, which tracks the connection again.
		defer z.forgetLocked(k)
	}
	ack, wnd := tcp.AckNumber(), tcp.WindowSize()
	dataLen := len(tcp) - int(tcp.DataOffset())
	if dataLen == 0 && flags&header.TCPFlagFin == 0 && tcp.SequenceNumber() == c.ack {
		// A pure ACK at RCV.NXT: gVisor accepts it at a zero window and
		// processes its ACK itself.
		c.shown, c.ackShown, c.wndShown = true, ack, wnd
		z.conns[k] = c
		return nil
	}
	sack := hasSACK(tcp.Options())
	if c.shown && c.ackShown == ack && c.wndShown == wnd && !sack {
		// gVisor's sender has already been shown this acknowledgment and
		// window; another copy would count as a duplicate ACK (RFC 5681
		// section 2), which the segment itself, carrying data, would not.
		return nil
	}
	c.shown, c.ackShown, c.wndShown = true, ack, wnd
	z.conns[k] = c
	z.repairs.Add(1)
	return pureACK(ip, tcp, c.ack, scratch)
}

// hasSACK reports whether TCP options opts hold a SACK option (RFC 2018).
// With SACK permitted gVisor counts an ACK as a duplicate only if it
// brings new SACK information, so a copy that carries SACK blocks is
// always worth handing over.
func hasSACK(opts []byte) bool {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case header.TCPOptionEOL:
			return false
		case header.TCPOptionNOP:
			i++
			continue
		case header.TCPOptionSACK:
			return true
		}
		if i+1 >= len(opts) || opts[i+1] < 2 {
			return false
		}
		i += int(opts[i+1])
	}
	return false
}

// pureACK writes into scratch a copy of the segment (ip, tcp) without data,
// FIN, PSH or URG, with sequence number seq, and returns it. The
// acknowledgment number, window and options (timestamps, SACK blocks) are
// the segment's.
func pureACK(ip header.IPv4, tcp header.TCP, seq uint32, scratch []byte) []byte {
	hl := int(tcp.DataOffset())
	n := len(ip) + hl
	out := scratch[:n]
	copy(out, ip)
	copy(out[len(ip):], tcp[:hl])
	oip := header.IPv4(out)
	oip.SetTotalLength(uint16(n))
	oip.SetChecksum(0)
	oip.SetChecksum(^oip.CalculateChecksum())
	otcp := header.TCP(out[len(ip):])
	otcp.SetSequenceNumber(seq)
	otcp.SetFlags(uint8(header.TCPFlagAck))
	otcp.SetUrgentPointer(0)
	otcp.SetChecksum(0)
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, oip.SourceAddress(), oip.DestinationAddress(), uint16(hl))
	otcp.SetChecksum(^checksum.Checksum(otcp, xsum))
	return out
}
