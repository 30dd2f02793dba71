// Package netif holds the links the stacks run on (a TUN device, an
// in-memory pipe), the pcap tap and impairment that wrap any link, and the
// ICMP echo reply the stack answers pings with. Links carry IP packets of
// both families, IPv4 and IPv6.
package netif

// Link moves IP packets. Both methods work in batches so that a driver can
// amortize system calls; a link that cannot batch handles one at a time.
//
// ReadPackets blocks until at least one packet is available, then copies up
// to len(bufs) packets, packet i into bufs[i], and records its length in
// sizes[i]. It returns the number of packets read. After Close it returns
// net.ErrClosed. Each buffer should hold MTU() bytes: what a link does with
// a packet that does not fit differs (the pipe refuses with
// io.ErrShortBuffer, a TUN device truncates). Packets are IPv4 or IPv6;
// callers check the version. A TUN link delivers what the kernel sends
// on its own as well, such as IPv6 router solicitations and MLD reports.
//
// WritePackets sends pkts in order and returns how many were sent. The
// link does not retain the slices after it returns.
//
// MTU is the largest IP packet the link carries, in bytes.
type Link interface {
	ReadPackets(bufs [][]byte, sizes []int) (int, error)
	WritePackets(pkts [][]byte) (int, error)
	MTU() int
	Close() error
}
