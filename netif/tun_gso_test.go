package netif

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
	"tunstack/internal/testtools"

	"github.com/google/gopacket/pcapgo"

	"tunstack/lab/netns"
	"tunstack/wire"
)

var (
	gsoSrc = netip.MustParseAddr("198.18.0.2")
	gsoDst = netip.MustParseAddr("198.18.0.1")
)

const (
	gsoTestMSS = 1448 // payload per full segment with the timestamp option
	tsOptLen   = 12   // NOP, NOP, timestamps
)

// segment describes one TCP/IPv4 packet for the tests.
type segment struct {
	id       uint16
	seq, ack uint32
	flags    uint8
	payload  []byte
	tsVal    uint32
	dstPort  uint16
}

// build makes the packet, checksums and all: the stack's shape, IPv4 with
// DF and no options, TCP with NOP, NOP, timestamps.
func (s segment) build() []byte {
	dport := s.dstPort
	if dport == 0 {
		dport = 5001
	}
	tcpLen := wire.TCPHeaderLen + tsOptLen + len(s.payload)
	p := make([]byte, wire.IPv4HeaderLen+tcpLen)
	wire.PutIPv4Header(p, wire.IPv4Fields{Src: gsoSrc.As4(), Dst: gsoDst.As4(), Protocol: wire.ProtoTCP, TTL: 64, ID: s.id, DontFrag: true}, tcpLen)
	tcp := wire.TCP(p[wire.IPv4HeaderLen:])
	wire.PutTCPHeader(tcp, wire.TCPFields{SrcPort: 40000, DstPort: dport, Seq: s.seq, Ack: s.ack, Flags: s.flags, Window: 502}, tsOptLen)
	o := tcp[wire.TCPHeaderLen:]
	o[0], o[1], o[2], o[3] = wire.OptNOP, wire.OptNOP, wire.OptTimestamps, 10
	binary.BigEndian.PutUint32(o[4:], s.tsVal)
	binary.BigEndian.PutUint32(o[8:], 7)
	copy(tcp[wire.TCPHeaderLen+tsOptLen:], s.payload)
	tcp.ComputeChecksum(gsoSrc.As4(), gsoDst.As4())
	return p
}

// pattern is n bytes that differ with their stream offset.
func pattern(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((off + i) * 7 / 3)
	}
	return b
}

// flight builds n consecutive segments of sizes[i] bytes (gsoTestMSS where
// sizes is short), with consecutive IP ids and the given flags (ACK on all,
// PSH on the last if lastPSH).
func flight(seq uint32, sizes []int, lastPSH bool) [][]byte {
	var pkts [][]byte
	off := 0
	for i, n := range sizes {
		f := wire.FlagACK
		if lastPSH && i == len(sizes)-1 {
			f |= wire.FlagPSH
		}
		pkts = append(pkts, segment{id: uint16(100 + i), seq: seq + uint32(off), ack: 9000, flags: f, payload: pattern(off, n), tsVal: 55}.build())
		off += n
	}
	return pkts
}

func full(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = gsoTestMSS
	}
	return s
}

// splitGSO cuts a GSO packet (virtio header, headers, payload) into 1500-byte
// buffers with gsoSplit, the read path's splitter, which cuts as the
// kernel's tcp_gso_segment does (TestKernelSocketExchangesSegmentsIntactThroughGSO
// checks it against the kernel's own TSO packets).
func splitGSO(t *testing.T, gso []byte) [][]byte {
	t.Helper()
	var g gsoSplit
	if !g.start(parseVnetHdr(gso), gso[vnetHdrLen:]) {
		t.Fatalf("gsoSplit refused the packet")
	}
	var out [][]byte
	for g.pending() {
		buf := make([]byte, 1500)
		n, ok := g.next(buf)
		if !ok {
			t.Fatalf("segment %d does not fit 1500 bytes", len(out))
		}
		out = append(out, buf[:n])
	}
	return out
}

