package stack

import (
	"errors"
	"io"
	"net"

	"tunstack/netif"
	"tunstack/tcpcore"
	"tunstack/wire"
)

// readBatch is how many packets the reader takes from the link per call:
// enough to amortize the lock and the output flush over a window's worth of
// ACKs, small enough that the buffers (readBatch*MTU) stay modest.
const readBatch = 64

// ipTTL is the TTL of the packets we originate, Linux's default.
const ipTTL = 64

// readLoop is the link reader: it reads packets in batches into buffers
// allocated once, demultiplexes them (TCP to the engine, ICMP echo answered,
// the rest dropped and counted), and flushes the engine's output once per
// batch rather than once per packet.
func (s *Stack) readLoop() {
	defer s.wg.Done()
	bufs := make([][]byte, readBatch)
	for i := range bufs {
		bufs[i] = make([]byte, s.mtu)
	}
	sizes := make([]int, readBatch)
	// Echo replies are written from this goroutine after the batch; their
	// buffers are allocated once too.
	echoBufs := make([][]byte, readBatch)
	for i := range echoBufs {
		echoBufs[i] = make([]byte, s.mtu)
	}
	echoOut := make([][]byte, 0, readBatch)
	st := &s.ipStats
	for {
		n, err := s.link.ReadPackets(bufs, sizes)
		if err != nil {
			// A closed link ends the stack's input. Any other read error
			// means a broken link; retrying would spin, so it ends input
			// too, counted so that it is not silent.
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				st.linkReadErrors.Add(1)
			}
			return
		}
		st.packetsIn.Add(uint64(n))
		echoOut = echoOut[:0]
		s.mu.Lock()
		now := s.now()
		for i := range n {
			pkt := wire.IPv4(bufs[i][:sizes[i]])
			if pkt.Valid() != nil {
				st.malformed.Add(1)
				continue
			}
			if pkt.IsFragment() {
				st.fragments.Add(1)
				continue
			}
			if pkt.DstAddr() != s.addr {
				st.notForUs.Add(1)
				continue
			}
			switch pkt.Protocol() {
			case wire.ProtoTCP:
				st.tcpIn.Add(1)
				s.e.Input(now, pkt.SrcAddr(), pkt.DstAddr(), pkt.Payload())
			case wire.ProtoICMP:
				if m, ok := netif.EchoReply(pkt, echoBufs[len(echoOut)]); ok {
					echoOut = append(echoOut, echoBufs[len(echoOut)][:m])
					continue
				}
				st.otherProto.Add(1)
			default:
				st.otherProto.Add(1)
			}
		}
		s.unlockFlush()
		if len(echoOut) > 0 {
			if _, err := s.link.WritePackets(echoOut); err != nil {
				st.linkWriteErrors.Add(1)
			} else {
				st.echoReplies.Add(uint64(len(echoOut)))
				st.packetsOut.Add(uint64(len(echoOut)))
			}
		}
	}
}

// ipv4Writer puts IPv4 headers in front of the engine's segments, in the
// headroom the engine left for them, and writes the batch to the link. Only
// the goroutine holding the stack's writing flag uses it, so its scratch
// slice and ID counter need no lock.
type ipv4Writer struct {
	id   uint16   // IPv4 identification, incremented per packet
	pkts [][]byte // scratch: the framed packets of one batch
}

func (w *ipv4Writer) write(s *Stack, batch []*tcpcore.Packet) {
	w.pkts = w.pkts[:0]
	for _, p := range batch {
		b := p.WithHeader(wire.IPv4HeaderLen)
		w.id++
		wire.PutIPv4Header(b, wire.IPv4Fields{
			Src: p.Src.As4(), Dst: p.Dst.As4(),
			Protocol: wire.ProtoTCP, TTL: ipTTL, ID: w.id,
			// DF: we never fragment; the engine sizes segments to the MTU.
			DontFrag: true,
		}, len(b)-wire.IPv4HeaderLen)
		w.pkts = append(w.pkts, b)
	}
	// A link may refuse one packet (too big for it) and report how many
	// it sent before that one; the rest of the batch still goes out.
	for off := 0; off < len(w.pkts); {
		n, err := s.link.WritePackets(w.pkts[off:])
		s.ipStats.packetsOut.Add(uint64(n))
		off += n
		if err == nil {
			break
		}
		s.ipStats.linkWriteErrors.Add(1)
		if errors.Is(err, net.ErrClosed) {
			break
		}
		off++ // skip the refused packet
	}
	clear(w.pkts) // do not keep the engine's buffers reachable
}
