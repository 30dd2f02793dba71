package netif

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"tunstack/wire"
)

// TestReadDescsHandsTheKernelsTSOPacketsOverWhole: through ReadDescs, what
// a kernel socket sends arrives as the kernel sent it to the device, TSO
// packets whole in the caller's arena, each described as GSO of its family
// with the segment size the kernel gave and a partial checksum (built on
// this host: nothing to verify), carrying every byte the socket wrote, in
// order. Over IPv4 and over IPv6.
func TestReadDescsHandsTheKernelsTSOPacketsOverWhole(t *testing.T) {
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		tun, ln := openKernelPeer(t, f, "desc0", false)
		wantGSO := GSOTCPv4
		if f.ipLen == wire.IPv6HeaderLen {
			wantGSO = GSOTCPv6
		}
		arena := make([]byte, 3*tun.DescRoom())
		pkts, descs := make([][]byte, 16), make([]Desc, 16)
		var queue [][]byte
		var qdesc []Desc
		// readTCP returns the next TCP packet of f from the kernel and its
		// descriptor, skipping others (router solicitations, MLD).
		type read struct {
			d Desc
			n int // IP length
		}
		readTCP := func() (wire.TCP, read) {
			t.Helper()
			for {
				for len(queue) > 0 {
					p, d := queue[0], qdesc[0]
					queue, qdesc = queue[1:], qdesc[1:]
					tcp, size, ok := f.parse(p)
					if !ok {
						continue
					}
					if size != len(p) {
						t.Fatalf("IP length field says %d bytes, read %d", size, len(p))
					}
					return tcp, read{d, size}
				}
				n, err := tun.ReadDescs(arena, pkts, descs)
				if err != nil {
					t.Fatal(err)
				}
				// The next call reuses the arena: copy.
				for i := range n {
					queue = append(queue, append([]byte(nil), pkts[i]...))
					qdesc = append(qdesc, descs[i])
				}
			}
		}
		gsoPkts, gsoSegs := 0, 0
		kernelDownload(t, tun, ln, f, 256<<10, readTCP, func(tcp wire.TCP, r read) {
			d, n, payload := r.d, r.n, tcp.Payload()
			if d.Csum != CsumPartial {
				t.Fatalf("a TCP packet the kernel built has checksum state %d, want CsumPartial", d.Csum)
			}
			switch d.GSO {
			case GSONone:
				if n > tun.MTU() {
					t.Fatalf("a packet of %d bytes, over the MTU, is not described as GSO", n)
				}
			case wantGSO:
				if d.GSOSize <= 0 || d.GSOSize > f.mss() || len(payload) <= d.GSOSize {
					t.Fatalf("GSO packet of %d payload bytes with segment size %d (MSS %d)", len(payload), d.GSOSize, f.mss())
				}
				gsoPkts++
				gsoSegs += d.Segments(n-len(payload), n)
			default:
				t.Fatalf("GSO type %d, want %d", d.GSO, wantGSO)
			}
		})
		if gsoPkts == 0 {
			t.Error("no TSO packet came over whole")
		}
		if r, s := tun.GSOReadStats(); r != uint64(gsoPkts) || s != uint64(gsoSegs) {
			t.Errorf("GSOReadStats = %d, %d; the packets read were %d TSO packets of %d segments", r, s, gsoPkts, gsoSegs)
		}
		if d := tun.GSODrops(); d != 0 {
			t.Errorf("%d packets read from the kernel could not be used", d)
		}
	})
}

// TestReadDescsRefusesASmallArena: an arena that cannot hold one read is
// refused with an error saying how much is needed, before any read.
func TestReadDescsRefusesASmallArena(t *testing.T) {
	a, _ := NewPipe(1500)
	r := NewDescReader(a)
	_, err := r.ReadDescs(make([]byte, 100), make([][]byte, 1), make([]Desc, 1))
	if err == nil || !errors.Is(err, ErrArenaTooSmall) {
		t.Fatalf("ReadDescs with a 100-byte arena: %v, want ErrArenaTooSmall", err)
	}
}