func TestGSORunMergesSegmentsTheKernelSplitsBackExactly(t *testing.T) {
	pkts := flight(1000, append(full(5), 300), true)
	if n := gsoRun(pkts); n != 6 {
		t.Fatalf("gsoRun = %d, want 6", n)
	}
	buf := make([]byte, vnetHdrLen+gsoMaxHdr)
	hn := putGSOHeader(buf, pkts)
	if want := vnetHdrLen + wire.IPv4HeaderLen + wire.TCPHeaderLen + tsOptLen; hn != want {
		t.Fatalf("header bytes = %d, want %d", hn, want)
	}
	got := parseVnetHdr(buf)
	want := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOTCPv4, hdrLen: 52, gsoSize: gsoTestMSS, csumStart: 20, csumOffset: 16}
	if got != want {
		t.Fatalf("virtio header %+v, want %+v", got, want)
	}
	gso := bytes.Clone(buf[:hn])
	for _, p := range pkts {
		gso = append(gso, p[52:]...)
	}
	ip := wire.IPv4(gso[vnetHdrLen:])
	if err := ip.Valid(); err != nil {
		t.Fatalf("merged IPv4 header: %v", err)
	}
	if ip.TotalLen() != uint16(52+5*gsoTestMSS+300) || ip.ID() != 100 {
		t.Errorf("merged total length %d id %d, want %d and 100", ip.TotalLen(), ip.ID(), 52+5*gsoTestMSS+300)
	}
	tcp := wire.TCP(ip.Payload())
	if tcp.Seq() != 1000 || tcp.Flags() != wire.FlagACK|wire.FlagPSH {
		t.Errorf("merged seq %d flags %#x, want 1000 and ACK|PSH", tcp.Seq(), tcp.Flags())
	}
	// CHECKSUM_PARTIAL: the field holds the pseudo-header sum, so summing
	// from csum_start completes the checksum of the whole segment.
	partial := wire.Fold(wire.Checksum(tcp, 0))
	whole := bytes.Clone(tcp)
	wire.TCP(whole).ComputeChecksum(gsoSrc.As4(), gsoDst.As4())
	if partial != wire.TCP(whole).Checksum() {
		t.Errorf("completed checksum %#04x, want %#04x", partial, wire.TCP(whole).Checksum())
	}
	split := splitGSO(t, gso)
	if len(split) != len(pkts) {
		t.Fatalf("split into %d segments, want %d", len(split), len(pkts))
	}
	for i := range pkts {
		if !bytes.Equal(split[i], pkts[i]) {
			t.Errorf("segment %d after splitting differs:\n got % x\nwant % x", i, split[i][:52], pkts[i][:52])
		}
	}
}

// The flags the kernel's tcp_gso_segment leaves on each segment of a TSO
// packet: FIN and PSH only on the last, CWR only on the first.
func TestGSOSplitKeepsFINAndPSHForTheLastSegmentAndCWRForTheFirst(t *testing.T) {
	pkts := flight(5000, append(full(3), 100), false)
	buf := make([]byte, vnetHdrLen+gsoMaxHdr)
	hn := putGSOHeader(buf, pkts)
	gso := bytes.Clone(buf[:hn])
	for _, p := range pkts {
		gso = append(gso, p[52:]...)
	}
	gso[vnetHdrLen+wire.IPv4HeaderLen+13] |= wire.FlagFIN | wire.FlagPSH | wire.FlagCWR
	split := splitGSO(t, gso)
	want := []uint8{wire.FlagACK | wire.FlagCWR, wire.FlagACK, wire.FlagACK, wire.FlagACK | wire.FlagFIN | wire.FlagPSH}
	if len(split) != len(want) {
		t.Fatalf("split into %d segments, want %d", len(split), len(want))
	}
	for i, p := range split {
		ip := wire.IPv4(p)
		tcp := wire.TCP(ip.Payload())
		if tcp.Flags() != want[i] || !tcp.ChecksumValid(ip.Src(), ip.Dst()) || ip.Valid() != nil {
			t.Errorf("segment %d: flags %#x (want %#x), TCP checksum valid %v, IP %v", i, tcp.Flags(), want[i], tcp.ChecksumValid(ip.Src(), ip.Dst()), ip.Valid())
		}
	}

	// A segment that does not fit the buffer is refused, not truncated.
	var g gsoSplit
	if !g.start(parseVnetHdr(gso), gso[vnetHdrLen:]) {
		t.Fatal("gsoSplit refused the packet")
	}
	if _, ok := g.next(make([]byte, 1000)); ok {
		t.Error("next wrote a 1500-byte segment into 1000 bytes")
	}
	// Neither is a packet that is not TCP over IPv4 taken.
	udp := bytes.Clone(gso[vnetHdrLen:])
	udp[9] = wire.ProtoUDP
	if g.start(parseVnetHdr(gso), udp) {
		t.Error("gsoSplit took a UDP packet")
	}
	if g.start(vnetHdr{gsoType: 4, gsoSize: 1448}, gso[vnetHdrLen:]) {
		t.Error("gsoSplit took gso_type 4 (UDP), which we never ask for")
	}
}

