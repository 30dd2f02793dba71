package viz

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Capture is a pcap (or pcapng) file read into TCP connections, each split
// into its two directions, in the relative sequence numbers tcptrace and
// Wireshark show.
type Capture struct {
	Start    time.Time // the first record's timestamp; every T is seconds since it
	End      float64   // the last record's T
	LinkType layers.LinkType
	Records  int // records read
	NonTCP   int // records that were not TCP over IPv4 or IPv6
	// Truncated is set when the file ends inside a record: everything
	// before that record was read.
	Truncated error
	Conns     []*Conn // in the order of their first packet
}

// Conn is one TCP connection. Local is the side that received the first
// SYN (the listener, which is the stack in `tunstack serve`'s captures);
// without a SYN, the destination of the connection's first packet.
type Conn struct {
	Local, Remote netip.AddrPort
	// Out is Local's data to Remote, In Remote's data to Local.
	Out, In *Flow
}

// Flow is one direction of a connection: the segments its sender sent and
// what the receiver acknowledged, SACKed and offered, all in the sender's
// sequence space.
type Flow struct {
	Src, Dst netip.AddrPort
	// SYN says the sender's SYN was seen: sequence numbers count from its
	// ISN (the SYN is 0, the first data byte 1). Without it they count from
	// the first number seen in this direction, as Wireshark does.
	SYN bool
	// WScale is the window-scale shift from the sender's SYN, -1 if the SYN
	// had no such option or was not seen.
	WScale int

	Segments []Segment // those that take sequence space, probes and resets; not pure ACKs
	Acks     []Ack     // the receiver's cumulative ACKs and windows
	SACKs    []Block   // the receiver's SACK blocks (D-SACKs marked)
	// Resets are the receiver's RSTs, placed at the sequence number they
	// acknowledge (or, without ACK, the highest one sent).
	Resets []Ack

	Bytes           int64 // payload bytes sent, retransmissions included
	Retransmissions int
	Probes          int

	// Analysis state.
	isn      uint32 // raw sequence number that is relative 0
	last     uint32 // raw: the last sequence number the sender sent
	lastRel  int64  // last, relative and unwrapped
	based    bool   // isn is set
	sndMax   int64  // relative: the highest sequence sent, past its segment
	sent     bool   // the sender has sent something that takes sequence space
	rcvWnd   int64  // the receiver's latest window in bytes, -1 unknown
	rcvAck   int64  // the receiver's latest cumulative ACK, relative
	rcvAcked bool
}

// Segment is one packet the sender sent, placed in its sequence space.
type Segment struct {
	T   float64 // seconds since Capture.Start
	Seq int64   // relative sequence number of its first byte (of the SYN, if it is one)
	Len int     // payload bytes
	// SYN, FIN and RST flags; a SYN and a FIN each take one sequence number.
	SYN, FIN, RST bool
	// Retransmission: the segment takes sequence space and starts below the
	// highest sequence this side had already sent (the rule that a capture
	// alone can apply, whatever the sender's reason to resend).
	Retransmission bool
	// Probe: a zero-window probe, sent while the receiver's latest window
	// was zero: either new data (RFC 9293 §3.8.6.1) or, as Linux's
	// tcp_xmit_probe_skb sends it, no data at SND.UNA-1, which the
	// receiver must answer with an ACK.
	Probe bool
}

// End is the relative sequence number after the segment.
func (s Segment) End() int64 {
	e := s.Seq + int64(s.Len)
	if s.SYN {
		e++
	}
	if s.FIN {
		e++
	}
	return e
}

// Ack is the receiver's cumulative ACK and the window it offered, at one
// instant: what it acknowledged of the flow and the right edge it allows.
type Ack struct {
	T      float64
	Ack    int64 // relative, in the flow's sequence space
	Window int64 // bytes (the header's field shifted by the receiver's scale); -1 if the packet had no ACK of this flow
}

// Block is one SACK block the receiver sent, in the flow's sequence space.
type Block struct {
	T           float64
	Left, Right int64
	// DSACK: RFC 2883 §4, the first block reports data received twice: it
	// lies at or below the cumulative ACK, or inside the second block.
	DSACK bool
}

// Data is the payload bytes both directions carried.
func (c *Conn) Data() int64 { return c.Out.Bytes + c.In.Bytes }

