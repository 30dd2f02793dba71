package wire_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"tunstack/wire"
)

// These tests hold our codec against gopacket, an independent implementation:
// what we write, gopacket reads the same; what gopacket writes, we read the
// same. Checksums are checked both ways.

var (
	srcAddr = [4]byte{198, 18, 0, 2}
	dstAddr = [4]byte{198, 18, 0, 1}
)

// encoderCase is a segment built with our encoder.
type encoderCase struct {
	name      string
	ip        wire.IPv4Fields
	tcp       wire.TCPFields
	opts      wire.TCPOptions
	payload   []byte
	wantKinds []layers.TCPOptionKind // the Linux order EncodeTCPOptions promises
}

func sack(blocks ...wire.SACKBlock) (n int, a [wire.MaxSACKBlocks]wire.SACKBlock) {
	return copy(a[:], blocks), a
}

func encoderCases() []encoderCase {
	const (
		mss  = layers.TCPOptionKindMSS
		nop  = layers.TCPOptionKindNop
		ws   = layers.TCPOptionKindWindowScale
		sokK = layers.TCPOptionKindSACKPermitted
		ts   = layers.TCPOptionKindTimestamps
		sk   = layers.TCPOptionKindSACK
	)
	ipf := wire.IPv4Fields{Src: srcAddr, Dst: dstAddr, Protocol: wire.ProtoTCP, TTL: 64, ID: 0xabcd, TOS: 0x02, DontFrag: true}
	n3, s3 := sack(wire.SACKBlock{Left: 1000, Right: 2000}, wire.SACKBlock{Left: 3000, Right: 4000}, wire.SACKBlock{Left: 0xfffffff0, Right: 0x10})
	n4, s4 := sack(wire.SACKBlock{Left: 1, Right: 2}, wire.SACKBlock{Left: 3, Right: 4}, wire.SACKBlock{Left: 5, Right: 6}, wire.SACKBlock{Left: 7, Right: 8})
	return []encoderCase{
		{
			name:      "Linux SYN: MSS, SACK-permitted, timestamps, window scale",
			ip:        ipf,
			tcp:       wire.TCPFields{SrcPort: 80, DstPort: 40000, Seq: 0xdeadbeef, Flags: wire.FlagSYN | wire.FlagECE | wire.FlagCWR, Window: 64240},
			opts:      wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true, HasTS: true, TSVal: 123456789, TSEcr: 0, HasWScale: true, WScale: 7},
			wantKinds: []layers.TCPOptionKind{mss, sokK, ts, nop, ws},
		},
		{
			name:      "SYN-ACK without timestamps",
			ip:        ipf,
			tcp:       wire.TCPFields{SrcPort: 80, DstPort: 40000, Seq: 1, Ack: 0xffffffff, Flags: wire.FlagSYN | wire.FlagACK, Window: 65535},
			opts:      wire.TCPOptions{HasMSS: true, MSS: 536, SACKPermitted: true, HasWScale: true, WScale: 14},
			wantKinds: []layers.TCPOptionKind{mss, nop, nop, sokK, nop, ws},
		},
		{
			name:      "timestamps without SACK-permitted",
			ip:        ipf,
			tcp:       wire.TCPFields{SrcPort: 1, DstPort: 2, Seq: 5, Ack: 6, Flags: wire.FlagACK, Window: 1},
			opts:      wire.TCPOptions{HasTS: true, TSVal: 0xffffffff, TSEcr: 0x80000000},
			wantKinds: []layers.TCPOptionKind{nop, nop, ts},
		},
		{
			name:      "ACK with timestamps and three SACK blocks, wrapping",
			ip:        ipf,
			tcp:       wire.TCPFields{SrcPort: 443, DstPort: 55555, Seq: 1 << 31, Ack: 999, Flags: wire.FlagACK, Window: 501},
			opts:      wire.TCPOptions{HasTS: true, TSVal: 42, TSEcr: 41, NumSACK: n3, SACK: s3},
			wantKinds: []layers.TCPOptionKind{nop, nop, ts, nop, nop, sk},
		},
		{
			name:      "ACK with four SACK blocks",
			ip:        ipf,
			tcp:       wire.TCPFields{SrcPort: 443, DstPort: 55555, Flags: wire.FlagACK, Window: 501},
			opts:      wire.TCPOptions{NumSACK: n4, SACK: s4},
			wantKinds: []layers.TCPOptionKind{nop, nop, sk},
		},
		{
			name:    "data with PSH, URG and an odd-length payload, no options",
			ip:      wire.IPv4Fields{Src: srcAddr, Dst: dstAddr, Protocol: wire.ProtoTCP, TTL: 1, ID: 7},
			tcp:     wire.TCPFields{SrcPort: 9, DstPort: 65535, Seq: 77, Ack: 88, Flags: wire.FlagACK | wire.FlagPSH | wire.FlagURG | wire.FlagFIN, Window: 4096, Urgent: 3},
			payload: []byte("hello, gopacket"),
		},
		{
			name: "RST",
			ip:   ipf,
			tcp:  wire.TCPFields{SrcPort: 80, DstPort: 40000, Seq: 100, Flags: wire.FlagRST},
		},
	}
}

