package netif

import (
	"bufio"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// pcapSnapLenBytes is the snapshot length in the file header: the largest
// MTU a link has, so no packet of either family the stack sends or
// receives is cut short.
const pcapSnapLenBytes = 65535

// PcapStats counts the packets a PcapTap has written to its capture.
type PcapStats struct {
	ReadPackets    uint64 // packets read from the link and captured
	WrittenPackets uint64 // packets written to the link and captured
}

// PcapTap is a Link that records every packet read from or written to the
// link it wraps into a pcap capture (nanosecond timestamps, LINKTYPE_RAW:
// each record is a bare IP packet). It flushes after every batch, so tshark
// or Wireshark can follow the file while it grows. LINKTYPE_RAW holds both
// IPv4 and IPv6 packets: readers tell them apart by the version nibble.
//
// Capture failures never disturb traffic: after the first write error the
// tap stops capturing and reports the error through Err.
//
// By default each packet is stamped as it is recorded, a written batch
// after the link took it; PcapStampAtHandOver stamps a written batch
// before the write instead.
type PcapTap struct {
	link     Link
	handOver bool // PcapStampAtHandOver

	mu    sync.Mutex // serializes the capture between readers and writers
	buf   *bufio.Writer
	pcap  *pcapgo.Writer
	err   error
	stats PcapStats
}

// PcapOption changes how a PcapTap records.
type PcapOption func(*PcapTap)

// PcapStampAtHandOver stamps each batch once, at the moment it crosses the
// tap: a batch read when the read returns, a batch written before the
// write, and records it then, whole, whatever part of it the link takes.
//
// A write to a TUN device runs the receiving kernel's input path inside
// the system call, so a packet stamped after write(2) returns can come out
// later than the reply it caused (an RST before the data it answers, or a
// kernel client's read() = ECONNRESET, timed by the client, before the
// RST). Stamped at hand-over, causes come before effects in a timeline
// that merges the capture with what the kernel's sockets did. The write
// itself runs outside the tap's lock.
func PcapStampAtHandOver() PcapOption {
	return func(t *PcapTap) { t.handOver = true }
}

// NewPcapTap wraps l and writes the pcap file header to w at once. The tap
// does not close w.
func NewPcapTap(l Link, w io.Writer, opts ...PcapOption) (*PcapTap, error) {
	t := &PcapTap{link: l, buf: bufio.NewWriterSize(w, 64<<10)}
	for _, o := range opts {
		o(t)
	}
	t.pcap = pcapgo.NewWriterNanos(t.buf)
	if err := t.pcap.WriteFileHeader(pcapSnapLenBytes, layers.LinkTypeRaw); err != nil {
		return nil, fmt.Errorf("netif: pcap header: %w", err)
	}
	if err := t.buf.Flush(); err != nil {
		return nil, fmt.Errorf("netif: pcap header: %w", err)
	}
	return t, nil
}

// ReadPackets implements Link, capturing the packets read.
func (t *PcapTap) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	n, err := t.link.ReadPackets(bufs, sizes)
	if n > 0 {
		var at time.Time // zero: each packet stamped as recorded
		if t.handOver {
			at = time.Now()
		}
		t.mu.Lock()
		for i := range n {
			t.capture(at, bufs[i][:sizes[i]])
		}
		t.stats.ReadPackets += uint64(n)
		t.flush()
		t.mu.Unlock()
	}
	return n, err
}

// WritePackets implements Link, capturing the packets the link accepted.
//
// The tap's lock is held across the write and the capture, so a reply the
// peer sends at once, read on another goroutine, cannot be recorded ahead
// of the packet it answers: the capture's order is the wire's. With
// PcapStampAtHandOver the batch is recorded before the write, which gives
// the same order without holding the lock across the write.
func (t *PcapTap) WritePackets(pkts [][]byte) (int, error) {
	if t.handOver {
		at := time.Now()
		t.mu.Lock()
		for _, p := range pkts {
			t.capture(at, p)
		}
		t.stats.WrittenPackets += uint64(len(pkts))
		t.flush()
		t.mu.Unlock()
		return t.link.WritePackets(pkts)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.link.WritePackets(pkts)
	if n > 0 {
		for _, p := range pkts[:n] {
			t.capture(time.Time{}, p)
		}
		t.stats.WrittenPackets += uint64(n)
		t.flush()
	}
	return n, err
}

// capture appends one record stamped at, or now if at is zero. Callers
// hold t.mu.
func (t *PcapTap) capture(at time.Time, pkt []byte) {
	if t.err != nil {
		return
	}
	if at.IsZero() {
		at = time.Now()
	}
	ci := gopacket.CaptureInfo{Timestamp: at, CaptureLength: len(pkt), Length: len(pkt)}
	if err := t.pcap.WritePacket(ci, pkt); err != nil {
		t.err = fmt.Errorf("netif: pcap write: %w", err)
	}
}

// flush pushes a batch to the file. Callers hold t.mu.
func (t *PcapTap) flush() {
	if t.err != nil {
		return
	}
	if err := t.buf.Flush(); err != nil {
		t.err = fmt.Errorf("netif: pcap write: %w", err)
	}
}

// Paused calls f while the tap records nothing, so that the writer given to
// NewPcapTap holds whole batches, flushed: f may copy a capture that is
// still growing. f must not use the tap.
func (t *PcapTap) Paused(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f()
}

// Stats returns how many packets have been captured in each direction.
// Packets are counted even after a capture error; see Err.
func (t *PcapTap) Stats() PcapStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Err returns the first error writing the capture, after which the tap
// stopped capturing.
func (t *PcapTap) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// MTU implements Link.
func (t *PcapTap) MTU() int { return t.link.MTU() }

// Waker implements WakerLink: reads pass through to the wrapped link, so
// its waker cuts them short. Without it a stack over a capture would run
// its timers without first taking in what the link holds (ReadWaker): a
// tail loss probe could fire while the ACK it waits for sat unread.
func (t *PcapTap) Waker() ReadWaker { return ReadWakerOf(t.link) }

// Close closes the wrapped link. Every batch is already flushed, so the
// capture is complete; the writer given to NewPcapTap stays open.
func (t *PcapTap) Close() error { return t.link.Close() }