// TestDescReaderOverAPlainLink: a link without descriptors is read through
// NewDescReader's ReadPackets adapter, packets in MTU-sized places of the
// arena, each one segment with its checksum unverified.
func TestDescReaderOverAPlainLink(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	defer b.Close()
	sent := [][]byte{bytes.Repeat([]byte{0x45}, 60), bytes.Repeat([]byte{0x60}, 1500), {0x45, 1}}
	if _, err := a.WritePackets(sent); err != nil {
		t.Fatal(err)
	}
	r := NewDescReader(b)
	if r.DescRoom() != 1500 {
		t.Fatalf("DescRoom %d, want the MTU", r.DescRoom())
	}
	arena := make([]byte, 4*1500)
	pkts, descs := make([][]byte, 8), make([]Desc, 8)
	for i := range descs {
		descs[i] = Desc{GSO: GSOTCPv4, GSOSize: 1, Csum: CsumPartial} // to be overwritten
	}
	var got [][]byte
	for len(got) < len(sent) {
		n, err := r.ReadDescs(arena, pkts, descs)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if !reflect.DeepEqual(descs[i], Desc{}) {
				t.Errorf("packet %d has descriptor %+v, want the zero Desc", len(got), descs[i])
			}
			got = append(got, append([]byte(nil), pkts[i]...))
		}
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("packet %d differs", i)
		}
	}
}

// TestDescWriterOverAPlainLinkFinishesPartialChecksums: a link without
// descriptors gets, through NewDescWriter, packets whose partial TCP
// checksums are finished, and the others untouched.
func TestDescWriterOverAPlainLinkFinishesPartialChecksums(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	defer b.Close()
	src, dst := [4]byte{198, 18, 0, 2}, [4]byte{198, 18, 0, 1}
	mk := func() []byte {
		p := make([]byte, wire.IPv4HeaderLen+wire.TCPHeaderLen+100)
		wire.PutIPv4Header(p, wire.IPv4Fields{Src: src, Dst: dst, Protocol: wire.ProtoTCP, TTL: 64}, len(p)-wire.IPv4HeaderLen)
		wire.PutTCPHeader(p[wire.IPv4HeaderLen:], wire.TCPFields{SrcPort: 80, DstPort: 4000, Seq: 7, Ack: 9, Flags: wire.FlagACK, Window: 100}, 0)
		for i := wire.IPv4HeaderLen + wire.TCPHeaderLen; i < len(p); i++ {
			p[i] = byte(i)
		}
		return p
	}
	partial, complete := mk(), mk()
	tcp := wire.TCP(partial[wire.IPv4HeaderLen:])
	tcp.SetChecksum(^wire.Fold(wire.PseudoHeaderSum(src, dst, wire.ProtoTCP, len(tcp))))
	wire.TCP(complete[wire.IPv4HeaderLen:]).ComputeChecksum(src, dst)
	want := append([]byte(nil), complete...)
	w := NewDescWriter(a)
	n, err := w.WriteDescs([][]byte{partial, complete},
		[]Desc{{Csum: CsumPartial, CsumStart: wire.IPv4HeaderLen}, {CsumStart: wire.IPv4HeaderLen}})
	if err != nil || n != 2 {
		t.Fatalf("WriteDescs = %d, %v", n, err)
	}
	bufs, sizes := [][]byte{make([]byte, 1500), make([]byte, 1500)}, []int{0, 0}
	for got := 0; got < 2; {
		m, err := b.ReadPackets(bufs[got:], sizes[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += m
	}
	for i := range 2 {
		if !bytes.Equal(bufs[i][:sizes[i]], want) {
			t.Errorf("packet %d arrived as % x, want % x", i, bufs[i][:sizes[i]], want)
		}
	}
	bad := mk()
	if _, err := w.WriteDescs([][]byte{bad[:30]}, []Desc{{Csum: CsumPartial, CsumStart: wire.IPv4HeaderLen}}); err == nil {
		t.Error("a partial checksum whose TCP header is cut off was taken")
	}
}