// encode builds the segment with our encoder.
func (c *encoderCase) encode() []byte {
	optLen := c.opts.EncodedLen()
	tcpLen := wire.TCPHeaderLen + optLen + len(c.payload)
	b := make([]byte, wire.IPv4HeaderLen+tcpLen)
	wire.PutIPv4Header(b, c.ip, tcpLen)
	seg := wire.TCP(b[wire.IPv4HeaderLen:])
	wire.PutTCPHeader(seg, c.tcp, optLen)
	if n := wire.EncodeTCPOptions(seg[wire.TCPHeaderLen:], &c.opts); n != optLen {
		panic(fmt.Sprintf("EncodeTCPOptions wrote %d bytes, EncodedLen said %d", n, optLen))
	}
	copy(seg[wire.TCPHeaderLen+optLen:], c.payload)
	seg.ComputeChecksum(c.ip.Src, c.ip.Dst)
	return b
}

// optionsFromGopacket rebuilds a TCPOptions from gopacket's decoded option
// list, independently of ParseTCPOptions.
func optionsFromGopacket(t *testing.T, opts []layers.TCPOption) wire.TCPOptions {
	t.Helper()
	var o wire.TCPOptions
	for _, opt := range opts {
		d := opt.OptionData
		switch opt.OptionType {
		case layers.TCPOptionKindMSS:
			o.HasMSS, o.MSS = true, binary.BigEndian.Uint16(d)
		case layers.TCPOptionKindWindowScale:
			o.HasWScale, o.WScale = true, d[0]
		case layers.TCPOptionKindSACKPermitted:
			o.SACKPermitted = true
		case layers.TCPOptionKindTimestamps:
			o.HasTS, o.TSVal, o.TSEcr = true, binary.BigEndian.Uint32(d), binary.BigEndian.Uint32(d[4:])
		case layers.TCPOptionKindSACK:
			for i := 0; i+8 <= len(d); i += 8 {
				o.SACK[o.NumSACK] = wire.SACKBlock{Left: binary.BigEndian.Uint32(d[i:]), Right: binary.BigEndian.Uint32(d[i+4:])}
				o.NumSACK++
			}
		case layers.TCPOptionKindNop, layers.TCPOptionKindEndList:
		default:
			t.Errorf("gopacket decoded an option we did not write: %v", opt)
		}
	}
	return o
}

func flagsFromGopacket(tcp *layers.TCP) uint8 {
	var f uint8
	for _, x := range []struct {
		set  bool
		flag uint8
	}{{tcp.FIN, wire.FlagFIN}, {tcp.SYN, wire.FlagSYN}, {tcp.RST, wire.FlagRST}, {tcp.PSH, wire.FlagPSH},
		{tcp.ACK, wire.FlagACK}, {tcp.URG, wire.FlagURG}, {tcp.ECE, wire.FlagECE}, {tcp.CWR, wire.FlagCWR}} {
		if x.set {
			f |= x.flag
		}
	}
	return f
}

