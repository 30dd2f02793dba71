package metrics

import (
	"errors"
	"io"
	"net"
	"sync/atomic"

	"tunstack/netif"
)

// LinkCounter is a netif.Link that counts what passes through the link it
// wraps: the ReadPackets and WritePackets calls that moved packets, the
// packets and their bytes, and the failed calls (a closed link's are not
// failures). It adds a few atomic
// additions per batch and copies nothing. serve puts it right above the
// TUN device, so it counts what the device gave and took.
type LinkCounter struct {
	netif.Link
	reads, readPkts, readBytes, readErrs     atomic.Uint64
	writes, writePkts, writeBytes, writeErrs atomic.Uint64
}

// NewLinkCounter wraps link.
func NewLinkCounter(link netif.Link) *LinkCounter { return &LinkCounter{Link: link} }

// ReadPackets implements netif.Link.
func (l *LinkCounter) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	n, err := l.Link.ReadPackets(bufs, sizes)
	if n > 0 {
		var b uint64
		for _, s := range sizes[:n] {
			b += uint64(s)
		}
		l.reads.Add(1)
		l.readPkts.Add(uint64(n))
		l.readBytes.Add(b)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
		l.readErrs.Add(1)
	}
	return n, err
}

// WritePackets implements netif.Link.
func (l *LinkCounter) WritePackets(pkts [][]byte) (int, error) {
	n, err := l.Link.WritePackets(pkts)
	if n > 0 {
		var b uint64
		for _, p := range pkts[:n] {
			b += uint64(len(p))
		}
		l.writes.Add(1)
		l.writePkts.Add(uint64(n))
		l.writeBytes.Add(b)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		l.writeErrs.Add(1)
	}
	return n, err
}

// LinkStats are a LinkCounter's counts.
type LinkStats struct {
	Reads, ReadPackets, ReadBytes, ReadErrors     uint64
	Writes, WritePackets, WriteBytes, WriteErrors uint64
}

// Stats reads the counts.
func (l *LinkCounter) Stats() LinkStats {
	return LinkStats{
		Reads: l.reads.Load(), ReadPackets: l.readPkts.Load(), ReadBytes: l.readBytes.Load(), ReadErrors: l.readErrs.Load(),
		Writes: l.writes.Load(), WritePackets: l.writePkts.Load(), WriteBytes: l.writeBytes.Load(), WriteErrors: l.writeErrs.Load(),
	}
}