func TestGSORunStopsWhereTheKernelCouldNotRebuildTheHeaders(t *testing.T) {
	mod := func(pkts [][]byte, i int, f func(p []byte)) [][]byte {
		f(pkts[i])
		return pkts
	}
	const tcp = wire.IPv4HeaderLen
	cases := []struct {
		name string
		pkts [][]byte
		want int
	}{
		{"full run", flight(1, full(4), false), 4},
		{"IP ids need not be consecutive", mod(flight(1, full(3), false), 1, func(p []byte) { p[4] = 0x77 }), 3},
		{"single packet", flight(1, full(1), false), 1},
		{"short segment ends the run", flight(1, []int{gsoTestMSS, 500, gsoTestMSS}, false), 2},
		{"longer second segment", flight(1, []int{1000, 1200}, false), 1},
		{"PSH on the first", mod(flight(1, full(3), false), 0, func(p []byte) { p[tcp+13] |= wire.FlagPSH }), 1},
		{"PSH in the middle ends the run", mod(flight(1, full(4), false), 1, func(p []byte) { p[tcp+13] |= wire.FlagPSH }), 2},
		{"FIN on the second", mod(flight(1, full(3), false), 1, func(p []byte) { p[tcp+13] |= wire.FlagFIN }), 1},
		{"FIN on the first", mod(flight(1, full(3), false), 0, func(p []byte) { p[tcp+13] |= wire.FlagFIN }), 1},
		{"SYN", mod(flight(1, full(3), false), 0, func(p []byte) { p[tcp+13] |= wire.FlagSYN }), 1},
		{"RST", mod(flight(1, full(3), false), 0, func(p []byte) { p[tcp+13] |= wire.FlagRST }), 1},
		{"URG", mod(flight(1, full(3), false), 0, func(p []byte) { p[tcp+13] |= wire.FlagURG }), 1},
		{"CWR", mod(flight(1, full(3), false), 0, func(p []byte) { p[tcp+13] |= wire.FlagCWR }), 1},
		{"ECE on one only", mod(flight(1, full(3), false), 1, func(p []byte) { p[tcp+13] |= wire.FlagECE }), 1},
		{"sequence gap", mod(flight(1, full(3), false), 1, func(p []byte) { p[tcp+7]++ }), 1},
		{"other ack", mod(flight(1, full(3), false), 2, func(p []byte) { p[tcp+11]++ }), 2},
		{"other window", mod(flight(1, full(3), false), 1, func(p []byte) { p[tcp+15]++ }), 1},
		{"other TSval", mod(flight(1, full(3), false), 1, func(p []byte) { p[tcp+27]++ }), 1},
		{"other TSecr", mod(flight(1, full(3), false), 1, func(p []byte) { p[tcp+31]++ }), 1},
		{"other port", mod(flight(1, full(3), false), 1, func(p []byte) { p[tcp+3]++ }), 1},
		{"other address", mod(flight(1, full(3), false), 1, func(p []byte) { p[19]++ }), 1},
		{"other TTL", mod(flight(1, full(3), false), 1, func(p []byte) { p[8]-- }), 1},
		{"other TOS", mod(flight(1, full(3), false), 1, func(p []byte) { p[1] = 0x10 }), 1},
		{"fragment", mod(flight(1, full(3), false), 0, func(p []byte) { p[6] |= 0x20 }), 1},
		{"IP options", mod(flight(1, full(3), false), 0, func(p []byte) { p[0] = 0x46 }), 1},
		{"not TCP", mod(flight(1, full(3), false), 0, func(p []byte) { p[9] = wire.ProtoUDP }), 1},
		{"total length not the slice's", mod(flight(1, full(3), false), 0, func(p []byte) { p[3]-- }), 1},
		{"no payload", [][]byte{segment{seq: 1, ack: 9000, flags: wire.FlagACK, tsVal: 55}.build(), segment{seq: 1, ack: 9000, flags: wire.FlagACK, tsVal: 55}.build()}, 1},
		{"64 KiB at most", flight(1, full(50), false), (gsoMaxBytes - 52) / gsoTestMSS},
		{"at most gsoMaxSegs segments", flight(1, make100(100), false), gsoMaxSegs},
	}
	for _, c := range cases {
		if got := gsoRun(c.pkts); got != c.want {
			t.Errorf("%s: gsoRun = %d, want %d", c.name, got, c.want)
		}
	}
	// A different header length (no options) against the stack's shape.
	a := flight(1, full(1), false)[0]
	b := make([]byte, wire.IPv4HeaderLen+wire.TCPHeaderLen+gsoTestMSS)
	wire.PutIPv4Header(b, wire.IPv4Fields{Src: gsoSrc.As4(), Dst: gsoDst.As4(), Protocol: wire.ProtoTCP, TTL: 64, DontFrag: true}, len(b)-wire.IPv4HeaderLen)
	wire.PutTCPHeader(b[wire.IPv4HeaderLen:], wire.TCPFields{SrcPort: 40000, DstPort: 5001, Seq: 1 + gsoTestMSS, Ack: 9000, Flags: wire.FlagACK, Window: 502}, 0)
	if got := gsoRun([][]byte{a, b}); got != 1 {
		t.Errorf("different TCP header length: gsoRun = %d, want 1", got)
	}
}

