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
// IPv4 packet, so nothing the stack sends or receives is cut short.
const pcapSnapLenBytes = 65535

// PcapStats counts the packets a PcapTap has written to its capture.
type PcapStats struct {
	ReadPackets    uint64 // packets read from the link and captured
	WrittenPackets uint64 // packets written to the link and captured
}

// PcapTap is a Link that records every packet read from or written to the
// link it wraps into a pcap capture (nanosecond timestamps, LINKTYPE_RAW:
// each record is a bare IP packet). It flushes after every batch, so tshark
// or Wireshark can follow the file while it grows.
//
// Capture failures never disturb traffic: after the first write error the
// tap stops capturing and reports the error through Err.
type PcapTap struct {
	link Link

	mu    sync.Mutex // serializes the capture between readers and writers
	buf   *bufio.Writer
	pcap  *pcapgo.Writer
	err   error
	stats PcapStats
}

// NewPcapTap wraps l and writes the pcap file header to w at once. The tap
// does not close w.
func NewPcapTap(l Link, w io.Writer) (*PcapTap, error) {
	t := &PcapTap{link: l, buf: bufio.NewWriterSize(w, 64<<10)}
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
		t.mu.Lock()
		for i := range n {
			t.capture(bufs[i][:sizes[i]])
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
// of the packet it answers: the capture's order is the wire's.
func (t *PcapTap) WritePackets(pkts [][]byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.link.WritePackets(pkts)
	if n > 0 {
		for _, p := range pkts[:n] {
			t.capture(p)
		}
		t.stats.WrittenPackets += uint64(n)
		t.flush()
	}
	return n, err
}

// capture appends one record. Callers hold t.mu.
func (t *PcapTap) capture(pkt []byte) {
	if t.err != nil {
		return
	}
	ci := gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(pkt), Length: len(pkt)}
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

// Close closes the wrapped link. Every batch is already flushed, so the
// capture is complete; the writer given to NewPcapTap stays open.
func (t *PcapTap) Close() error { return t.link.Close() }