// Name is the connection as --conn takes it: LOCAL-REMOTE.
func (c *Conn) Name() string { return c.Local.String() + "-" + c.Remote.String() }

// Flows returns the directions worth a graph: the one that carried more
// data, and the other too if it carried a tenth as much or more (a
// request of a few bytes before a download is not); a connection that
// carried none (a handshake, a reset) gives Local's flow, whose SYN-ACKs
// and their retransmissions are then the picture.
func (c *Conn) Flows() []*Flow {
	big, small := c.Out, c.In
	if small.Bytes > big.Bytes {
		big, small = small, big
	}
	switch {
	case big.Bytes == 0:
		return []*Flow{c.Out}
	case small.Bytes*10 >= big.Bytes:
		return []*Flow{big, small}
	}
	return []*Flow{big}
}

// ErrNotPcap is returned by ReadCapture for a file that is neither a pcap
// nor a pcapng capture.
var ErrNotPcap = errors.New("not a pcap or pcapng capture")

// pcapng's section header block type, the file's first four bytes.
const pcapngMagic = 0x0A0D0D0A

// packetSource is what pcapgo's two readers have in common.
type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// ReadCapture reads a pcap or pcapng capture: LINKTYPE_RAW as netif.PcapTap
// writes, tcpdump's or tshark's on a TUN (raw IP, Linux cooked) or an
// Ethernet link. A file that ends inside a record gives what came before
// it, with Truncated set; only a file that is not a capture at all is an
// error (ErrNotPcap).
func ReadCapture(r io.Reader) (*Capture, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("%w: the file is %d bytes long", ErrNotPcap, len(magic))
	}
	var src packetSource
	linkOf := func(gopacket.CaptureInfo) layers.LinkType { return 0 }
	c := &Capture{}
	if binary.LittleEndian.Uint32(magic) == pcapngMagic {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotPcap, err)
		}
		src, c.LinkType = ng, ng.LinkType()
		linkOf = func(ci gopacket.CaptureInfo) layers.LinkType {
			if in, err := ng.Interface(ci.InterfaceIndex); err == nil {
				return in.LinkType
			}
			return ng.LinkType()
		}
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotPcap, err)
		}
		src, c.LinkType = pr, pr.LinkType()
		linkOf = func(gopacket.CaptureInfo) layers.LinkType { return pr.LinkType() }
	}
	a := newAnalyzer(c)
	for {
		data, ci, err := src.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			c.Truncated = fmt.Errorf("the capture ends inside record %d (%v); the %d records before it were read", c.Records+1, err, c.Records)
			break
		}
		c.Records++
		if c.Records == 1 {
			c.Start = ci.Timestamp
		}
		c.End = max(c.End, ci.Timestamp.Sub(c.Start).Seconds())
		if !a.packet(data, linkOf(ci), ci.Timestamp) {
			c.NonTCP++
		}
	}
	return c, nil
}

// ConnByName finds the connection --conn names, LOCAL-REMOTE, in either
// order of its two ends.
func (c *Capture) ConnByName(name string) *Conn {
	for _, cn := range c.Conns {
		if cn.Name() == name || cn.Remote.String()+"-"+cn.Local.String() == name {
			return cn
		}
	}
	return nil
}

// Busiest is the connection that carried the most data (the first of
// equals), nil if there is no connection.
func (c *Capture) Busiest() *Conn {
	var best *Conn
	for _, cn := range c.Conns {
		if best == nil || cn.Data() > best.Data() {
			best = cn
		}
	}
	return best
}

// ParseConnName checks a --conn value: two address:port pairs joined by a
// hyphen.
func ParseConnName(s string) (a, b netip.AddrPort, err error) {
	// IPv6 literals are bracketed, so the hyphen between the ends is the
	// one after a port's digits; try every hyphen.
	for i := range len(s) {
		if s[i] != '-' {
			continue
		}
		a, err1 := netip.ParseAddrPort(s[:i])
		b, err2 := netip.ParseAddrPort(s[i+1:])
		if err1 == nil && err2 == nil {
			return a, b, nil
		}
	}
	return a, b, fmt.Errorf("%q is not LOCAL-REMOTE, two address:port pairs joined by a hyphen as in 198.18.0.2:80-198.18.0.1:40000", s)
}

