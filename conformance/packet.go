package conformance

import (
	"encoding/binary"
	"fmt"

	"tunstack/wire"
)

// defaultInboundWindow is the window of an inbound packet whose line has no
// "win": packetdrill scripts nearly always write one.
const defaultInboundWindow = 65535

// inboundSpec is what the runner resolves before building a packet.
type inboundSpec struct {
	src, dst         [4]byte
	srcPort, dstPort uint16
	ipID             uint16
	localISN         uint32 // added to ack and to SACK blocks (stack's sequence space)
	mapEcr           func(uint32) uint32
}

// buildInbound encodes a script packet as an IPv4 packet.
func buildInbound(p *Packet, s inboundSpec) ([]byte, error) {
	var opt [wire.TCPMaxOptionLen]byte
	n := 0
	put := func(b ...byte) error {
		if n+len(b) > len(opt) {
			return fmt.Errorf("options need more than %d bytes", wire.TCPMaxOptionLen)
		}
		n += copy(opt[n:], b)
		return nil
	}
	for _, o := range p.Opts {
		var err error
		switch o.Kind {
		case OptKindNOP:
			err = put(wire.OptNOP)
		case OptKindEOL:
			err = put(wire.OptEOL)
		case OptKindMSS:
			err = put(wire.OptMSS, 4, byte(o.Value>>8), byte(o.Value))
		case OptKindWScale:
			err = put(wire.OptWindowScale, 3, byte(o.Value))
		case OptKindSACKOK:
			err = put(wire.OptSACKPermitted, 2)
		case OptKindTS:
			var b [10]byte
			b[0], b[1] = wire.OptTimestamps, 10
			binary.BigEndian.PutUint32(b[2:], o.TSVal)
			binary.BigEndian.PutUint32(b[6:], s.mapEcr(o.TSEcr))
			err = put(b[:]...)
		case OptKindSACK:
			b := []byte{wire.OptSACK, byte(2 + 8*len(o.Blocks))}
			for _, blk := range o.Blocks {
				b = binary.BigEndian.AppendUint32(b, blk[0]+s.localISN)
				b = binary.BigEndian.AppendUint32(b, blk[1]+s.localISN)
			}
			err = put(b...)
		}
		if err != nil {
			return nil, err
		}
	}
	for n%4 != 0 { // pad to the data-offset unit with end-of-list
		if err := put(wire.OptEOL); err != nil {
			return nil, err
		}
	}
	tcpLen := wire.TCPHeaderLen + n + p.Len
	pkt := make([]byte, wire.IPv4HeaderLen+tcpLen)
	wire.PutIPv4Header(pkt, wire.IPv4Fields{Src: s.src, Dst: s.dst, Protocol: wire.ProtoTCP, TTL: 64, ID: s.ipID, DontFrag: true}, tcpLen)
	t := wire.TCP(pkt[wire.IPv4HeaderLen:])
	win := uint16(defaultInboundWindow)
	if p.HasWin {
		win = p.Win
	}
	var ack uint32
	if p.HasAck {
		ack = p.Ack + s.localISN
	}
	wire.PutTCPHeader(t, wire.TCPFields{SrcPort: s.srcPort, DstPort: s.dstPort, Seq: p.Start, Ack: ack,
		Flags: p.Flags, Window: win, Urgent: p.Urg}, n)
	copy(t[wire.TCPHeaderLen:], opt[:n])
	// The payload is zeros; its bytes are not part of what scripts check.
	t.ComputeChecksum(s.src, s.dst)
	return pkt, nil
}
