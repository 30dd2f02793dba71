package lab

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Packet is one TCP segment between a client and the server, as the
// capture on the server's side of the wire saw it. Sequence and
// acknowledgment numbers are relative to the sender's and receiver's ISNs,
// as tcpdump and Wireshark show them, so a SYN-ACK is seq 0 ack 1.
type Packet struct {
	At         time.Duration // capture time since the experiment started
	Client     int           // client number, 0 if the port belongs to none
	ClientPort uint16
	ToServer   bool
	SYN, ACK   bool
	FIN, RST   bool
	PSH        bool
	Seq, Ack   uint32 // relative
	Len        int    // payload bytes
	// Retrans counts earlier sends of the same thing by the same side: the
	// n-th retransmission of a SYN, SYN-ACK or data has Retrans n.
	Retrans int
	// DupAck marks a pure ACK repeating the previous pure ACK's number.
	DupAck bool
	// Window is the advertised receive window in bytes: the header's field
	// shifted by the sender's window-scale factor once both SYNs agreed
	// to scaling (RFC 7323 §2.2; a SYN's window is never scaled).
	Window int
}

// Flags returns tcpdump's flag notation: [S], [S.], [.], [P.], [R], [R.], [F.].
func (p *Packet) Flags() string {
	var b strings.Builder
	b.WriteByte('[')
	for _, f := range []struct {
		on bool
		c  byte
	}{{p.SYN, 'S'}, {p.FIN, 'F'}, {p.PSH, 'P'}, {p.RST, 'R'}, {p.ACK, '.'}} {
		if f.on {
			b.WriteByte(f.c)
		}
	}
	b.WriteByte(']')
	return b.String()
}

// Kind names the segment the way the experiments talk about it.
func (p *Packet) Kind() string {
	switch {
	case p.SYN && p.ACK:
		return "SYN-ACK"
	case p.SYN:
		return "SYN"
	case p.RST:
		return "RST"
	case p.FIN:
		return "FIN"
	case p.Len > 0:
		return "data"
	}
	return "ACK"
}

// String is the packet's timeline line.
func (p *Packet) String() string {
	dir := fmt.Sprintf("server -> client %d", p.Client)
	if p.ToServer {
		dir = fmt.Sprintf("client %d -> server", p.Client)
	}
	if p.Client == 0 {
		dir = strings.Replace(dir, "client 0", fmt.Sprintf("port %d", p.ClientPort), 1)
	}
	s := fmt.Sprintf("%-20s %-5s %s", dir, p.Flags(), p.Kind())
	if p.Len > 0 {
		s += fmt.Sprintf(" seq %d:%d", p.Seq, p.Seq+uint32(p.Len))
	}
	switch {
	case p.Retrans > 0:
		s += fmt.Sprintf("  (retransmission %d)", p.Retrans)
	case p.DupAck:
		s += "  (duplicate ACK)"
	}
	return s
}

// Capture is the decoded capture of one experiment: the TCP segments of
// the server's port, in capture order.
type Capture struct {
	Packets []Packet
}

// flowKey names one direction of one client's connection.
type flowKey struct {
	port     uint16
	toServer bool
}

// flowState is what retransmission detection remembers per direction.
type flowState struct {
	isn     uint32 // sender's ISN (from its SYN)
	hasISN  bool
	peerISN uint32 // receiver's ISN, for relative ACK numbers
	hasPeer bool
	synSent int    // SYNs (or SYN-ACKs) sent so far
	sndMax  uint32 // highest relative sequence sent, past the payload
	lastAck uint32 // ack of the last pure ACK
	hadAck  bool
	wscale  int            // the window-scale shift of this side's SYN, -1 without the option
	sent    map[uint32]int // data segments sent per relative seq
}

