package netif

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"tunstack/lab/netns"
	"tunstack/wire"
)

// TestWholeTSOReadsTheKernelsTSOPacketsAsTheyAre: with WholeTSO, what a
// kernel socket sends comes out of ReadPackets as the kernel sent it to the
// device: TSO packets larger than the MTU, each a valid IPv4 packet whose
// TCP checksum covers its whole payload, contiguous, together carrying
// every byte the socket wrote.
func TestWholeTSOReadsTheKernelsTSOPacketsAsTheyAre(t *testing.T) {
	netns.RequireRoot(t)
	ns, err := netns.New("wtso")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var tun *TUN
	var ln net.Listener
	err = ns.Do(func() (err error) {
		cfg := TUNConfig{Name: "wtso0", HostAddr: netip.PrefixFrom(gsoDst, 24), Offload: true, WholeTSO: true}
		if tun, err = OpenTUN(cfg); err != nil {
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
	ns.Command("sysctl", "-qw", "net.ipv6.conf.wtso0.disable_ipv6=1").Run()
	timer := time.AfterFunc(20*time.Second, func() { tun.Close(); ln.Close() })
	defer timer.Stop()

	bufs, sizes := [][]byte{make([]byte, 65535)}, []int{0}
	readTCP := func() (wire.IPv4, wire.TCP) {
		t.Helper()
		for {
			n, err := tun.ReadPackets(bufs, sizes)
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				continue
			}
			ip := wire.IPv4(bufs[0][:sizes[0]])
			if ip.Valid() != nil || ip.Protocol() != wire.ProtoTCP {
				continue
			}
			if int(ip.TotalLen()) != sizes[0] {
				t.Fatalf("IP total length %d, read %d bytes", ip.TotalLen(), sizes[0])
			}
			tcp := wire.TCP(ip.Payload())
			if !tcp.ChecksumValid(ip.Src(), ip.Dst()) {
				t.Fatalf("a packet of %d bytes has a bad TCP checksum", sizes[0])
			}
			return ip, tcp
		}
	}
	// ack builds our ACK of everything up to rcvNxt with a 64 KiB window
	// (no window scale was offered), echoing tsVal.
	const iss = 91000
	ack := func(rcvNxt, kernelSeq, tsVal uint32) []byte {
		p := segment{id: 7, seq: iss + 1, ack: rcvNxt, flags: wire.FlagACK, tsVal: 60}.build()
		tcp := wire.TCP(p[wire.IPv4HeaderLen:])
		binary.BigEndian.PutUint32(tcp[8:], rcvNxt)
		binary.BigEndian.PutUint16(tcp[14:], 0xffff)
		binary.BigEndian.PutUint32(tcp[wire.TCPHeaderLen+8:], tsVal)
		tcp.ComputeChecksum(gsoSrc.As4(), gsoDst.As4())
		return p
	}
	tsVal := func(tcp wire.TCP) uint32 {
		var o wire.TCPOptions
		wire.ParseTCPOptions(tcp.Options(), &o)
		return o.TSVal
	}

	syn := synWithOptions(segment{seq: iss, flags: wire.FlagSYN, tsVal: 50}.build())
	if _, err := tun.WritePackets([][]byte{syn}); err != nil {
		t.Fatal(err)
	}
	_, synAck := readTCP()
	if synAck.Flags() != wire.FlagSYN|wire.FlagACK {
		t.Fatalf("got flags %#x, want SYN|ACK", synAck.Flags())
	}
	kernelSeq := synAck.Seq() + 1
	if _, err := tun.WritePackets([][]byte{ack(kernelSeq, kernelSeq, tsVal(synAck))}); err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	const size = 256 << 10
	want := pattern(0, size)
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(want)
		werr <- err
	}()
	rcvNxt, largest := kernelSeq, 0
	var recv []byte
	for len(recv) < size {
		ip, tcp := readTCP()
		payload := tcp.Payload()
		if tcp.Flags()&wire.FlagRST != 0 {
			t.Fatal("the kernel reset the connection")
		}
		if len(payload) == 0 {
			continue
		}
		if tcp.Seq() != rcvNxt {
			t.Fatalf("packet at seq %d, want %d", tcp.Seq(), rcvNxt)
		}
		largest = max(largest, int(ip.TotalLen()))
		recv = append(recv, payload...)
		rcvNxt += uint32(len(payload))
		if _, err := tun.WritePackets([][]byte{ack(rcvNxt, kernelSeq, tsVal(tcp))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-werr; err != nil {
		t.Fatalf("the kernel socket's write: %v", err)
	}
	if !bytes.Equal(recv, want) {
		t.Fatal("the packets read carry different bytes from those the socket wrote")
	}
	if largest <= tun.MTU() {
		t.Errorf("largest packet %d bytes: no TSO packet came out whole (MTU %d)", largest, tun.MTU())
	}
	if r, s := tun.GSOReadStats(); r != 0 || s != 0 {
		t.Errorf("GSOReadStats = %d, %d: packets were cut although WholeTSO is on", r, s)
	}
	if d := tun.GSODrops(); d != 0 {
		t.Errorf("%d packets read from the kernel could not be used", d)
	}
}