func TestSegmentsWeEncodeDecodeIdenticallyWithGopacket(t *testing.T) {
	for _, c := range encoderCases() {
		t.Run(c.name, func(t *testing.T) {
			b := c.encode()
			pkt := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.DecodeOptions{})
			if el := pkt.ErrorLayer(); el != nil {
				t.Fatalf("gopacket: %v", el.Error())
			}
			ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)

			if !ip.SrcIP.Equal(net.IP(c.ip.Src[:])) || !ip.DstIP.Equal(net.IP(c.ip.Dst[:])) ||
				ip.Version != 4 || ip.IHL != 5 || ip.TTL != c.ip.TTL || ip.Id != c.ip.ID || ip.TOS != c.ip.TOS ||
				uint8(ip.Protocol) != c.ip.Protocol || int(ip.Length) != len(b) ||
				(ip.Flags&layers.IPv4DontFragment != 0) != c.ip.DontFrag || ip.FragOffset != 0 {
				t.Errorf("IPv4 header decoded as %+v, wrote %+v", ip, c.ip)
			}
			got := wire.TCPFields{SrcPort: uint16(tcp.SrcPort), DstPort: uint16(tcp.DstPort), Seq: tcp.Seq, Ack: tcp.Ack,
				Flags: flagsFromGopacket(tcp), Window: tcp.Window, Urgent: tcp.Urgent}
			if got != c.tcp {
				t.Errorf("TCP header decoded as %+v, wrote %+v", got, c.tcp)
			}
			if int(tcp.DataOffset)*4 != wire.TCPHeaderLen+c.opts.EncodedLen() {
				t.Errorf("data offset %d words, want %d bytes", tcp.DataOffset, wire.TCPHeaderLen+c.opts.EncodedLen())
			}
			var kinds []layers.TCPOptionKind
			for _, o := range tcp.Options {
				kinds = append(kinds, o.OptionType)
			}
			if !slices.Equal(kinds, c.wantKinds) {
				t.Errorf("option order %v, want Linux's %v", kinds, c.wantKinds)
			}
			if o := optionsFromGopacket(t, tcp.Options); o != c.opts {
				t.Errorf("options decoded as %+v, wrote %+v", o, c.opts)
			}
			if !bytes.Equal(tcp.Payload, c.payload) {
				t.Errorf("payload %q, wrote %q", tcp.Payload, c.payload)
			}
			// Checksums: gopacket re-serializing what it decoded, computing
			// both checksums itself, must give back our bytes exactly.
			tcp.SetNetworkLayerForChecksum(ip)
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
				ip, tcp, gopacket.Payload(tcp.Payload)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), b) {
				t.Errorf("gopacket's re-encoding with its own checksums differs:\nours     % x\ngopacket % x", b, buf.Bytes())
			}
		})
	}
}

// gopacketCase is a segment built with gopacket, including option layouts
// our encoder never produces.
type gopacketCase struct {
	name     string
	ipOpts   []layers.IPv4Option
	tcp      layers.TCP
	payload  []byte
	wantOpts wire.TCPOptions
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32s(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

func gopacketCases() []gopacketCase {
	opt := func(kind layers.TCPOptionKind, data []byte) layers.TCPOption {
		return layers.TCPOption{OptionType: kind, OptionData: data}
	}
	nop := layers.TCPOption{OptionType: layers.TCPOptionKindNop}
	eol := layers.TCPOption{OptionType: layers.TCPOptionKindEndList}
	n2, s2 := sack(wire.SACKBlock{Left: 10, Right: 20}, wire.SACKBlock{Left: 30, Right: 40})
	return []gopacketCase{
		{
			name: "options in a non-Linux order, unpadded",
			tcp: layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1, SYN: true, Window: 29200, Options: []layers.TCPOption{
				opt(layers.TCPOptionKindTimestamps, u32s(7, 0)), opt(layers.TCPOptionKindWindowScale, []byte{9}),
				opt(layers.TCPOptionKindSACKPermitted, nil), opt(layers.TCPOptionKindMSS, u16(8960)),
			}},
			wantOpts: wire.TCPOptions{HasTS: true, TSVal: 7, HasWScale: true, WScale: 9, SACKPermitted: true, HasMSS: true, MSS: 8960},
		},
		{
			name: "unknown option is skipped, EOL ends the list",
			tcp: layers.TCP{SrcPort: 1, DstPort: 2, Seq: 3, Ack: 4, ACK: true, Window: 5, Options: []layers.TCPOption{
				opt(30, []byte{0x10, 0x20}), opt(layers.TCPOptionKindMSS, u16(1400)), eol, opt(layers.TCPOptionKindWindowScale, []byte{3}),
			}},
			wantOpts: wire.TCPOptions{HasMSS: true, MSS: 1400},
		},
		{
			name: "SACK blocks after NOPs, with data",
			tcp: layers.TCP{SrcPort: 5201, DstPort: 41000, Seq: 0xfffffffe, Ack: 17, ACK: true, PSH: true, Window: 1024, Options: []layers.TCPOption{
				nop, nop, opt(layers.TCPOptionKindSACK, u32s(10, 20, 30, 40)),
			}},
			payload:  bytes.Repeat([]byte{0xa5}, 1001),
			wantOpts: wire.TCPOptions{NumSACK: n2, SACK: s2},
		},
		{
			name:   "IPv4 header with options",
			ipOpts: []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}, // router alert
			tcp:    layers.TCP{SrcPort: 7, DstPort: 7, Seq: 9, FIN: true, ACK: true, Window: 100},
		},
	}
}

