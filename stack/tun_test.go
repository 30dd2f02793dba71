package stack

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"tunstack/lab/netns"
	"tunstack/netif"
)

// TestOffloadTUNCarriesGSOBothWays runs the stack on an offload TUN in a
// namespace of its own and has a kernel socket push 8 MiB through an echo
// service and read it back, over IPv4 and over IPv6. The kernel's TSO
// packets reach the engine whole (GRO units, read through the descriptor
// seam), the stack's segments leave as GSO packets, every byte comes back
// in order, and no checksum fails on either side.
func TestOffloadTUNCarriesGSOBothWays(t *testing.T) {
	netns.RequireRoot(t)
	for _, fam := range []struct {
		name        string
		host, stack netip.Addr
		bits        int
	}{
		{"IPv4", netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), 24},
		{"IPv6", netip.MustParseAddr("fd00:7475:6e73::1"), netip.MustParseAddr("fd00:7475:6e73::2"), 64},
	} {
		t.Run(fam.name, func(t *testing.T) {
			ns, err := netns.New("seam")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ns.Close() })
			cfg := netif.TUNConfig{Name: "gro0", Offload: true, MTU: 1500,
				HostAddr: netip.MustParsePrefix("198.18.0.1/24")}
			scfg := Config{Addr: netip.MustParseAddr("198.18.0.2")}
			if fam.host.Is6() {
				cfg.HostAddr6 = netip.PrefixFrom(fam.host, fam.bits)
				scfg.Addr6 = fam.stack
			}
			var tun *netif.TUN
			if err := ns.Do(func() (err error) { tun, err = netif.OpenTUN(cfg); return err }); err != nil {
				t.Fatal(err)
			}
			if !tun.Offload() {
				tun.Close()
				t.Fatal("the kernel refused IFF_VNET_HDR: this test needs offload")
			}
			s, err := New(tun, scfg)
			if err != nil {
				tun.Close()
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if s.out.dw == nil {
				t.Fatal("the stack writes to the TUN without descriptors, computing every checksum")
			}
			ln, err := s.Listen(netip.AddrPortFrom(fam.stack, 5001).String(), 8)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				io.Copy(c, c)
			}()
			var conn net.Conn
			if err := ns.Do(func() (err error) {
				conn, err = net.DialTimeout("tcp", netip.AddrPortFrom(fam.stack, 5001).String(), 10*time.Second)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(2 * time.Minute)) // fail rather than hang

			const size = 8 << 20
			want := make([]byte, size)
			for i := range want {
				want[i] = byte(i*131 + i>>12)
			}
			werr := make(chan error, 1)
			go func() {
				_, err := conn.Write(want)
				werr <- err
			}()
			got := make([]byte, size)
			if _, err := io.ReadFull(conn, got); err != nil {
				t.Fatalf("reading the echo: %v", err)
			}
			if err := <-werr; err != nil {
				t.Fatalf("writing: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("the echo differs from what was sent")
			}
			if p, segs := tun.GSOReadStats(); p == 0 || segs <= p {
				t.Errorf("GSOReadStats = %d packets, %d segments: no TSO packet of the kernel reached the stack whole", p, segs)
			}
			if p, segs := tun.GSOStats(); p == 0 || segs <= p {
				t.Errorf("GSOStats = %d packets, %d segments: the stack wrote no GSO packet", p, segs)
			}
			if d := tun.GSODrops(); d != 0 {
				t.Errorf("%d packets read could not be used", d)
			}
			if st := s.Stats(); st.InCsumErrors != 0 || st.InErrs != 0 {
				t.Errorf("engine counted %d checksum errors and %d bad segments", st.InCsumErrors, st.InErrs)
			}
			kc, err := ns.TCPCounters()
			if err != nil {
				t.Fatal(err)
			}
			if n, ok := kc.Tcp["InCsumErrors"]; !ok || n != 0 {
				t.Errorf("the kernel counted %d TCP checksum errors (counter present: %v)", n, ok)
			}
		})
	}
}
