package viz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// pkt is one handmade TCP segment.
type pkt struct {
	at            time.Duration
	fromServer    bool
	seq, ack      uint32
	flags         string // S, A, F, R, P
	win           uint16
	len           int
	wscale        int      // -1 none
	sack          []uint32 // left, right pairs
	snap          int      // if > 0, the record keeps only this many bytes
	udp           bool     // not TCP at all
	ethernetFrame bool
}

var (
	server = netip.MustParseAddrPort("10.0.0.2:80")
	client = netip.MustParseAddrPort("10.0.0.1:5000")
	t0     = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// serialize builds the IPv4 packet (or Ethernet frame) of p.
func serialize(t *testing.T, p pkt, ether bool) []byte {
	t.Helper()
	src, dst := client, server
	if p.fromServer {
		src, dst = server, client
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
	var ls []gopacket.SerializableLayer
	if ether {
		ls = append(ls, &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4})
	}
	if p.udp {
		ip.Protocol = layers.IPProtocolUDP
		udp := &layers.UDP{SrcPort: 53, DstPort: 53}
		udp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, ip, udp, gopacket.Payload([]byte("dns?")))
	} else {
		tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: p.seq, Ack: p.ack, Window: p.win}
		for _, f := range p.flags {
			switch f {
			case 'S':
				tcp.SYN = true
			case 'A':
				tcp.ACK = true
			case 'F':
				tcp.FIN = true
			case 'R':
				tcp.RST = true
			case 'P':
				tcp.PSH = true
			}
		}
		if p.wscale >= 0 && tcp.SYN {
			tcp.Options = append(tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{byte(p.wscale)}})
		}
		if len(p.sack) > 0 {
			d := make([]byte, 4*len(p.sack))
			for i, v := range p.sack {
				binary.BigEndian.PutUint32(d[4*i:], v)
			}
			tcp.Options = append(tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionLength: uint8(2 + len(d)), OptionData: d})
		}
		tcp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, ip, tcp, gopacket.Payload(make([]byte, p.len)))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writePcap writes the packets as a pcap of link type lt.
func writePcap(t *testing.T, pkts []pkt, lt layers.LinkType) []byte {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65536, lt); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		data := serialize(t, p, lt == layers.LinkTypeEthernet)
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(p.at), CaptureLength: len(data), Length: len(data)}
		if p.snap > 0 && p.snap < len(data) {
			data = data[:p.snap]
			ci.CaptureLength = p.snap
		}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

const (
	cISN = 1000
	sISN = 5000
)

// lossAndZeroWindow: a handshake with window scaling, three segments of
// 100 bytes, the second lost and SACKed around, retransmitted and
// reported twice by a D-SACK; then a zero window, Linux's probe at
// SND.UNA-1, a one-byte probe, the window reopened, and the server's FIN.
func lossAndZeroWindow() []pkt {
	ms := time.Millisecond
	return []pkt{
		{at: 0, seq: cISN, flags: "S", win: 64240, wscale: 7},
		{at: 10 * ms, fromServer: true, seq: sISN, ack: cISN + 1, flags: "SA", win: 65535, wscale: 2},
		{at: 20 * ms, seq: cISN + 1, ack: sISN + 1, flags: "A", win: 500, wscale: -1},
		{at: 30 * ms, fromServer: true, seq: sISN + 1, ack: cISN + 1, flags: "A", win: 1000, len: 100, wscale: -1},
		{at: 31 * ms, fromServer: true, seq: sISN + 101, ack: cISN + 1, flags: "A", win: 1000, len: 100, wscale: -1},
		{at: 32 * ms, fromServer: true, seq: sISN + 201, ack: cISN + 1, flags: "PA", win: 1000, len: 100, wscale: -1},
		{at: 40 * ms, seq: cISN + 1, ack: sISN + 101, flags: "A", win: 500, wscale: -1},
		{at: 41 * ms, seq: cISN + 1, ack: sISN + 101, flags: "A", win: 500, wscale: -1, sack: []uint32{sISN + 201, sISN + 301}},
		{at: 50 * ms, fromServer: true, seq: sISN + 101, ack: cISN + 1, flags: "A", win: 1000, len: 100, wscale: -1},
		{at: 60 * ms, seq: cISN + 1, ack: sISN + 301, flags: "A", win: 500, wscale: -1, sack: []uint32{sISN + 101, sISN + 201}},
		{at: 70 * ms, seq: cISN + 1, ack: sISN + 301, flags: "A", win: 0, wscale: -1},
		{at: 80 * ms, fromServer: true, seq: sISN + 300, ack: cISN + 1, flags: "A", win: 1000, wscale: -1},
		{at: 90 * ms, fromServer: true, seq: sISN + 301, ack: cISN + 1, flags: "A", win: 1000, len: 1, wscale: -1},
		{at: 100 * ms, seq: cISN + 1, ack: sISN + 302, flags: "A", win: 500, wscale: -1},
		{at: 110 * ms, fromServer: true, seq: sISN + 302, ack: cISN + 1, flags: "FA", win: 1000, wscale: -1},
	}
}

