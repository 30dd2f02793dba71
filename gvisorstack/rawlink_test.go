package gvisorstack

import (
	"context"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"tunstack/netif"
)

// rawPeer reads the packets a stack sends, from the other end of its pipe,
// on a goroutine of its own, and hands them to the test on a channel.
type rawPeer struct {
	end  *netif.PipeEnd
	pkts chan []byte
	done chan struct{}
}

func newRawPeer(end *netif.PipeEnd) *rawPeer {
	r := &rawPeer{end: end, pkts: make(chan []byte, 1024), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer close(r.pkts)
		bufs := [][]byte{make([]byte, testMTU)}
		sizes := []int{0}
		for {
			if _, err := end.ReadPackets(bufs, sizes); err != nil {
				return
			}
			r.pkts <- append([]byte(nil), bufs[0][:sizes[0]]...)
		}
	}()
	return r
}

// next returns the next packet the stack sent, or nil after wait.
func (r *rawPeer) next(wait time.Duration) []byte {
	select {
	case p := <-r.pkts:
		return p
	case <-time.After(wait):
		return nil
	}
}

// nextSYN returns the next TCP SYN, skipping anything else, or nil.
func (r *rawPeer) nextSYN(wait time.Duration) header.TCP {
	deadline := time.Now().Add(wait)
	for {
		p := r.next(time.Until(deadline))
		if p == nil {
			return nil
		}
		ip := header.IPv4(p)
		if !ip.IsValid(len(p)) || ip.TransportProtocol() != header.TCPProtocolNumber {
			continue
		}
		tcp := header.TCP(ip.Payload())
		if tcp.Flags() == header.TCPFlagSyn {
			return tcp
		}
	}
}

// armingClock is a ManualClock that reports the duration of every timer
// armed through AfterFunc, so that a test waits for gVisor to arm one
// before it advances the clock.
type armingClock struct {
	*faketime.ManualClock
	armed chan time.Duration
}

func (c armingClock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	t := c.ManualClock.AfterFunc(d, f)
	select {
	case c.armed <- d:
	default: // no one waits for these any more; gVisor must not block
	}
	return t
}

// awaitArmed waits up to limit of real time for a timer of d to be armed.
func (c armingClock) awaitArmed(d, limit time.Duration) bool {
	deadline := time.After(limit)
	for {
		select {
		case got := <-c.armed:
			if got == d {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

func TestManualClockDrivesSYNRetransmission(t *testing.T) {
	clock := armingClock{faketime.NewManualClock(), make(chan time.Duration, 64)}
	pa, pb := netif.NewPipe(testMTU)
	s, err := New(pa, Config{Addr: addrA, Prefix: netAB, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	peer := newRawPeer(pb)
	defer func() {
		s.Close()
		<-peer.done
	}()

	ctx, cancel := context.WithCancel(context.Background())
	dialed := make(chan error, 1)
	go func() {
		// Nobody answers at 10.0.0.9: the SYN is retransmitted until cancel.
		_, err := s.Dial(ctx, "tcp", "10.0.0.9:80")
		dialed <- err
	}()
	defer func() {
		cancel()
		<-dialed
	}()

	first := peer.nextSYN(5 * time.Second)
	if first == nil {
		t.Fatal("no SYN on the link")
	}
	// The SYN is written before gVisor arms its timer, the handshake's
	// RTO of 1 s: Advance must find it armed.
	if !clock.awaitArmed(time.Second, 5*time.Second) {
		t.Fatal("gVisor armed no 1 s timer after its SYN")
	}
	if syn := peer.nextSYN(200 * time.Millisecond); syn != nil {
		t.Fatal("SYN retransmitted without the clock advancing")
	}
	// gVisor's handshake RTO starts at 1 s and doubles (connect.go).
	for i, step := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		clock.Advance(step - time.Millisecond)
		if syn := peer.nextSYN(200 * time.Millisecond); syn != nil {
			t.Fatalf("retransmission %d came %v early", i+1, time.Millisecond)
		}
		clock.Advance(time.Millisecond)
		syn := peer.nextSYN(5 * time.Second)
		if syn == nil {
			t.Fatalf("no retransmission %d after advancing the clock %v", i+1, step)
		}
		if syn.SequenceNumber() != first.SequenceNumber() {
			t.Fatalf("retransmitted SYN has ISN %d, first had %d", syn.SequenceNumber(), first.SequenceNumber())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAnswersICMPEcho(t *testing.T) {
	pa, pb := netif.NewPipe(testMTU)
	s, err := New(pa, Config{Addr: addrA, Prefix: netAB})
	if err != nil {
		t.Fatal(err)
	}
	peer := newRawPeer(pb)
	defer func() {
		s.Close()
		<-peer.done
	}()

	payload := []byte("tunstack ping")
	pkt := make([]byte, header.IPv4MinimumSize+header.ICMPv4MinimumSize+len(payload))
	ip := header.IPv4(pkt)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(pkt)),
		TTL:         64,
		Protocol:    uint8(header.ICMPv4ProtocolNumber),
		SrcAddr:     tcpip.AddrFrom4(addrB.As4()),
		DstAddr:     tcpip.AddrFrom4(addrA.As4()),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	icmp := header.ICMPv4(ip.Payload())
	icmp.SetType(header.ICMPv4Echo)
	icmp.SetIdent(0x1234)
	icmp.SetSequence(7)
	copy(icmp.Payload(), payload)
	icmp.SetChecksum(^checksum.Checksum(icmp, 0))
	if _, err := pb.WritePackets([][]byte{pkt}); err != nil {
		t.Fatal(err)
	}

	for deadline := time.Now().Add(5 * time.Second); ; {
		p := peer.next(time.Until(deadline))
		if p == nil {
			t.Fatal("no echo reply")
		}
		rip := header.IPv4(p)
		if !rip.IsValid(len(p)) || rip.TransportProtocol() != header.ICMPv4ProtocolNumber {
			continue
		}
		r := header.ICMPv4(rip.Payload())
		if r.Type() != header.ICMPv4EchoReply {
			continue
		}
		if rip.SourceAddress() != tcpip.AddrFrom4(addrA.As4()) || rip.DestinationAddress() != tcpip.AddrFrom4(addrB.As4()) {
			t.Fatalf("echo reply %v -> %v", rip.SourceAddress(), rip.DestinationAddress())
		}
		if r.Ident() != 0x1234 || r.Sequence() != 7 || string(r.Payload()) != string(payload) {
			t.Fatalf("echo reply ident %#x seq %d payload %q", r.Ident(), r.Sequence(), r.Payload())
		}
		return
	}
}
