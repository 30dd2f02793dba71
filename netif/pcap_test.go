package netif

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"tunstack/internal/testtools"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// tcpSegment builds a TCP packet with gopacket, over IPv4 or IPv6 as the
// addresses are.
func tcpSegment(t *testing.T, src, dst net.IP, srcPort, dstPort uint16, payload string) []byte {
	t.Helper()
	var ip gopacket.NetworkLayer
	var ipLayer gopacket.SerializableLayer
	if src.To4() != nil {
		v4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
		ip, ipLayer = v4, v4
	} else {
		v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
		ip, ipLayer = v6, v6
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(srcPort), DstPort: layers.TCPPort(dstPort), Seq: 1000, ACK: true, PSH: true, Window: 65535}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ipLayer, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

var (
	hostIP   = net.IPv4(198, 18, 0, 1)
	stackIP  = net.IPv4(198, 18, 0, 2)
	stackIP6 = net.ParseIP("fd00:7475:6e73::2")
)

// readCapture decodes every record of the pcap file at path.
func readCapture(t *testing.T, path string) ([]gopacket.CaptureInfo, [][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("pcap header: %v", err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Fatalf("link type %v, want raw IP", r.LinkType())
	}
	var cis []gopacket.CaptureInfo
	var pkts [][]byte
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return cis, pkts
		}
		if err != nil {
			t.Fatalf("record %d: %v", len(pkts), err)
		}
		cis, pkts = append(cis, ci), append(pkts, data)
	}
}