func TestGopacketSerializedSegmentsParseIdenticallyWithOurViews(t *testing.T) {
	for _, c := range gopacketCases() {
		t.Run(c.name, func(t *testing.T) {
			ip := &layers.IPv4{Version: 4, TTL: 63, Id: 4242, TOS: 0x10, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
				SrcIP: net.IP(srcAddr[:]), DstIP: net.IP(dstAddr[:]), Options: c.ipOpts}
			tcp := c.tcp
			tcp.SetNetworkLayerForChecksum(ip)
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
				ip, &tcp, gopacket.Payload(c.payload)); err != nil {
				t.Fatal(err)
			}
			b := buf.Bytes()

			p := wire.IPv4(b)
			if err := p.Valid(); err != nil {
				t.Fatalf("IPv4 Valid: %v", err)
			}
			if p.HeaderLen() != int(ip.IHL)*4 || int(p.TotalLen()) != len(b) || p.TTL() != 63 || p.ID() != 4242 ||
				p.TOS() != 0x10 || p.FlagsFrag() != 0x4000 || p.IsFragment() || p.Protocol() != wire.ProtoTCP ||
				p.Src() != srcAddr || p.Dst() != dstAddr {
				t.Errorf("IPv4 view disagrees with gopacket's %+v", ip)
			}
			seg := wire.TCP(p.Payload())
			if err := seg.Valid(); err != nil {
				t.Fatalf("TCP Valid: %v", err)
			}
			if !seg.ChecksumValid(p.Src(), p.Dst()) {
				t.Error("ChecksumValid false on gopacket's checksum")
			}
			got := wire.TCPFields{SrcPort: seg.SrcPort(), DstPort: seg.DstPort(), Seq: seg.Seq(), Ack: seg.Ack(),
				Flags: seg.Flags(), Window: seg.Window(), Urgent: seg.Urgent()}
			want := wire.TCPFields{SrcPort: uint16(tcp.SrcPort), DstPort: uint16(tcp.DstPort), Seq: tcp.Seq, Ack: tcp.Ack,
				Flags: flagsFromGopacket(&tcp), Window: tcp.Window, Urgent: tcp.Urgent}
			if got != want {
				t.Errorf("TCP view %+v, gopacket wrote %+v", got, want)
			}
			if seg.DataOffset() != int(tcp.DataOffset)*4 || seg.Checksum() != tcp.Checksum {
				t.Errorf("data offset %d checksum %#x, gopacket wrote %d words, %#x", seg.DataOffset(), seg.Checksum(), tcp.DataOffset, tcp.Checksum)
			}
			var o wire.TCPOptions
			if err := wire.ParseTCPOptions(seg.Options(), &o); err != nil {
				t.Fatalf("ParseTCPOptions: %v", err)
			}
			if o != c.wantOpts {
				t.Errorf("options parsed as %+v, want %+v", o, c.wantOpts)
			}
			if !bytes.Equal(seg.Payload(), c.payload) {
				t.Errorf("payload of %d bytes, want %d", len(seg.Payload()), len(c.payload))
			}
			// A single flipped bit must break the checksum.
			seg[len(seg)-1] ^= 0x01
			if seg.ChecksumValid(p.Src(), p.Dst()) {
				t.Error("ChecksumValid still true after corrupting the segment")
			}
		})
	}
}

// canonicalOptions clears SACK slots past NumSACK, which ParseTCPOptions may
// leave holding an earlier SACK option's blocks; they carry no meaning.
func canonicalOptions(o wire.TCPOptions) wire.TCPOptions {
	for i := o.NumSACK; i < wire.MaxSACKBlocks; i++ {
		o.SACK[i] = wire.SACKBlock{}
	}
	return o
}