// analyzer sorts packets into connections and classifies them.
type analyzer struct {
	c     *Capture
	conns map[[2]netip.AddrPort]*Conn // keyed by (src, dst) of either direction
}

func newAnalyzer(c *Capture) *analyzer {
	return &analyzer{c: c, conns: map[[2]netip.AddrPort]*Conn{}}
}

// tcpInfo is one decoded TCP packet.
type tcpInfo struct {
	src, dst netip.AddrPort
	tcp      *layers.TCP
	payload  int // from the IP length, so a capture cut short by its snap length still counts the bytes sent
}

// decode finds the TCP segment in one record.
func decode(data []byte, lt layers.LinkType) (tcpInfo, bool) {
	var dec gopacket.Decoder = lt
	if lt == layers.LinkTypeRaw || lt == layers.LinkTypeIPv4 || lt == 12 {
		// Raw IP (101, and DLT_RAW's 12 on some systems; 228 IPv4 only):
		// the version nibble says which.
		dec = layers.LayerTypeIPv4
		if len(data) > 0 && data[0]>>4 == 6 {
			dec = layers.LayerTypeIPv6
		}
	}
	pkt := gopacket.NewPacket(data, dec, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp == nil {
		return tcpInfo{}, false
	}
	hdr := int(tcp.DataOffset) * 4
	var in tcpInfo
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		s, _ := netip.AddrFromSlice(ip.SrcIP.To4())
		d, _ := netip.AddrFromSlice(ip.DstIP.To4())
		in.src, in.dst = netip.AddrPortFrom(s, uint16(tcp.SrcPort)), netip.AddrPortFrom(d, uint16(tcp.DstPort))
		in.payload = int(ip.Length) - int(ip.IHL)*4 - hdr
	case *layers.IPv6:
		s, _ := netip.AddrFromSlice(ip.SrcIP)
		d, _ := netip.AddrFromSlice(ip.DstIP)
		in.src, in.dst = netip.AddrPortFrom(s, uint16(tcp.SrcPort)), netip.AddrPortFrom(d, uint16(tcp.DstPort))
		in.payload = int(ip.Length) - hdr // extension headers are rare on TCP; taken as none
	default:
		return tcpInfo{}, false
	}
	if in.payload < 0 || in.payload > 1<<16 {
		in.payload = len(tcp.Payload)
	}
	in.tcp = tcp
	return in, true
}

// packet adds one record; false if it was not TCP.
func (a *analyzer) packet(data []byte, lt layers.LinkType, ts time.Time) bool {
	in, ok := decode(data, lt)
	if !ok {
		return false
	}
	tcp := in.tcp
	t := ts.Sub(a.c.Start).Seconds()
	conn := a.conns[[2]netip.AddrPort{in.src, in.dst}]
	// A SYN with a new ISN on a known 4-tuple is a new connection (the
	// port reused after the last one ended).
	if conn != nil && tcp.SYN && !tcp.ACK {
		if f := conn.flow(in.src); f.SYN && f.isn != tcp.Seq {
			conn = nil
		}
	}
	if conn == nil {
		conn = &Conn{Local: in.dst, Remote: in.src}
		if tcp.SYN && tcp.ACK {
			// The first packet seen is the SYN-ACK: its sender listened.
			conn.Local, conn.Remote = in.src, in.dst
		}
		conn.Out = &Flow{Src: conn.Local, Dst: conn.Remote, WScale: -1, rcvWnd: -1}
		conn.In = &Flow{Src: conn.Remote, Dst: conn.Local, WScale: -1, rcvWnd: -1}
		a.c.Conns = append(a.c.Conns, conn)
		a.conns[[2]netip.AddrPort{in.src, in.dst}] = conn
		a.conns[[2]netip.AddrPort{in.dst, in.src}] = conn
	}
	me, peer := conn.flow(in.src), conn.flow(in.dst)
	if tcp.SYN {
		if !me.SYN {
			me.SYN, me.based, me.isn, me.last, me.lastRel = true, true, tcp.Seq, tcp.Seq, 0
		}
		me.WScale = -1
		for _, o := range tcp.Options {
			if o.OptionType == layers.TCPOptionKindWindowScale && len(o.OptionData) == 1 {
				// RFC 7323 §2.3: a shift above 14 is used as 14.
				me.WScale = int(min(o.OptionData[0], 14))
			}
		}
	}
	seg := Segment{T: t, Seq: me.rel(tcp.Seq), Len: in.payload, SYN: tcp.SYN, FIN: tcp.FIN, RST: tcp.RST}
	me.add(seg)
	switch {
	case tcp.RST:
		y := peer.sndMax
		if tcp.ACK {
			y = peer.relAck(tcp.Ack)
		}
		peer.Resets = append(peer.Resets, Ack{T: t, Ack: y, Window: -1})
	case tcp.ACK:
		peer.ack(t, tcp, me.WScale >= 0 && peer.WScale >= 0 && !tcp.SYN, me.WScale)
	}
	return true
}

