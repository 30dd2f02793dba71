package main

// A raw-socket receiver abusing a download over the TUN: SACK blocks
// churning the sender's scoreboard, ACKs of data never sent, and options
// whose lengths lie; against tunstack serve and against a kernel server
// in a namespace, with the same injector.

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tunstack/lab/netns"
	"tunstack/wire"
)

// sendOpts forges one segment whose options are opts as they are, lies
// included (a multiple of four bytes).
func (f *forger) sendOpts(src, dst netip.AddrPort, seq, ack uint32, flags uint8, wnd uint16, opts, payload []byte) error {
	n := wire.TCPHeaderLen + len(opts) + len(payload)
	seg := wire.TCP(f.buf[wire.IPv4HeaderLen : wire.IPv4HeaderLen+n])
	wire.PutTCPHeader(seg, wire.TCPFields{SrcPort: src.Port(), DstPort: dst.Port(), Seq: seq, Ack: ack, Flags: flags, Window: wnd}, len(opts))
	copy(seg[wire.TCPHeaderLen:], opts)
	copy(seg[wire.TCPHeaderLen+len(opts):], payload)
	seg.ComputeChecksum(src.Addr().As4(), dst.Addr().As4())
	wire.PutIPv4Header(f.buf[:], wire.IPv4Fields{Src: src.Addr().As4(), Dst: dst.Addr().As4(), Protocol: wire.ProtoTCP, TTL: 64, DontFrag: true}, n)
	return unix.Sendto(f.fd, f.buf[:wire.IPv4HeaderLen+n], 0, &unix.SockaddrInet4{Addr: dst.Addr().As4()})
}

// sackOption is NOP, NOP and a SACK option with blocks.
func sackOption(blocks [][2]uint32) []byte {
	b := []byte{wire.OptNOP, wire.OptNOP, wire.OptSACK, byte(2 + 8*len(blocks))}
	for _, bl := range blocks {
		b = binary.BigEndian.AppendUint32(b, bl[0])
		b = binary.BigEndian.AppendUint32(b, bl[1])
	}
	return b
}

// churnMSS is the MSS the churning receiver announces.
const churnMSS = 1460

// churnACKs and churnBlocks: the receiver's duplicate ACKs, each with
// churnBlocks SACK blocks, 10,000 ranges in all, each different from the
// others (its start or its length).
const (
	churnACKs   = 2500
	churnBlocks = 4
)

// rawReceiver is a raw-socket peer downloading from a writerTarget.
type rawReceiver struct {
	t      *testing.T
	z      *writerTarget
	tap    *segTap
	fg     *forger
	me     netip.AddrPort
	mark   int
	iss    uint32
	isnS   uint32 // the server's ISN
	rcvNxt uint32 // what the receiver has taken in order
	sndMax uint32 // the highest sequence number the server has sent, plus one
	resets int
}

// handshake sends a SYN with opts and completes the handshake; it returns
// the SYN-ACK.
func (r *rawReceiver) handshake(opts []byte) (tappedSeg, error) {
	_, r.mark = r.tap.since(0, netip.AddrPort{}, netip.AddrPort{})
	r.iss = 3000000
	if err := r.fg.sendOpts(r.me, r.z.srv, r.iss, 0, wire.FlagSYN, 65535, opts, nil); err != nil {
		return tappedSeg{}, err
	}
	var synAck tappedSeg
	if !awaitCondition(10*time.Second, func() bool {
		for _, s := range r.read() {
			if s.flags&wire.FlagSYN != 0 && s.flags&wire.FlagACK != 0 {
				synAck = s
				return true
			}
		}
		return false
	}) {
		return tappedSeg{}, fmt.Errorf("no SYN-ACK to a SYN with options % x", opts)
	}
	r.isnS, r.rcvNxt, r.sndMax = synAck.seq, synAck.seq+1, synAck.seq+1
	return synAck, r.ack(r.rcvNxt, nil)
}

// read returns the server's segments to the receiver since the last read,
// noting the highest sequence number sent and any RST.
func (r *rawReceiver) read() []tappedSeg {
	var segs []tappedSeg
	segs, r.mark = r.tap.since(r.mark, r.z.srv, r.me)
	for _, s := range segs {
		if s.flags&wire.FlagRST != 0 {
			r.resets++
		}
		if e := s.end(); int32(e-r.sndMax) > 0 {
			r.sndMax = e
		}
	}
	return segs
}

// ack sends an ACK of ack with opts (SACK blocks or nothing).
func (r *rawReceiver) ack(ack uint32, opts []byte) error {
	return r.fg.sendOpts(r.me, r.z.srv, r.iss+1, ack, wire.FlagACK, 65535, opts, nil)
}

