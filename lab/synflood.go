package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"golang.org/x/sys/unix"

	"tunstack/wire"
)

// SYNInjector forges TCP SYNs from addresses that never answer and writes
// them through a raw socket that takes the whole IP header (IPv4 with
// IP_HDRINCL, or IPv6, where IPPROTO_RAW implies IPV6_HDRINCL on Linux),
// for the SYN-flood test
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
	buf  [synLen6]byte
}

// synLen is a SYN with the options a Linux client sends (MSS,
// SACK-permitted, timestamps, window scale): 20 + 20 + 20 bytes; synLen6
// the same over IPv6, whose header is 40 bytes.
const (
	synOptLen = 20
	synLen    = wire.IPv4HeaderLen + wire.TCPHeaderLen + synOptLen
	synLen6   = wire.IPv6HeaderLen + wire.TCPHeaderLen + synOptLen
)

// NewSYNInjector opens the raw socket. Call it inside the namespace the SYNs
// are to leave from (netns.NS.Do); the socket stays there whatever thread
// sends on it later. Sources are drawn from src without repeating an
// address-port pair until every host address of src has sent from every
// port from 1024 up; seed fixes the ISNs and timestamps.
func NewSYNInjector(dst netip.AddrPort, src netip.Prefix, seed uint64) (*SYNInjector, error) {
	if err := checkSYNSources(dst.Addr(), src); err != nil {
		return nil, err
	}
	// IPPROTO_RAW implies IP_HDRINCL (IPv4) and IPV6_HDRINCL (IPv6, Linux
	// 4.5 on): we write the whole IP header.
	fd, err := unix.Socket(socketDomain(dst.Addr()), unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("synflood: raw socket: %w", err)
	}
	// Without IP_RECVERR a raw socket hides the queueing discipline's
	// drops (sendto succeeds with ENOBUFS swallowed); with it they come
	// back as ENOBUFS, so a successful Send means the packet was queued.
	level, opt, name := unix.IPPROTO_IP, unix.IP_RECVERR, "IP_RECVERR"
	if dst.Addr().Is6() {
		level, opt, name = unix.IPPROTO_IPV6, unix.IPV6_RECVERR, "IPV6_RECVERR"
	}
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("synflood: %s: %w", name, err)
	}
	return &SYNInjector{fd: fd, dst: dst, src: src.Masked(), rng: rand.New(rand.NewPCG(seed, 0x5f1d))}, nil
}

// checkSYNSources accepts a destination and a source prefix of one family
// with at least two host addresses (IPv4 /30 or wider), and for IPv6 at
// most 32 bits of host part (/96 or narrower), which SYNSource counts in.
func checkSYNSources(dst netip.Addr, src netip.Prefix) error {
	switch {
	case dst.Is4() && src.Addr().Is4() && src.Bits() <= 30:
		return nil
	case dst.Is6() && !dst.Is4In6() && src.Addr().Is6() && !src.Addr().Is4In6() && src.Bits() >= 96 && src.Bits() <= 126:
		return nil
	}
	return fmt.Errorf("synflood: want a destination and a source prefix of one family, IPv4 /30 or wider or IPv6 /96 to /126, have %s and %s", dst, src)
}

// Send sends n SYNs, each from a new source, and returns how many the
// kernel queued. It stops at the first error; unix.ENOBUFS means the
// device's queue is full, and the same SYN is sent again by the next call.
func (j *SYNInjector) Send(n int) (int, error) {
	to := sockaddrOf(netip.AddrPortFrom(j.dst.Addr(), 0))
	for i := range n {
		src := SYNSource(j.src, j.next)
		m := PutSYN(j.buf[:], src, j.dst, j.rng.Uint32(), j.rng.Uint32(), uint16(j.next))
		if m == 0 {
			return i, fmt.Errorf("synflood: source %s and destination %s are not of one family", src, j.dst)
		}
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
// in turn (neither the network nor the broadcast address; in IPv6 neither
// the Subnet-Router anycast address, all zeros, RFC 4291 §2.6.1, nor all
// ones), then the same again from the next port, starting at 1024. An
// IPv6 prefix's host part is at most its last 32 bits (checkSYNSources).
func SYNSource(prefix netip.Prefix, i uint64) netip.AddrPort {
	hostBits := 32 - prefix.Bits()
	if prefix.Addr().Is6() {
		hostBits = 128 - prefix.Bits()
	}
	hosts := uint64(1)<<hostBits - 2
	port := 1024 + uint16(i/hosts%(65536-1024))
	b := prefix.Masked().Addr().AsSlice()
	low := binary.BigEndian.Uint32(b[len(b)-4:]) + 1 + uint32(i%hosts)
	binary.BigEndian.PutUint32(b[len(b)-4:], low)
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a, port)
}

// PutSYN writes an IP packet carrying a SYN from src to dst into b and
// returns its length: IPv4 (b needs 60 bytes) or IPv6 (80 bytes), by the
// addresses' family; 0 if they differ. The SYN has a Linux client's
// options on a 1500-byte link, so a listener treats it like a real
// client's: MSS 1460 (IPv6: 1440), SACK-permitted, timestamps (TSval tsVal)
// and window scale 7. id is IPv4's Identification; IPv6 has none.
func PutSYN(b []byte, src, dst netip.AddrPort, iss, tsVal uint32, id uint16) int {
	v6 := src.Addr().Is6()
	if v6 != dst.Addr().Is6() {
		return 0
	}
	hl, n, mss := wire.IPv4HeaderLen, synLen, uint16(1460)
	if v6 {
		hl, n, mss = wire.IPv6HeaderLen, synLen6, 1440
	}
	opts := wire.TCPOptions{
		MSS: mss, HasMSS: true, SACKPermitted: true,
		HasTS: true, TSVal: tsVal,
		WScale: 7, HasWScale: true,
	}
	seg := wire.TCP(b[hl:n])
	wire.PutTCPHeader(seg, wire.TCPFields{
		SrcPort: src.Port(), DstPort: dst.Port(),
		Seq: iss, Flags: wire.FlagSYN, Window: 64240,
	}, opts.EncodedLen())
	wire.EncodeTCPOptions(seg[wire.TCPHeaderLen:], &opts)
	seg.ComputeChecksumAddr(src.Addr(), dst.Addr())
	if v6 {
		wire.PutIPv6Header(b, wire.IPv6Fields{Src: src.Addr().As16(), Dst: dst.Addr().As16(), NextHeader: wire.ProtoTCP, HopLimit: 64}, len(seg))
		return n
	}
	wire.PutIPv4Header(b, wire.IPv4Fields{
		Src: src.Addr().As4(), Dst: dst.Addr().As4(),
		Protocol: wire.ProtoTCP, TTL: 64, ID: id, DontFrag: true,
	}, len(seg))
	return n
}
