package netif

import (
	"bytes"
	"testing"

	"tunstack/wire"
)

// TestWholeTSOReadsTheKernelsTSOPacketsAsTheyAre: with WholeTSO, what a
// kernel socket sends comes out of ReadPackets as the kernel sent it to the
// device: TSO packets larger than the MTU, each a valid packet of its
// family whose TCP checksum covers its whole payload, contiguous, together
// carrying every byte the socket wrote. Over IPv4 and over IPv6.
func TestWholeTSOReadsTheKernelsTSOPacketsAsTheyAre(t *testing.T) {
	forFamilies(t, func(t *testing.T, f gsoFamily) {
		tun, ln := openKernelPeer(t, f, "wtso0", true)

		bufs, sizes := [][]byte{make([]byte, 65535)}, []int{0}
		readTCP := func() (int, wire.TCP) {
			t.Helper()
			for {
				n, err := tun.ReadPackets(bufs, sizes)
				if err != nil {
					t.Fatal(err)
				}
				if n != 1 {
					continue
				}
				tcp, size, ok := f.parse(bufs[0][:sizes[0]])
				if !ok {
					continue
				}
				if size != sizes[0] {
					t.Fatalf("IP length field says %d bytes, read %d", size, sizes[0])
				}
				if !f.checksumOK(tcp) {
					t.Fatalf("a packet of %d bytes has a bad TCP checksum", sizes[0])
				}
				return size, tcp
			}
		}
		// ack acknowledges everything up to rcvNxt with a 64 KiB window
		// (no window scale was offered), echoing tsVal.
		const iss = 91000
		ack := func(rcvNxt, tsVal uint32) []byte {
			return segment{fam: f, id: 7, seq: iss + 1, ack: rcvNxt, flags: wire.FlagACK, tsVal: 60, tsEcr: tsVal, window: 0xffff}.build()
		}

		syn := segment{fam: f, seq: iss, flags: wire.FlagSYN, tsVal: 50, syn: true}.build()
		if _, err := tun.WritePackets([][]byte{syn}); err != nil {
			t.Fatal(err)
		}
		_, synAck := readTCP()
		if synAck.Flags() != wire.FlagSYN|wire.FlagACK {
			t.Fatalf("got flags %#x, want SYN|ACK", synAck.Flags())
		}
		kernelSeq := synAck.Seq() + 1
		if _, err := tun.WritePackets([][]byte{ack(kernelSeq, tsValOf(synAck))}); err != nil {
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
			n, tcp := readTCP()
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
			largest = max(largest, n)
			recv = append(recv, payload...)
			rcvNxt += uint32(len(payload))
			if _, err := tun.WritePackets([][]byte{ack(rcvNxt, tsValOf(tcp))}); err != nil {
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
	})
}