// take acknowledges the data that arrives in order until n more bytes
// have been taken, ignoring what is out of order (its duplicate ACKs ask
// for the rest again).
func (r *rawReceiver) take(n uint32) error {
	want := r.rcvNxt + n
	deadline := time.Now().Add(30 * time.Second)
	for int32(want-r.rcvNxt) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("took %d of %d bytes in 30 s", n-(want-r.rcvNxt), n)
		}
		moved := false
		for _, s := range r.read() {
			if s.payload > 0 && s.seq == r.rcvNxt {
				r.rcvNxt, moved = s.end(), true
			} else if s.payload > 0 && int32(s.seq-r.rcvNxt) < 0 && int32(s.end()-r.rcvNxt) > 0 {
				r.rcvNxt, moved = s.end(), true // a retransmission overlapping what was taken
			}
		}
		if moved {
			if err := r.ack(r.rcvNxt, nil); err != nil {
				return err
			}
		}
		time.Sleep(time.Millisecond) // the tap's next batch
	}
	return nil
}

// cpuTime is the CPU this process has used, user and system: the
// injector's system calls and, for tunstack, the stack.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A receiver downloading from an application that writes without end
// abuses the sender three ways, on tunstack over its TUN and on Linux from
// the same raw-socket injector:
//
//   - its SYN's options lie about their lengths (an unknown option of
//     length 0 after the MSS; then one running past the header): parsing
//     stops there (Linux tcp_parse_options: "silly options" and partial
//     options end it) and the SYN is answered, with the MSS read before
//     the lie in force;
//   - with the first flight outstanding it sends 2,500 duplicate ACKs of
//     four SACK blocks each, 10,000 different ranges inside the flight
//     (one or two bytes, each at its own offset): the scoreboard churns;
//     the CPU per ACK is measured, the connection survives;
//   - it then acknowledges data never sent (SND.NXT + 64 KiB), ten times
//     (RFC 5961 §5.2, RFC 9293 §3.10.7.4): the ACKs are dropped, SND.UNA
//     does not move (tcpi_bytes_acked stays what the honest ACK after
//     them acknowledged); then it takes 100 KB more in order, and the
//     transfer goes on.
func TestHostileSACKChurnOptimisticACKsAndLyingOptions(t *testing.T) {
	netns.RequireRoot(t)
	for _, name := range []string{"linux", "tunstack"} {
		t.Run(name, func(t *testing.T) {
			z := newWriterTarget(t, name, 0)
			tap := openTap(t, z.ns, z.dev)
			fg := openForger(t, z.ns)
			mss := []byte{wire.OptMSS, 4, 0, 0}
			binary.BigEndian.PutUint16(mss[2:], churnMSS)

			// Lying option lengths, each on a connection of its own: an
			// option of length 0 after the MSS, and one of length 40
			// (past the header's end). The SYN-ACK comes either way; the
			// MSS before the lie is read (the server's own MSS option
			// says nothing of it, so the data's size shows it below).
			lies := map[string][]byte{
				"length 0":        append(append([]byte{}, mss...), 30, 0, wire.OptNOP, wire.OptNOP),
				"past the header": append(append([]byte{}, mss...), 30, 40, 0, 0),
			}
			lieAnswers := map[string]string{}
			port := uint16(42000)
			for _, what := range []string{"length 0", "past the header"} {
				r := &rawReceiver{t: t, z: z, tap: tap, fg: fg, me: netip.AddrPortFrom(rawPeerAddr, port)}
				port++
				if _, err := r.handshake(lies[what]); err != nil {
					t.Errorf("SYN with an option of %s: %v", what, err)
					lieAnswers[what] = "no SYN-ACK"
					continue
				}
				lieAnswers[what] = "SYN-ACK"
				select {
				case <-z.conns:
				case <-time.After(10 * time.Second):
					t.Errorf("SYN with an option of %s: the application never accepted the connection", what)
				}
			}

			// The churning receiver: MSS 1460 and SACK permitted.
			r := &rawReceiver{t: t, z: z, tap: tap, fg: fg, me: netip.AddrPortFrom(rawPeerAddr, port)}
			synOpts := append(append([]byte{}, mss...), wire.OptNOP, wire.OptNOP, wire.OptSACKPermitted, 2)
			if _, err := r.handshake(synOpts); err != nil {
				t.Fatal(err)
			}
			var conn net.Conn
			select {
			case conn = <-z.conns:
			case <-time.After(10 * time.Second):
				t.Fatal("the application never accepted the connection")
			}
			// The first flight: the initial window of ten segments.
			if !awaitCondition(10*time.Second, func() bool { r.read(); return r.sndMax-r.rcvNxt >= 10*churnMSS }) {
				t.Fatalf("the server sent %d bytes of its first flight, want %d", r.sndMax-r.rcvNxt, 10*churnMSS)
			}
			una, flight := r.rcvNxt, r.sndMax-r.rcvNxt
			// Offsets two bytes apart inside the flight, above the first
			// byte; each range one byte long on the first pass over
			// them and two on the next.
			slots := (flight - 4) / 4
			cpu0 := cpuTime(t)
			for k := range churnACKs {
				blocks := make([][2]uint32, churnBlocks)
				for j := range blocks {
					i := uint32(k*churnBlocks + j)
					start := una + 2 + 4*(i%slots)
					blocks[j] = [2]uint32{start, start + 1 + i/slots%2}
				}
				if err := r.ack(una, sackOption(blocks)); err != nil {
					t.Fatal(err)
				}
			}
			// The honest ACK of the first segment after the churn: once
			// the server has counted it, it has taken every ACK before.
			if err := r.ack(una+churnMSS, nil); err != nil {
				t.Fatal(err)
			}
			if !awaitCondition(10*time.Second, func() bool { return z.info(conn).bytesAcked >= churnMSS }) {
				t.Fatalf("the server never counted the ACK after the churn (bytes acked %d)", z.info(conn).bytesAcked)
			}
			cpuChurn := cpuTime(t) - cpu0
			r.rcvNxt = una + churnMSS
			r.read()
			afterChurn := z.info(conn)

			// Optimistic ACKs: far beyond anything sent.
			r.read()
			forged := r.sndMax + 64<<10
			for range 10 {
				if err := r.ack(forged, nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.ack(una+2*churnMSS, nil); err != nil {
				t.Fatal(err)
			}
			var afterForged senderInfo
			if !awaitCondition(10*time.Second, func() bool {
				afterForged = z.info(conn)
				return afterForged.bytesAcked >= 2*churnMSS
			}) {
				t.Fatalf("the server never counted the honest ACK after the forged ones (bytes acked %d)", afterForged.bytesAcked)
			}
			if afterForged.bytesAcked != 2*churnMSS {
				t.Errorf("after 10 ACKs of data never sent and an honest ACK of 2 segments, the server counts %d bytes acknowledged, want %d: it took a forged ACK",
					afterForged.bytesAcked, 2*churnMSS)
			}
			r.rcvNxt = una + 2*churnMSS
			const more = 100000
			if err := r.take(more); err != nil {
				t.Errorf("after the attacks: %v", err)
			}
			if r.resets != 0 {
				t.Errorf("the server reset the connection %d times", r.resets)
			}
			final := z.info(conn)
			perACK := cpuChurn / churnACKs
			figs := map[string]any{
				"sack_ranges":          strconv.Itoa(churnACKs * churnBlocks),
				"cpu_per_attack_ack":   perACK.Round(100 * time.Nanosecond).String(),
				"retransmits_by_churn": strconv.FormatUint(uint64(afterChurn.totalRetrans), 10),
				"taken_after":          strconv.Itoa(more),
			}
			// No heap figure here: the tap keeps every segment it sees
			// in this process, the 2,500 ACKs among them; the engine's
			// own test measures the scoreboard.
			logReliability(t, reliabilityEntry{Case: "SACK scoreboard churn (10,000 distinct one-byte ranges)", Stack: name,
				Outcome: fmt.Sprintf("over a TUN from a raw socket: %d duplicate ACKs carrying %d different one- and two-byte SACK ranges inside a %d-byte flight: %v of the process's CPU per ACK (injector included), %d retransmissions; the connection survived and delivered %d bytes more in order",
					churnACKs, churnACKs*churnBlocks, flight, perACK.Round(100*time.Nanosecond), afterChurn.totalRetrans, more),
				Figures: figs})
			logReliability(t, reliabilityEntry{Case: "optimistic ACK during a download (10 ACKs of SND.NXT + 64 KiB)", Stack: name,
				Outcome: fmt.Sprintf("over a TUN from a raw socket: SND.UNA did not move (%d bytes acknowledged after the honest ACK of 2 segments), cwnd %d segments before and %d after; the transfer went on",
					afterForged.bytesAcked, afterChurn.cwnd, afterForged.cwnd),
				Figures: map[string]any{"bytes_acked_after": strconv.FormatUint(afterForged.bytesAcked, 10), "cwnd_before": strconv.FormatUint(uint64(afterChurn.cwnd), 10),
					"cwnd_after": strconv.FormatUint(uint64(afterForged.cwnd), 10), "bytes_acked_end": strconv.FormatUint(final.bytesAcked, 10)}})
			logReliability(t, reliabilityEntry{Case: "option lengths that lie (0, 1, past the header)", Stack: name,
				Outcome: fmt.Sprintf("over a TUN from a raw socket: a SYN with an option of length 0 after its MSS got a %s, one with an option running past the header a %s",
					lieAnswers["length 0"], lieAnswers["past the header"]),
				Figures: map[string]any{"length_0": lieAnswers["length 0"], "past_header": lieAnswers["past the header"]}})
		})
	}
}
