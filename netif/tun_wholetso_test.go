package netif

import (
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
		readTCP := func() (wire.TCP, int) {
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
				return tcp, size
			}
		}
		largest := 0
		kernelDownload(t, tun, ln, f, 256<<10, readTCP, func(_ wire.TCP, n int) { largest = max(largest, n) })
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