// parseCapture decodes a pcap (LINKTYPE_RAW, as netif.PcapTap writes)
// and keeps the TCP segments between server and any client port. ports
// maps client ports to client numbers; start is the experiment's start.
func parseCapture(r io.Reader, server netip.AddrPort, ports map[uint16]int, start time.Time) (*Capture, error) {
	rd, err := pcapgo.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("lab: read capture: %w", err)
	}
	flows := map[flowKey]*flowState{}
	flow := func(k flowKey) *flowState {
		f := flows[k]
		if f == nil {
			f = &flowState{sent: map[uint32]int{}, wscale: -1}
			flows[k] = f
		}
		return f
	}
	c := &Capture{}
	for {
		data, ci, err := rd.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			// A capture cut short by the stack closing mid-write still
			// yields what came before.
			break
		}
		// LINKTYPE_RAW holds both families: the version says which.
		first := layers.LayerTypeIPv4
		if len(data) > 0 && data[0]>>4 == 6 {
			first = layers.LayerTypeIPv6
		}
		pkt := gopacket.NewPacket(data, first, gopacket.NoCopy)
		nl := pkt.NetworkLayer()
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if nl == nil || tcp == nil {
			continue
		}
		src, _ := netip.AddrFromSlice(nl.NetworkFlow().Src().Raw())
		dst, _ := netip.AddrFromSlice(nl.NetworkFlow().Dst().Raw())
		p := Packet{
			At:  ci.Timestamp.Sub(start),
			SYN: tcp.SYN, ACK: tcp.ACK, FIN: tcp.FIN, RST: tcp.RST, PSH: tcp.PSH,
			Len: len(tcp.Payload),
		}
		switch {
		case dst == server.Addr() && uint16(tcp.DstPort) == server.Port():
			p.ToServer, p.ClientPort = true, uint16(tcp.SrcPort)
		case src == server.Addr() && uint16(tcp.SrcPort) == server.Port():
			p.ClientPort = uint16(tcp.DstPort)
		default:
			continue
		}
		p.Client = ports[p.ClientPort]
		me := flow(flowKey{p.ClientPort, p.ToServer})
		peer := flow(flowKey{p.ClientPort, !p.ToServer})
		if p.SYN && !me.hasISN {
			me.isn, me.hasISN = tcp.Seq, true
			peer.peerISN, peer.hasPeer = tcp.Seq, true
		}
		p.Seq = tcp.Seq - me.isn
		if p.ACK && me.hasPeer {
			p.Ack = tcp.Ack - me.peerISN
		} else {
			p.Ack = tcp.Ack
		}
		if p.SYN {
			me.wscale = -1
			for _, o := range tcp.Options {
				if o.OptionType == layers.TCPOptionKindWindowScale && len(o.OptionData) == 1 {
					me.wscale = int(min(o.OptionData[0], 14))
				}
			}
		}
		p.Window = int(tcp.Window)
		if !p.SYN && me.wscale > 0 && peer.wscale >= 0 {
			p.Window <<= me.wscale
		}
		classify(&p, me)
		c.Packets = append(c.Packets, p)
	}
	return c, nil
}

// classify marks retransmissions and duplicate ACKs: a SYN or SYN-ACK is a
// retransmission if its side sent one before; data is one if it starts
// below the highest sequence sent; a pure ACK is a duplicate if it repeats
// the previous pure ACK of its side.
func classify(p *Packet, f *flowState) {
	switch {
	case p.RST:
	case p.SYN:
		p.Retrans = f.synSent
		f.synSent++
		f.sndMax = 1
	case p.Len > 0:
		end := p.Seq + uint32(p.Len)
		if int32(p.Seq-f.sndMax) < 0 {
			f.sent[p.Seq]++
			p.Retrans = f.sent[p.Seq]
		}
		if int32(end-f.sndMax) > 0 {
			f.sndMax = end
		}
	case p.FIN:
		if int32(p.Seq-f.sndMax) < 0 {
			f.sent[p.Seq]++
			p.Retrans = f.sent[p.Seq]
		} else {
			f.sndMax = p.Seq + 1
		}
	case p.ACK:
		p.DupAck = f.hadAck && p.Ack == f.lastAck
		f.lastAck, f.hadAck = p.Ack, true
	}
}

// ForClient returns the packets of one client's connection.
func (c *Capture) ForClient(n int) []Packet {
	var out []Packet
	for _, p := range c.Packets {
		if p.Client == n {
			out = append(out, p)
		}
	}
	return out
}

// Times returns when the packets of client n matching keep were captured.
func (c *Capture) Times(n int, keep func(*Packet) bool) []time.Duration {
	var out []time.Duration
	for i := range c.Packets {
		if p := &c.Packets[i]; p.Client == n && keep(p) {
			out = append(out, p.At)
		}
	}
	return out
}

// SynAckTimes is when the server sent client n a SYN-ACK, first one first.
func (c *Capture) SynAckTimes(n int) []time.Duration {
	return c.Times(n, func(p *Packet) bool { return !p.ToServer && p.SYN && p.ACK })
}

// SynAckRetransmissions counts the server's retransmitted SYN-ACKs.
func (c *Capture) SynAckRetransmissions() int {
	n := 0
	for _, p := range c.Packets {
		if !p.ToServer && p.SYN && p.ACK && p.Retrans > 0 {
			n++
		}
	}
	return n
}