func FuzzParseTCPOptions(f *testing.F) {
	for _, c := range encoderCases() {
		b := make([]byte, wire.TCPMaxOptionLen)
		f.Add(b[:wire.EncodeTCPOptions(b, &c.opts)])
	}
	f.Add([]byte{})
	f.Add([]byte{wire.OptNOP, wire.OptEOL, 0xff})
	f.Add([]byte{wire.OptMSS, 4, 0x05})
	f.Add([]byte{wire.OptSACK, 2})
	f.Add([]byte{wire.OptSACK, 10, 0, 0, 0, 1, 0, 0, 0, 2, wire.OptSACK, 10, 0, 0, 0, 3, 0, 0, 0, 4})
	f.Add([]byte{30, 0})
	f.Add([]byte{99, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var o wire.TCPOptions
		if err := wire.ParseTCPOptions(data, &o); err != nil {
			return
		}
		if o.NumSACK < 0 || o.NumSACK > wire.MaxSACKBlocks {
			t.Fatalf("NumSACK %d out of range", o.NumSACK)
		}
		// Round trip whatever fits in a header: encoding what we parsed and
		// parsing it again must give the same options.
		if o.EncodedLen() > wire.TCPMaxOptionLen {
			return
		}
		buf := make([]byte, wire.TCPMaxOptionLen)
		n := wire.EncodeTCPOptions(buf, &o)
		if n != o.EncodedLen() || n%4 != 0 {
			t.Fatalf("encoded %d bytes, EncodedLen %d (must be equal and a multiple of 4)", n, o.EncodedLen())
		}
		var again wire.TCPOptions
		if err := wire.ParseTCPOptions(buf[:n], &again); err != nil {
			t.Fatalf("our own encoding % x does not parse: %v", buf[:n], err)
		}
		if canonicalOptions(again) != canonicalOptions(o) {
			t.Fatalf("round trip changed options:\nparsed  %+v\nre-read %+v\nfrom % x", o, again, data)
		}
	})
}

// TestTCPOptionReaderKeepsWireOrder: the reader reports every option as it
// is on the wire, NOP and EOL included, stops after EOL, and stops with
// ErrBadOption at an option whose length octet is missing or impossible.
func TestTCPOptionReaderKeepsWireOrder(t *testing.T) {
	type opt struct {
		kind uint8
		len  int
		ok   bool // WellFormed
	}
	cases := []struct {
		name string
		b    []byte
		want []opt
		err  error
	}{
		{"syn-ack", []byte{wire.OptMSS, 4, 5, 180, wire.OptNOP, wire.OptNOP, wire.OptSACKPermitted, 2, wire.OptNOP, wire.OptWindowScale, 3, 7},
			[]opt{{wire.OptMSS, 4, true}, {wire.OptNOP, 1, true}, {wire.OptNOP, 1, true}, {wire.OptSACKPermitted, 2, true}, {wire.OptNOP, 1, true}, {wire.OptWindowScale, 3, true}}, nil},
		{"eol ends the list", []byte{wire.OptNOP, wire.OptEOL, wire.OptMSS, 0xff}, []opt{{wire.OptNOP, 1, true}, {wire.OptEOL, 1, true}}, nil},
		{"unknown kind", []byte{30, 3, 1, wire.OptSACK, 2}, []opt{{30, 3, true}, {wire.OptSACK, 2, true}}, nil},
		{"wrong length for its kind", []byte{wire.OptMSS, 3, 1, wire.OptTimestamps, 2}, []opt{{wire.OptMSS, 3, false}, {wire.OptTimestamps, 2, false}}, nil},
		{"length past the end", []byte{wire.OptNOP, wire.OptTimestamps, 10, 1}, []opt{{wire.OptNOP, 1, true}}, wire.ErrBadOption},
		{"length below two", []byte{wire.OptMSS, 1, 0, 0}, nil, wire.ErrBadOption},
		{"kind without length", []byte{wire.OptNOP, wire.OptMSS}, []opt{{wire.OptNOP, 1, true}}, wire.ErrBadOption},
	}
	for _, c := range cases {
		r := wire.NewTCPOptionReader(c.b)
		var got []opt
		for {
			o, ok := r.Next()
			if !ok {
				break
			}
			got = append(got, opt{o.Kind, o.Len(), o.WellFormed()})
		}
		if !reflect.DeepEqual(got, c.want) || r.Err() != c.err {
			t.Errorf("%s: got %v, %v; want %v, %v", c.name, got, r.Err(), c.want, c.err)
		}
	}
	// Values of well-formed options.
	r := wire.NewTCPOptionReader([]byte{wire.OptMSS, 4, 5, 180, wire.OptWindowScale, 3, 7,
		wire.OptTimestamps, 10, 0, 0, 0, 1, 0, 0, 0, 2, wire.OptSACK, 18, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6})
	mss, _ := r.Next()
	ws, _ := r.Next()
	ts, _ := r.Next()
	sack, _ := r.Next()
	val, ecr := ts.Timestamps()
	if mss.MSS() != 1460 || ws.WindowScale() != 7 || val != 1 || ecr != 2 || sack.NumSACKBlocks() != 2 ||
		sack.SACKBlock(0) != (wire.SACKBlock{Left: 3, Right: 4}) || sack.SACKBlock(1) != (wire.SACKBlock{Left: 5, Right: 6}) {
		t.Errorf("values: mss %d wscale %d ts %d/%d sack %d blocks", mss.MSS(), ws.WindowScale(), val, ecr, sack.NumSACKBlocks())
	}
}

