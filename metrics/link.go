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
//
// It passes the descriptors of a link that has them through (it is a
// netif.DescReader and a netif.DescWriter), so the stack above still takes
// TSO packets whole, leaves checksums to the device and hands it chunks of
// segments (netif.GSOWriter); a read of a TSO packet counts as one packet,
// as the device's own counters count it, and a chunk written as the
// segments it carries.
type LinkCounter struct {
	netif.Link
	dr netif.DescReader
	dw netif.DescWriter
	*linkCounts
}

// linkCounts are a LinkCounter's counters, shared by the counters of
// every queue of one device (Queue).
type linkCounts struct {
	reads, readPkts, readBytes, readErrs     atomic.Uint64
	writes, writePkts, writeBytes, writeErrs atomic.Uint64
}

// NewLinkCounter wraps link.
func NewLinkCounter(link netif.Link) *LinkCounter {
	return &LinkCounter{Link: link, dr: netif.NewDescReader(link), dw: netif.NewDescWriter(link), linkCounts: new(linkCounts)}
}

// Queue wraps another queue of the device l counts (netif.TUN.Queues),
// adding to l's counters: the device's counts are the sum over its
// queues.
func (l *LinkCounter) Queue(link netif.Link) *LinkCounter {
	return &LinkCounter{Link: link, dr: netif.NewDescReader(link), dw: netif.NewDescWriter(link), linkCounts: l.linkCounts}
}

// Waker implements netif.WakerLink: reads pass through to the wrapped
// link, so its waker wakes them.
func (l *LinkCounter) Waker() netif.ReadWaker { return netif.ReadWakerOf(l.Link) }

// ReadPackets implements netif.Link.
func (l *LinkCounter) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	n, err := l.Link.ReadPackets(bufs, sizes)
	var b uint64
	for _, s := range sizes[:max(n, 0)] {
		b += uint64(s)
	}
	l.countRead(n, b, err)
	return n, err
}

// DescRoom implements netif.DescReader.
func (l *LinkCounter) DescRoom() int { return l.dr.DescRoom() }

// ReadDescs implements netif.DescReader.
func (l *LinkCounter) ReadDescs(arena []byte, pkts [][]byte, descs []netif.Desc) (int, error) {
	n, err := l.dr.ReadDescs(arena, pkts, descs)
	var b uint64
	for _, p := range pkts[:max(n, 0)] {
		b += uint64(len(p))
	}
	l.countRead(n, b, err)
	return n, err
}

// countRead counts a read of n packets of b bytes in all.
func (l *LinkCounter) countRead(n int, b uint64, err error) {
	if n > 0 {
		l.reads.Add(1)
		l.readPkts.Add(uint64(n))
		l.readBytes.Add(b)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
		l.readErrs.Add(1)
	}
}

// WritePackets implements netif.Link.
func (l *LinkCounter) WritePackets(pkts [][]byte) (int, error) {
	n, err := l.Link.WritePackets(pkts)
	l.countWrite(pkts, nil, n, err)
	return n, err
}

// WriteDescs implements netif.DescWriter.
func (l *LinkCounter) WriteDescs(pkts [][]byte, descs []netif.Desc) (int, error) {
	n, err := l.dw.WriteDescs(pkts, descs)
	l.countWrite(pkts, descs, n, err)
	return n, err
}

// WritesGSO implements netif.GSOWriter: the wrapped link's answer. A GSO
// packet the stack writes counts as the segments it carries, and their
// bytes as those segments' (netif.Desc.Unpacked), so that the counts are
// the stack's segments whether or not it hands them over in chunks.
func (l *LinkCounter) WritesGSO() bool { return netif.WritesGSO(l.dw) }

// countWrite counts a write of pkts (with descs, if not nil) that sent n
// of them.
func (l *LinkCounter) countWrite(pkts [][]byte, descs []netif.Desc, n int, err error) {
	if n > 0 {
		var b, segs uint64
		for i, p := range pkts[:n] {
			if descs != nil {
				s, nb := descs[i].Unpacked(p)
				segs, b = segs+uint64(s), b+uint64(nb)
				continue
			}
			segs++
			b += uint64(len(p))
		}
		l.writes.Add(1)
		l.writePkts.Add(segs)
		l.writeBytes.Add(b)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		l.writeErrs.Add(1)
	}
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