func readBytes(t *testing.T, b []byte) *Capture {
	t.Helper()
	c, err := ReadCapture(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReadCaptureSeriesOfAHandmadeConnection(t *testing.T) {
	c := readBytes(t, writePcap(t, lossAndZeroWindow(), layers.LinkTypeRaw))
	if c.Records != 15 || c.NonTCP != 0 || c.Truncated != nil || len(c.Conns) != 1 {
		t.Fatalf("records %d, non-TCP %d, truncated %v, %d connections; want 15, 0, nil, 1", c.Records, c.NonTCP, c.Truncated, len(c.Conns))
	}
	cn := c.Conns[0]
	if cn.Local != server || cn.Remote != client || cn.Name() != "10.0.0.2:80-10.0.0.1:5000" {
		t.Fatalf("connection %s, want the SYN's receiver first: 10.0.0.2:80-10.0.0.1:5000", cn.Name())
	}
	f := cn.Out
	want := []Segment{
		{T: 0.010, Seq: 0, SYN: true},
		{T: 0.030, Seq: 1, Len: 100},
		{T: 0.031, Seq: 101, Len: 100},
		{T: 0.032, Seq: 201, Len: 100},
		{T: 0.050, Seq: 101, Len: 100, Retransmission: true},
		{T: 0.080, Seq: 300, Probe: true},
		{T: 0.090, Seq: 301, Len: 1, Probe: true},
		{T: 0.110, Seq: 302, FIN: true},
	}
	if !reflect.DeepEqual(f.Segments, want) {
		t.Errorf("server's segments:\n got %+v\nwant %+v", f.Segments, want)
	}
	if f.Bytes != 401 || f.Retransmissions != 1 || f.Probes != 2 || f.WScale != 2 || !f.SYN {
		t.Errorf("bytes %d, retransmissions %d, probes %d, wscale %d, SYN %v; want 401, 1, 2, 2, true", f.Bytes, f.Retransmissions, f.Probes, f.WScale, f.SYN)
	}
	// The client's SYN offers 64240 unscaled (RFC 7323 §2.2); later
	// windows are shifted by its scale of 7.
	wantAcks := []Ack{
		{T: 0.020, Ack: 1, Window: 500 << 7},
		{T: 0.040, Ack: 101, Window: 500 << 7},
		{T: 0.041, Ack: 101, Window: 500 << 7},
		{T: 0.060, Ack: 301, Window: 500 << 7},
		{T: 0.070, Ack: 301, Window: 0},
		{T: 0.100, Ack: 302, Window: 500 << 7},
	}
	if !reflect.DeepEqual(f.Acks, wantAcks) {
		t.Errorf("the client's ACKs of the server's data:\n got %+v\nwant %+v", f.Acks, wantAcks)
	}
	wantSACK := []Block{{T: 0.041, Left: 201, Right: 301}, {T: 0.060, Left: 101, Right: 201, DSACK: true}}
	if !reflect.DeepEqual(f.SACKs, wantSACK) {
		t.Errorf("SACK blocks:\n got %+v\nwant %+v", f.SACKs, wantSACK)
	}
	// The other way: the client's SYN, and the server's ACKs of it, whose
	// windows the server's scale of 2 multiplies (its SYN-ACK's is not).
	in := cn.In
	if len(in.Segments) != 1 || !in.Segments[0].SYN || in.Bytes != 0 {
		t.Errorf("client's segments %+v, want its SYN alone", in.Segments)
	}
	if len(in.Acks) != 8 || in.Acks[0] != (Ack{T: 0.010, Ack: 1, Window: 65535}) || in.Acks[1] != (Ack{T: 0.030, Ack: 1, Window: 4000}) {
		t.Errorf("server's ACKs of the client %+v; want 8, the first 65535 bytes unscaled, the next 1000<<2", in.Acks)
	}

	s := TimeSeq(f, Window{})
	if len(s.Data) != 6 || len(s.Retransmissions) != 1 || len(s.Probes) != 2 || len(s.SACKs) != 1 || len(s.DSACKs) != 1 || len(s.Acks) != 6 {
		t.Errorf("series: %d data, %d retransmissions, %d probes, %d SACK, %d D-SACK, %d ACKs; want 6, 1, 2, 1, 1, 6",
			len(s.Data), len(s.Retransmissions), len(s.Probes), len(s.SACKs), len(s.DSACKs), len(s.Acks))
	}
	// Zoomed, the ACK line starts at the value it had when the window
	// opens, and only what is inside is kept.
	z := TimeSeq(f, Window{From: 0.045, To: 0.085, HasFrom: true, HasTo: true})
	wantZ := []Ack{{T: 0.045, Ack: 101, Window: 500 << 7}, {T: 0.060, Ack: 301, Window: 500 << 7}, {T: 0.070, Ack: 301, Window: 0}}
	if !reflect.DeepEqual(z.Acks, wantZ) || len(z.Retransmissions) != 1 || len(z.Data) != 0 || len(z.Probes) != 1 || len(z.SACKs) != 0 || len(z.DSACKs) != 1 {
		t.Errorf("zoomed 45-85 ms: acks %+v, %d retransmissions, %d data, %d probes, %d SACK, %d D-SACK; want %+v, 1, 0, 1, 0, 1",
			z.Acks, len(z.Retransmissions), len(z.Data), len(z.Probes), len(z.SACKs), len(z.DSACKs), wantZ)
	}
}

func TestReadCaptureSameSeriesFromEthernetAndPcapng(t *testing.T) {
	raw := readBytes(t, writePcap(t, lossAndZeroWindow(), layers.LinkTypeRaw)).Conns[0].Out
	eth := readBytes(t, writePcap(t, lossAndZeroWindow(), layers.LinkTypeEthernet))
	if eth.LinkType != layers.LinkTypeEthernet || len(eth.Conns) != 1 || !reflect.DeepEqual(eth.Conns[0].Out.Segments, raw.Segments) || !reflect.DeepEqual(eth.Conns[0].Out.Acks, raw.Acks) {
		t.Errorf("Ethernet capture gives other series than the raw one")
	}
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range lossAndZeroWindow() {
		data := serialize(t, p, true)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: t0.Add(p.at), CaptureLength: len(data), Length: len(data)}, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	ng := readBytes(t, b.Bytes())
	if len(ng.Conns) != 1 || !reflect.DeepEqual(ng.Conns[0].Out.Segments, raw.Segments) || !reflect.DeepEqual(ng.Conns[0].Out.SACKs, raw.SACKs) {
		t.Errorf("pcapng capture gives other series than the pcap")
	}
}

func TestReadCaptureLengthFromIPHeaderWhenSnapped(t *testing.T) {
	pkts := lossAndZeroWindow()[:4]
	pkts[3].len, pkts[3].snap = 1400, 60 // tcpdump -s 60: headers and 20 bytes
	c := readBytes(t, writePcap(t, pkts, layers.LinkTypeRaw))
	segs := c.Conns[0].Out.Segments
	if got := segs[len(segs)-1]; got.Len != 1400 || got.End() != 1401 {
		t.Errorf("snapped segment %+v, want 1400 bytes from the IP length", got)
	}
}

func TestReadCaptureUnwrapsSequenceNumbers(t *testing.T) {
	var isn uint32 = 0xffffff00 // 256 below the wrap
	ms := time.Millisecond
	pkts := []pkt{
		{at: 0, seq: 7, flags: "S", win: 1000, wscale: -1},
		{at: ms, fromServer: true, seq: isn, ack: 8, flags: "SA", win: 1000, wscale: -1},
		{at: 2 * ms, fromServer: true, seq: isn + 1, ack: 8, flags: "A", win: 1000, len: 200, wscale: -1},
		{at: 3 * ms, fromServer: true, seq: isn + 201, ack: 8, flags: "A", win: 1000, len: 200, wscale: -1}, // crosses 2^32
		{at: 4 * ms, fromServer: true, seq: isn + 401, ack: 8, flags: "A", win: 1000, len: 200, wscale: -1}, // past it
		{at: 5 * ms, seq: 8, ack: isn + 601, flags: "A", win: 1000, wscale: -1},
	}
	f := readBytes(t, writePcap(t, pkts, layers.LinkTypeRaw)).Conns[0].Out
	var seqs []int64
	for _, s := range f.Segments {
		seqs = append(seqs, s.Seq)
	}
	if !reflect.DeepEqual(seqs, []int64{0, 1, 201, 401}) || f.Retransmissions != 0 {
		t.Errorf("relative sequence numbers %v with %d retransmissions; want [0 1 201 401] and none", seqs, f.Retransmissions)
	}
	if n := len(f.Acks); n == 0 || f.Acks[n-1].Ack != 601 {
		t.Errorf("last ACK %+v, want 601", f.Acks)
	}
}

func TestReadCaptureNewISNOnSameTupleIsANewConnection(t *testing.T) {
	ms := time.Millisecond
	pkts := []pkt{
		{at: 0, seq: 100, flags: "S", win: 1000, wscale: -1},
		{at: ms, fromServer: true, seq: 0, ack: 101, flags: "RA", wscale: -1},
		{at: 2 * ms, seq: 100, flags: "S", win: 1000, wscale: -1},   // the same SYN again: a retransmission
		{at: 3 * ms, seq: 90000, flags: "S", win: 1000, wscale: -1}, // a new ISN: a new connection
		{at: 4 * ms, fromServer: true, seq: 7, ack: 90001, flags: "SA", win: 1000, wscale: -1},
	}
	c := readBytes(t, writePcap(t, pkts, layers.LinkTypeRaw))
	if len(c.Conns) != 2 {
		t.Fatalf("%d connections, want 2", len(c.Conns))
	}
	first := c.Conns[0].In
	if len(first.Resets) != 1 || first.Resets[0] != (Ack{T: 0.001, Ack: 1, Window: -1}) {
		t.Errorf("the client's flow records the server's RST as %+v, want at 1 ms, acknowledging its SYN (1)", first.Resets)
	}
	if len(first.Segments) != 2 || first.Retransmissions != 1 || len(c.Conns[0].Out.Segments) != 1 || !c.Conns[0].Out.Segments[0].RST {
		t.Errorf("first connection: client %+v, server %+v; want a SYN and its retransmission, and a RST", first.Segments, c.Conns[0].Out.Segments)
	}
	if s := c.Conns[1].In.Segments; len(s) != 1 || s[0].Retransmission {
		t.Errorf("second connection's client segments %+v, want one SYN, not a retransmission", s)
	}
}

func TestReadCaptureBadInput(t *testing.T) {
	good := writePcap(t, lossAndZeroWindow(), layers.LinkTypeRaw)

	// Cut inside the last record: the others are read.
	c, err := ReadCapture(bytes.NewReader(good[:len(good)-10]))
	if err != nil {
		t.Fatal(err)
	}
	if c.Truncated == nil || c.Records != 14 || len(c.Conns[0].Out.Segments) != 7 {
		t.Errorf("truncated capture: %d records, truncated %v, %d server segments; want 14, an error, 7", c.Records, c.Truncated, len(c.Conns[0].Out.Segments))
	}

	// No TCP: read, no connection, counted.
	udp := writePcap(t, []pkt{{udp: true}, {udp: true}}, layers.LinkTypeRaw)
	c, err = ReadCapture(bytes.NewReader(udp))
	if err != nil || len(c.Conns) != 0 || c.NonTCP != 2 || c.Records != 2 {
		t.Errorf("UDP-only capture: %v, %+v; want no error, no connection, 2 non-TCP records", err, c)
	}

	for name, b := range map[string][]byte{
		"text":         []byte("this is not a capture at all\n"),
		"empty":        nil,
		"three bytes":  {0xd4, 0xc3, 0xb2},
		"json trace":   []byte(`{"time":"2026-01-01T00:00:00Z","t_s":0.1}` + "\n"),
		"pcapng magic": {0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0},
	} {
		if _, err := ReadCapture(bytes.NewReader(b)); !errors.Is(err, ErrNotPcap) {
			t.Errorf("%s: error %v, want ErrNotPcap", name, err)
		}
	}
}

func TestParseConnName(t *testing.T) {
	a, b, err := ParseConnName("198.18.0.2:80-198.18.0.1:40000")
	if err != nil || a.String() != "198.18.0.2:80" || b.String() != "198.18.0.1:40000" {
		t.Errorf("got %v %v %v", a, b, err)
	}
	a, b, err = ParseConnName("[fd00::2]:80-[fd00::1]:4000")
	if err != nil || a.Port() != 80 || b.Port() != 4000 {
		t.Errorf("IPv6: got %v %v %v", a, b, err)
	}
	for _, bad := range []string{"", "198.18.0.2:80", "198.18.0.2-198.18.0.1", "a:1-b:2", "198.18.0.2:80-198.18.0.1:99999"} {
		if _, _, err := ParseConnName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
