package lab

import (
	"bufio"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"tunstack/netif"
)

// stampTap is the capture point at the server's side of the wire. It
// writes the same pcap as netif.PcapTap (nanosecond stamps, LINKTYPE_RAW)
// but stamps a packet being written before the write, not after: a write
// to a TUN runs the receiving kernel's input path inside the system call,
// so a packet stamped after write(2) returns can come out later than the
// reply it caused (an RST before the data it answers, or a client's
// read() = ECONNRESET before the RST). Stamped at hand-over, causes come
// before effects in every timeline.
type stampTap struct {
	link netif.Link

	mu   sync.Mutex
	buf  *bufio.Writer
	pcap *pcapgo.Writer
	err  error // first capture error; capture stops, traffic does not
}

func newStampTap(l netif.Link, w io.Writer) (*stampTap, error) {
	t := &stampTap{link: l, buf: bufio.NewWriterSize(w, 64<<10)}
	t.pcap = pcapgo.NewWriterNanos(t.buf)
	if err := t.pcap.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		return nil, fmt.Errorf("lab: pcap header: %w", err)
	}
	return t, t.buf.Flush()
}

func (t *stampTap) capture(at time.Time, pkts [][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range pkts {
		if t.err != nil {
			return
		}
		ci := gopacket.CaptureInfo{Timestamp: at, CaptureLength: len(p), Length: len(p)}
		t.err = t.pcap.WritePacket(ci, p)
	}
	if t.err == nil {
		t.err = t.buf.Flush()
	}
}

// ReadPackets implements netif.Link; packets are stamped when read.
func (t *stampTap) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	n, err := t.link.ReadPackets(bufs, sizes)
	if n > 0 {
		pkts := make([][]byte, n)
		for i := range n {
			pkts[i] = bufs[i][:sizes[i]]
		}
		t.capture(time.Now(), pkts)
	}
	return n, err
}

// WritePackets implements netif.Link; packets are stamped before the write.
func (t *stampTap) WritePackets(pkts [][]byte) (int, error) {
	t.capture(time.Now(), pkts)
	return t.link.WritePackets(pkts)
}

func (t *stampTap) MTU() int     { return t.link.MTU() }
func (t *stampTap) Close() error { return t.link.Close() }
