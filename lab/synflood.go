package lab

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"golang.org/x/sys/unix"

	"tunstack/wire"
)

// SYNInjector forges TCP SYNs from addresses that never answer and writes
// them through a raw IPv4 socket with IP_HDRINCL, for the SYN-flood test
// (docs/experiments.md, "SYN flood with cookies").
// The kernel routes each one by its destination like any packet it sends,
// so SYNs for a stack behind a TUN cross the TUN into that stack; the
// source address is taken as written, so the stack's SYN-ACKs go back to
// the kernel for an address it does not have, and with forwarding off (the
// default in a fresh namespace) it drops them without a word.
type SYNInjector struct {
	fd   int
	dst  netip.AddrPort
	src  netip.Prefix
	next uint64 // index of the next SYN: it picks the source address and port
	rng  *rand.Rand
	buf  [synLen]byte
}

// synLen is a SYN with the options a Linux client sends (MSS,
// SACK-permitted, timestamps, window scale): 20 + 20 + 20 bytes.
const synLen = wire.IPv4HeaderLen + wire.TCPHeaderLen + 20

// NewSYNInjector opens the raw socket. Call it inside the namespace the SYNs
// are to leave from (netns.NS.Do); the socket stays there whatever thread
// sends on it later. Sources are drawn from src without repeating an
// address-port pair until every host address of src has sent from every
// port from 1024 up; seed fixes the ISNs and timestamps.
func NewSYNInjector(dst netip.AddrPort, src netip.Prefix, seed uint64) (*SYNInjector, error) {
	if !dst.Addr().Is4() || !src.Addr().Is4() || src.Bits() > 30 {
		return nil, fmt.Errorf("synflood: want an IPv4 destination and an IPv4 source prefix of /30 or wider, have %s and %s", dst, src)
	}
	// IPPROTO_RAW implies IP_HDRINCL: we write the whole IPv4 header.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("synflood: raw socket: %w", err)
	}
	// Without IP_RECVERR a raw socket hides the queueing discipline's
	// drops (sendto succeeds with ENOBUFS swallowed); with it they come
	// back as ENOBUFS, so a successful Send means the packet was queued.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("synflood: IP_RECVERR: %w", err)
	}
	return &SYNInjector{fd: fd, dst: dst, src: src.Masked(), rng: rand.New(rand.NewPCG(seed, 0x5f1d))}, nil
}

// Send sends n SYNs, each from a new source, and returns how many the
// kernel queued. It stops at the first error; unix.ENOBUFS means the
// device's queue is full, and the same SYN is sent again by the next call.
func (j *SYNInjector) Send(n int) (int, error) {
	to := &unix.SockaddrInet4{Addr: j.dst.Addr().As4()}
	for i := range n {
		src := SYNSource(j.src, j.next)
		m := PutSYN(j.buf[:], src, j.dst, j.rng.Uint32(), j.rng.Uint32(), uint16(j.next))
		if err := unix.Sendto(j.fd, j.buf[:m], 0, to); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return i, err
		}
		j.next++
	}
	return n, nil
}

// Sent returns how many SYNs the kernel has queued so far.
func (j *SYNInjector) Sent() uint64 { return j.next }

// Close closes the raw socket.
func (j *SYNInjector) Close() error { return unix.Close(j.fd) }

// SYNSource is the i-th source of a flood from prefix: the host addresses
// in turn (neither the network nor the broadcast address), then the same
// again from the next port, starting at 1024.
func SYNSource(prefix netip.Prefix, i uint64) netip.AddrPort {
	hosts := uint64(1)<<(32-prefix.Bits()) - 2
	base := prefix.Masked().Addr().As4()
	addr := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	addr += 1 + uint32(i%hosts)
	port := 1024 + uint16(i/hosts%(65536-1024))
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)}), port)
}

// PutSYN writes an IPv4 packet carrying a SYN from src to dst into b and
// returns its length (b needs 60 bytes). The SYN has a Linux client's
// options, so a listener treats it like a real client's: MSS 1460,
// SACK-permitted, timestamps (TSval tsVal) and window scale 7.
func PutSYN(b []byte, src, dst netip.AddrPort, iss, tsVal uint32, id uint16) int {
	opts := wire.TCPOptions{
		MSS: 1460, HasMSS: true, SACKPermitted: true,
		HasTS: true, TSVal: tsVal,
		WScale: 7, HasWScale: true,
	}
	seg := wire.TCP(b[wire.IPv4HeaderLen:synLen])
	wire.PutTCPHeader(seg, wire.TCPFields{
		SrcPort: src.Port(), DstPort: dst.Port(),
		Seq: iss, Flags: wire.FlagSYN, Window: 64240,
	}, opts.EncodedLen())
	wire.EncodeTCPOptions(seg[wire.TCPHeaderLen:], &opts)
	seg.ComputeChecksum(src.Addr().As4(), dst.Addr().As4())
	wire.PutIPv4Header(b, wire.IPv4Fields{
		Src: src.Addr().As4(), Dst: dst.Addr().As4(),
		Protocol: wire.ProtoTCP, TTL: 64, ID: id, DontFrag: true,
	}, len(seg))
	return synLen
}