// flow returns the direction whose sender is src.
func (c *Conn) flow(src netip.AddrPort) *Flow {
	if c.Out.Src == src {
		return c.Out
	}
	return c.In
}

// rel turns a raw sequence number of this flow's sender into a relative
// one, unwrapped around the last one seen, so a transfer past 4 GiB keeps
// counting up.
func (f *Flow) rel(raw uint32) int64 {
	if !f.based {
		f.based, f.isn, f.last, f.lastRel = true, raw, raw, 0
		return 0
	}
	f.lastRel += int64(int32(raw - f.last))
	f.last = raw
	return f.lastRel
}

// relAck places an acknowledgment number of this flow's data, sent by the
// receiver, in the same space without moving the reference.
func (f *Flow) relAck(raw uint32) int64 {
	if !f.based {
		// Only ACKs of this direction seen so far (a capture that starts
		// mid-connection): count from the first of them.
		f.based, f.isn, f.last, f.lastRel = true, raw, raw, 0
		return 0
	}
	return f.lastRel + int64(int32(raw-f.last))
}

// ack records what the receiver (the sender of tcp) acknowledged of this
// flow and the window it offered, shifted by shift when both SYNs agreed
// to scaling (RFC 7323 §2.2: never in a SYN).
func (f *Flow) ack(t float64, tcp *layers.TCP, scaled bool, shift int) {
	win := int64(tcp.Window)
	if scaled {
		win <<= shift
	}
	a := Ack{T: t, Ack: f.relAck(tcp.Ack), Window: win}
	f.Acks = append(f.Acks, a)
	f.rcvWnd, f.rcvAck, f.rcvAcked = win, a.Ack, true
	for _, o := range tcp.Options {
		if o.OptionType != layers.TCPOptionKindSACK {
			continue
		}
		var blocks []Block
		for d := o.OptionData; len(d) >= 8; d = d[8:] {
			blocks = append(blocks, Block{T: t, Left: f.relAck(binary.BigEndian.Uint32(d)), Right: f.relAck(binary.BigEndian.Uint32(d[4:]))})
		}
		if len(blocks) > 0 {
			b0 := blocks[0]
			// RFC 2883 §4: a first block at or below the cumulative ACK,
			// or inside the second block, reports a duplicate.
			blocks[0].DSACK = b0.Right <= a.Ack || len(blocks) > 1 && b0.Left >= blocks[1].Left && b0.Right <= blocks[1].Right
		}
		f.SACKs = append(f.SACKs, blocks...)
	}
}

// add records one segment the flow's sender sent and classifies it.
func (f *Flow) add(s Segment) {
	span := s.End() - s.Seq
	switch {
	case s.RST:
	case span > 0:
		s.Retransmission = f.sent && s.Seq < f.sndMax
		if s.Len > 0 && f.rcvWnd == 0 {
			s.Probe = true
		}
		if !f.sent || s.End() > f.sndMax {
			f.sndMax = s.End()
		}
		f.sent = true
	case f.rcvWnd == 0 && f.rcvAcked && s.Seq == f.rcvAck-1:
		// Linux behaviour: tcp_xmit_probe_skb(): the probe carries no data
		// and SND.UNA-1, an old sequence number the receiver answers with
		// an ACK and its window.
		s.Probe = true
	}
	if span == 0 && !s.Probe && !s.RST {
		return // a pure ACK: its numbers are in the other direction's Acks
	}
	f.Bytes += int64(s.Len)
	if s.Retransmission {
		f.Retransmissions++
	}
	if s.Probe {
		f.Probes++
	}
	f.Segments = append(f.Segments, s)
}