func TestPcapTapRecordsReadAndWrittenPacketsDecodableByGopacket(t *testing.T) {
	a, b := NewPipe(1500)
	defer b.Close()
	path := filepath.Join(t.TempDir(), "tap.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	tap, err := NewPcapTap(a, f)
	if err != nil {
		t.Fatal(err)
	}
	out1 := tcpSegment(t, stackIP, hostIP, 80, 40000, "HTTP/1.1 200 OK\r\n")
	out2 := tcpSegment(t, stackIP, hostIP, 80, 40000, "hello")
	in1 := tcpSegment(t, hostIP, stackIP, 40000, 80, "GET / HTTP/1.1\r\n")
	if n, err := tap.WritePackets([][]byte{out1, out2}); n != 2 || err != nil {
		t.Fatalf("WritePackets = %d, %v", n, err)
	}
	b.WritePackets([][]byte{in1})
	bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
	if n, err := tap.ReadPackets(bufs, sizes); n != 1 || err != nil {
		t.Fatalf("ReadPackets = %d, %v", n, err)
	}
	// No Close: every batch is flushed, so the file is readable now.
	cis, pkts := readCapture(t, path)
	want := [][]byte{out1, out2, in1}
	if len(pkts) != len(want) {
		t.Fatalf("capture holds %d packets, want %d", len(pkts), len(want))
	}
	for i, p := range pkts {
		if !bytes.Equal(p, want[i]) {
			t.Errorf("record %d differs from the packet", i)
		}
		if cis[i].Length != len(want[i]) || cis[i].CaptureLength != len(want[i]) {
			t.Errorf("record %d lengths %d/%d, want %d", i, cis[i].CaptureLength, cis[i].Length, len(want[i]))
		}
		if cis[i].Timestamp.Before(start.Truncate(time.Microsecond)) || cis[i].Timestamp.After(time.Now()) ||
			(i > 0 && cis[i].Timestamp.Before(cis[i-1].Timestamp)) {
			t.Errorf("record %d timestamp %v outside the test or out of order", i, cis[i].Timestamp)
		}
		pkt := gopacket.NewPacket(p, layers.LayerTypeIPv4, gopacket.Default)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil || pkt.ErrorLayer() != nil {
			t.Errorf("record %d does not decode as IPv4/TCP: %v", i, pkt)
		}
	}
	if st := tap.Stats(); st.WrittenPackets != 2 || st.ReadPackets != 1 {
		t.Errorf("Stats = %+v, want 2 written, 1 read", st)
	}
	if err := tap.Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
	if err := tap.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WritePackets([][]byte{in1}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Close did not close the wrapped link: %v", err)
	}
}

func TestPcapTapCaptureIsReadableByTshark(t *testing.T) {
	testtools.Need(t, "tshark")
	a, _ := NewPipe(1500)
	defer a.Close()
	path := filepath.Join(t.TempDir(), "tap.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tap, err := NewPcapTap(a, f)
	if err != nil {
		t.Fatal(err)
	}
	// LINKTYPE_RAW carries either family: each record's version nibble
	// tells the reader which.
	tap.WritePackets([][]byte{
		tcpSegment(t, stackIP, hostIP, 80, 40001, "x"),
		tcpSegment(t, stackIP6, net.ParseIP("fd00:7475:6e73::1"), 80, 40002, "y"),
	})
	out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.checksum.status", "-o", "tcp.check_checksum:TRUE").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	// 1: checksum good.
	want := "198.18.0.2\t\t80\t40001\t1\n\tfd00:7475:6e73::2\t80\t40002\t1"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("tshark read %q, want %q: the IPv4 and the IPv6 segment, each with a good checksum", got, want)
	}
}

type failingWriter struct{ writes int }

func (w *failingWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes > 1 { // the file header succeeds, records fail
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestPcapTapCaptureErrorDoesNotDisturbTraffic(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	tap, err := NewPcapTap(a, &failingWriter{})
	if err != nil {
		t.Fatal(err)
	}
	pkt := tcpSegment(t, stackIP, hostIP, 80, 40000, "x")
	for range 2 {
		if n, err := tap.WritePackets([][]byte{pkt}); n != 1 || err != nil {
			t.Fatalf("WritePackets with a failing capture = %d, %v", n, err)
		}
	}
	bufs, sizes := [][]byte{make([]byte, 1500), make([]byte, 1500)}, []int{0, 0}
	if n, _ := b.ReadPackets(bufs, sizes); n != 2 {
		t.Fatalf("peer read %d packets, want 2", n)
	}
	if err := tap.Err(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Err = %v, want the writer's error", err)
	}
}

func TestPcapTapDoesNotAllocatePerPacket(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	tap, err := NewPcapTap(a, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	pkts := [][]byte{make([]byte, 1400), make([]byte, 60)}
	bufs, sizes := [][]byte{make([]byte, 1500), make([]byte, 1500)}, []int{0, 0}
	allocs := testing.AllocsPerRun(1000, func() {
		tap.WritePackets(pkts)
		b.ReadPackets(bufs, sizes)
		b.WritePackets(pkts)
		tap.ReadPackets(bufs, sizes)
	})
	if allocs != 0 {
		t.Fatalf("tapped write+read allocates %.1f times, want 0", allocs)
	}
}

// BenchmarkPcapTapWrite measures the capture's cost per packet: a
// 1500-byte packet written through the tap (recorded, then flushed with
// its batch) to a pipe whose far end drops what it cannot queue.
func BenchmarkPcapTapWrite(b *testing.B) {
	a, _ := NewPipe(1500)
	tap, err := NewPcapTap(a, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer tap.Close()
	pkt := [][]byte{make([]byte, 1500)}
	b.SetBytes(1500)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tap.WritePackets(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// slowLink takes a while over every write, as a TUN write that runs the
// receiving kernel's input path does, and accepts only the first packet.
type slowLink struct {
	Link
	took time.Duration
}

func (s slowLink) WritePackets(pkts [][]byte) (int, error) {
	time.Sleep(s.took)
	return 1, errors.New("link full")
}

func TestPcapTapStampAtHandOverStampsAWriteBeforeItWholeAndOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPipe(1500)
		defer b.Close()
		const took = 10 * time.Millisecond
		for _, handOver := range []bool{false, true} {
			var capture bytes.Buffer
			var opts []PcapOption
			if handOver {
				opts = append(opts, PcapStampAtHandOver())
			}
			tap, err := NewPcapTap(slowLink{a, took}, &capture, opts...)
			if err != nil {
				t.Fatal(err)
			}
			before := time.Now()
			pkts := [][]byte{tcpSegment(t, stackIP, hostIP, 80, 40000, "a"), tcpSegment(t, stackIP, hostIP, 80, 40000, "b")}
			if n, err := tap.WritePackets(pkts); n != 1 || err == nil {
				t.Fatalf("WritePackets = %d, %v; want the link's 1 and its error", n, err)
			}
			var cis []gopacket.CaptureInfo
			tap.Paused(func() {
				r, err := pcapgo.NewReader(bytes.NewReader(capture.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				for {
					_, ci, err := r.ReadPacketData()
					if err != nil {
						break
					}
					cis = append(cis, ci)
				}
			})
			switch {
			case !handOver && (len(cis) != 1 || cis[0].Timestamp.Before(before.Add(took))):
				t.Errorf("default: records %+v, want the one packet the link took, stamped after the write", cis)
			case handOver && (len(cis) != 2 || !cis[0].Timestamp.Equal(before) || !cis[1].Timestamp.Equal(before)):
				t.Errorf("hand-over: records %+v, want both packets stamped %v, before the write", cis, before)
			}
		}
	})
}

// wakerEnd is a pipe end whose reads can be woken, as a TUN's.
type wakerEnd struct {
	*PipeEnd
	wakes int
}

func (w *wakerEnd) WakeRead()     { w.wakes++ }
func (w *wakerEnd) QueueLen() int { return 9 }

// TestPcapTapPassesTheWakerThrough: a stack over a capture wakes the
// reader of the link underneath before it runs its timers, as it would
// without the capture; over a link without a waker there is none.
func TestPcapTapPassesTheWakerThrough(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	defer b.Close()
	plain, err := NewPcapTap(a, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if w := ReadWakerOf(plain); w != nil {
		t.Errorf("a capture over a pipe end has waker %v, want none", w)
	}
	we := &wakerEnd{PipeEnd: b}
	tap, err := NewPcapTap(we, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	w := ReadWakerOf(tap)
	if w == nil {
		t.Fatal("a capture over a link with a waker has none")
	}
	w.WakeRead()
	if we.wakes != 1 || w.QueueLen() != 9 {
		t.Errorf("the capture's waker made %d wakes of the link's and reports a queue of %d; want 1 and 9", we.wakes, w.QueueLen())
	}
}