// TestAppendTCPOptionReadsBack: what the option constructors and
// AppendTCPOption write, the reader returns unchanged, in order.
func TestAppendTCPOptionReadsBack(t *testing.T) {
	opts := []wire.TCPOption{
		wire.MSSOption(1460), {Kind: wire.OptNOP}, wire.WindowScaleOption(7), wire.SACKPermittedOption(),
		wire.TimestampsOption(1, 2), wire.SACKOption(wire.SACKBlock{Left: 3, Right: 4}, wire.SACKBlock{Left: 5, Right: 6}),
		{Kind: wire.OptEOL},
	}
	var b []byte
	for _, o := range opts {
		b = wire.AppendTCPOption(b, o)
	}
	want := []byte{wire.OptMSS, 4, 5, 180, wire.OptNOP, wire.OptWindowScale, 3, 7, wire.OptSACKPermitted, 2,
		wire.OptTimestamps, 10, 0, 0, 0, 1, 0, 0, 0, 2, wire.OptSACK, 18, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, wire.OptEOL}
	if !bytes.Equal(b, want) {
		t.Fatalf("wrote % x\nwant  % x", b, want)
	}
	r := wire.NewTCPOptionReader(b)
	for i, w := range opts {
		o, ok := r.Next()
		if !ok || o.Kind != w.Kind || !bytes.Equal(o.Data, w.Data) || !o.WellFormed() {
			t.Fatalf("option %d: read %+v, %v; wrote %+v", i, o, ok, w)
		}
	}
	if _, ok := r.Next(); ok || r.Err() != nil {
		t.Fatalf("reader did not end cleanly: %v", r.Err())
	}
}

// TestEncodesAsIsEqualEncoding: EncodesAs says two option sets are alike
// exactly when EncodeTCPOptions writes the same bytes for them, whatever
// the values of absent options and of SACK slots past NumSACK.
func TestEncodesAsIsEqualEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func() wire.TCPOptions {
		o := wire.TCPOptions{
			MSS: uint16(rng.IntN(3)), HasMSS: rng.IntN(2) == 0,
			WScale: uint8(rng.IntN(3)), HasWScale: rng.IntN(2) == 0,
			SACKPermitted: rng.IntN(2) == 0, HasTS: rng.IntN(2) == 0,
			TSVal: uint32(rng.IntN(3)), TSEcr: uint32(rng.IntN(3)),
			NumSACK: rng.IntN(wire.MaxSACKBlocks + 1),
		}
		for i := range o.SACK {
			o.SACK[i] = wire.SACKBlock{Left: uint32(rng.IntN(2)), Right: uint32(rng.IntN(2))}
		}
		return o
	}
	alike, differ := 0, 0
	for range 200000 {
		a, b := random(), random()
		ea := make([]byte, 64) // room for every option at once, past what a header holds
		eb := make([]byte, 64)
		same := bytes.Equal(ea[:wire.EncodeTCPOptions(ea, &a)], eb[:wire.EncodeTCPOptions(eb, &b)])
		if got := a.EncodesAs(&b); got != same {
			t.Fatalf("EncodesAs = %v, encodings equal %v:\n%+v\n%+v", got, same, a, b)
		}
		if same {
			alike++
		} else {
			differ++
		}
	}
	if alike < 100 || differ < 100 {
		t.Fatalf("%d alike, %d different pairs: the draws test too little", alike, differ)
	}
}