func make100(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 100
	}
	return s
}

func TestFinishReadPacketCompletesPartialChecksumAndRefusesGSO(t *testing.T) {
	p := flight(1, []int{333}, false)[0]
	want := wire.TCP(p[wire.IPv4HeaderLen:]).Checksum()
	tcp := wire.TCP(p[wire.IPv4HeaderLen:])
	tcp.SetChecksum(^wire.Fold(wire.PseudoHeaderSum(gsoSrc.As4(), gsoDst.As4(), wire.ProtoTCP, len(tcp))))
	if !finishReadPacket(vnetHdr{flags: vnetFlagNeedsCsum, csumStart: 20, csumOffset: 16}, p) {
		t.Fatal("finishReadPacket refused a NEEDS_CSUM packet")
	}
	if got := tcp.Checksum(); got != want {
		t.Errorf("completed checksum %#04x, want %#04x", got, want)
	}
	before := bytes.Clone(p)
	if !finishReadPacket(vnetHdr{flags: vnetFlagDataValid}, p) || !bytes.Equal(p, before) {
		t.Error("a DATA_VALID packet was refused or changed")
	}
	if finishReadPacket(vnetHdr{gsoType: vnetGSOTCPv4, gsoSize: 1448}, p) {
		t.Error("finishReadPacket accepted a GSO packet")
	}
}

// TestKernelSocketExchangesSegmentsIntactThroughGSO shakes hands by hand
// with a kernel listener through an offload TUN, then writes one batch of a
// pure ACK and 30 data segments with timestamps: the TUN sends the segments
// as GSO packets, the kernel acknowledges every byte, and the accepted
// socket reads them intact. Then the socket sends 1 MiB: the kernel hands
// the TUN TSO packets, and ReadPackets returns them as segments with valid
// checksums and contiguous sequence numbers that carry every byte.
func TestKernelSocketExchangesSegmentsIntactThroughGSO(t *testing.T) {
	testtools.Need(t, "sysctl")
	netns.RequireRoot(t)
	ns, err := netns.New("gso")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var tun *TUN
	var ln net.Listener
	err = ns.Do(func() (err error) {
		if tun, err = OpenTUN(TUNConfig{Name: "gso0", HostAddr: netip.PrefixFrom(gsoDst, 24), Offload: true}); err != nil {
			return err
		}
		ln, err = net.Listen("tcp4", "198.18.0.1:5001")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	defer ln.Close()
	if !tun.Offload() {
		t.Fatal("the kernel refused IFF_VNET_HDR: this test needs offload")
	}
	ns.Command("sysctl", "-qw", "net.ipv6.conf.gso0.disable_ipv6=1").Run()

	// readTCP returns the next TCP packet from the kernel, skipping others.
	bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
	readTCP := func() wire.TCP {
		t.Helper()
		for {
			n, err := tun.ReadPackets(bufs, sizes)
			if err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				ip := wire.IPv4(bufs[0][:sizes[0]])
				if ip.Valid() == nil && ip.Protocol() == wire.ProtoTCP {
					tcp := wire.TCP(ip.Payload())
					if !tcp.ChecksumValid(ip.Src(), ip.Dst()) {
						t.Fatalf("the kernel's segment has a bad checksum: % x", ip)
					}
					return tcp
				}
			}
		}
	}
	// Fail rather than hang if the kernel stops answering.
	timer := time.AfterFunc(20*time.Second, func() { tun.Close(); ln.Close() })
	defer timer.Stop()

	const iss = 77000
	syn := segment{seq: iss, flags: wire.FlagSYN, tsVal: 50}.build()
	// The SYN carries MSS 1460 and timestamps instead of the data shape.
	syn = synWithOptions(syn)
	if _, err := tun.WritePackets([][]byte{syn}); err != nil {
		t.Fatal(err)
	}
	synAck := readTCP()
	if synAck.Flags() != wire.FlagSYN|wire.FlagACK || synAck.Ack() != iss+1 {
		t.Fatalf("got flags %#x ack %d, want SYN|ACK acking %d", synAck.Flags(), synAck.Ack(), iss+1)
	}
	var opts wire.TCPOptions
	if err := wire.ParseTCPOptions(synAck.Options(), &opts); err != nil || !opts.HasTS {
		t.Fatalf("SYN-ACK options %+v (%v), want timestamps", opts, err)
	}
	kernelSeq := synAck.Seq() + 1

	sizes30 := append(full(29), 700)
	pkts := [][]byte{segment{id: 99, seq: iss + 1, ack: kernelSeq, flags: wire.FlagACK, tsVal: 55}.build()}
	data := flight(iss+1, sizes30, true)
	var sent []byte
	pkts = append(pkts, data...)
	for _, p := range pkts {
		tcp := wire.TCP(p[wire.IPv4HeaderLen:])
		binary.BigEndian.PutUint32(tcp[8:], kernelSeq)
		binary.BigEndian.PutUint32(tcp[wire.TCPHeaderLen+8:], opts.TSVal) // echo the kernel's TSval
		tcp.ComputeChecksum(gsoSrc.As4(), gsoDst.As4())
		sent = append(sent, tcp.Payload()...)
	}
	// Through a pcap tap, as serve stacks them: the capture above the TUN
	// shows the segments as the stack made them, not the GSO packets.
	var capture bytes.Buffer
	tap, err := NewPcapTap(tun, &capture)
	if err != nil {
		t.Fatal(err)
	}
	n, err := tap.WritePackets(pkts)
	if err != nil || n != len(pkts) {
		t.Fatalf("WritePackets = %d, %v; want %d", n, err, len(pkts))
	}
	r, err := pcapgo.NewReader(&capture)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		rec, _, err := r.ReadPacketData()
		if err == io.EOF {
			if i != len(pkts) {
				t.Fatalf("capture has %d packets, want %d", i, len(pkts))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(pkts) || !bytes.Equal(rec, pkts[i]) {
			t.Fatalf("capture record %d (%d bytes) is not the segment written", i, len(rec))
		}
	}
	gsoPkts, gsoSegs := tun.GSOStats()
	if gsoPkts == 0 || gsoSegs != uint64(len(data)) {
		t.Fatalf("GSO writes: %d packets carrying %d segments, want the %d data segments coalesced", gsoPkts, gsoSegs, len(data))
	}

	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	got := make([]byte, len(sent))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("reading what the kernel received: %v", err)
	}
	if !bytes.Equal(got, sent) {
		t.Fatal("the kernel socket read different bytes from those written")
	}
	end := iss + 1 + uint32(len(sent))
	for {
		ack := readTCP()
		if ack.Flags()&wire.FlagRST != 0 {
			t.Fatalf("the kernel reset the connection")
		}
		if ack.Ack() == end {
			break
		}
	}

	// The other way: the kernel sends, we acknowledge every segment with a
	// 64 KiB window (no window scale was offered) and collect the bytes.
	const download = 1 << 20
	want := pattern(0, download)
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(want)
		werr <- err
	}()
	ourSeq, rcvNxt := end, kernelSeq
	var recv []byte
	for len(recv) < download {
		tcp := readTCP()
		if tcp.Flags()&wire.FlagRST != 0 {
			t.Fatal("the kernel reset the connection")
		}
		payload := tcp.Payload()
		if len(payload) == 0 {
			continue
		}
		if tcp.Seq() != rcvNxt {
			t.Fatalf("segment at seq %d, want %d: a segment cut from a TSO packet is missing or misplaced", tcp.Seq(), rcvNxt)
		}
		recv = append(recv, payload...)
		rcvNxt += uint32(len(payload))
		var o wire.TCPOptions
		wire.ParseTCPOptions(tcp.Options(), &o)
		ack := segment{id: 200, seq: ourSeq, ack: rcvNxt, flags: wire.FlagACK, tsVal: 60}.build()
		at := wire.TCP(ack[wire.IPv4HeaderLen:])
		binary.BigEndian.PutUint16(at[14:], 0xffff)
		binary.BigEndian.PutUint32(at[wire.TCPHeaderLen+8:], o.TSVal)
		at.ComputeChecksum(gsoSrc.As4(), gsoDst.As4())
		if _, err := tun.WritePackets([][]byte{ack}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-werr; err != nil {
		t.Fatalf("the kernel socket's write: %v", err)
	}
	if !bytes.Equal(recv, want) {
		t.Fatal("the segments read carry different bytes from those the kernel socket wrote")
	}
	reads, segs := tun.GSOReadStats()
	t.Logf("1 MiB from the kernel: %d TSO packets read, cut into %d segments", reads, segs)
	if reads == 0 || segs <= reads {
		t.Errorf("GSOReadStats = %d packets, %d segments: the kernel sent no TSO packets to a device that offers TSO", reads, segs)
	}
	if d := tun.GSODrops(); d != 0 {
		t.Errorf("%d packets read from the kernel could not be used", d)
	}
}

// synWithOptions rewrites p (built as a data-shaped SYN) with the options a
// client SYN carries: MSS 1460, NOP, NOP, timestamps.
func synWithOptions(p []byte) []byte {
	tcp := wire.TCP(p[wire.IPv4HeaderLen:])
	o := tcp[wire.TCPHeaderLen : wire.TCPHeaderLen+tsOptLen]
	ts := bytes.Clone(o[4:12])
	out := make([]byte, wire.IPv4HeaderLen+wire.TCPHeaderLen+16)
	copy(out, p[:wire.IPv4HeaderLen+wire.TCPHeaderLen])
	binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
	out[10], out[11] = 0, 0
	binary.BigEndian.PutUint16(out[10:], wire.Fold(wire.Checksum(out[:wire.IPv4HeaderLen], 0)))
	nt := wire.TCP(out[wire.IPv4HeaderLen:])
	nt[12] = (wire.TCPHeaderLen + 16) / 4 << 4
	no := nt[wire.TCPHeaderLen:]
	no[0], no[1] = wire.OptMSS, 4
	binary.BigEndian.PutUint16(no[2:], 1460)
	no[4], no[5], no[6], no[7] = wire.OptNOP, wire.OptNOP, wire.OptTimestamps, 10
	copy(no[8:], ts)
	binary.BigEndian.PutUint32(no[12:], 0) // TSecr of a SYN
	nt.ComputeChecksum(gsoSrc.As4(), gsoDst.As4())
	return out
}
