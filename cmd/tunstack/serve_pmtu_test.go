package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tunstack/gvisorstack"
	"tunstack/internal/testtools"
	"tunstack/lab/netns"
)

// Path MTU discovery over IPv6 (RFC 8201) with a real router: the client
// sits in a namespace of its own behind serve's, whose kernel forwards
// between the TUN and a veth toward the client with an MTU of 1280
// (RFC 8200 §5's minimum). The stack's first 1500-byte segments cannot
// cross it: the router drops them and sends the stack an ICMPv6 Packet Too
// Big for 1280 (RFC 4443 §3.2). The download must finish intact, the
// stack's segments must shrink to fit and stay so, and the segment the
// Packet Too Big quotes must be sent again, cut to fit.
//
// That the resend comes at the Packet Too Big itself, not at the
// retransmission timer, is a matter of instants, which the engine's
// virtual-time test (TestPacketTooBigLowersMSSAndRetransmitsAtOnce) checks
// exactly; here the count of retransmission timeouts is only reported: on
// a loaded machine the ACK of the resend can take longer than the 200 ms
// timer, and the timer then rightly fires on any stack.
//
//	client ns: vc fd00:beef::2/64 (MTU 1500), route to the stack via fd00:beef::1
//	serve ns:  vs fd00:beef::1/64 (MTU 1280), tun0 fd00:7475:6e73::1/64, forwarding on
//	stack:     fd00:7475:6e73::2
func TestServeIPv6PathMTUShrinksSegmentsAndResends(t *testing.T) {
	testtools.Need(t, "curl", "tshark", "ip", "sysctl")
	netns.RequireRoot(t)
	for _, stack := range stacks {
		t.Run(stack, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "pmtu.pcap")
			s := startServe(t, "--stack", stack, "--pcap", file)
			client, err := netns.New("servepmtu")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { client.Close() })
			ipIn(t, s.ns, "link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", client.Name())
			ipIn(t, s.ns, "link", "set", "vs", "mtu", "1280", "up")
			ipIn(t, s.ns, "-6", "addr", "add", "fd00:beef::1/64", "dev", "vs", "nodad")
			ipIn(t, client, "link", "set", "vc", "up")
			ipIn(t, client, "-6", "addr", "add", "fd00:beef::2/64", "dev", "vc", "nodad")
			ipIn(t, client, "-6", "route", "add", s.cfg.Net6.String(), "via", "fd00:beef::1")
			if out, err := s.ns.Command("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1").CombinedOutput(); err != nil {
				t.Fatalf("sysctl: %v\n%s", err, out)
			}

			// /bytes/N sends byte i as i mod 251.
			const size = 20_000_000
			want := sha256.New()
			chunk := make([]byte, 251*1000)
			for i := range chunk {
				chunk[i] = byte(i % 251)
			}
			for left := size; left > 0; left -= len(chunk) {
				want.Write(chunk[:min(left, len(chunk))])
			}
			got := &countingHash{h: sha256.New()}
			cmd := client.Command("curl", append(slices.Clone(curlArgs), "-6", s.url6("/bytes/"+strconv.Itoa(size)))...)
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = got, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("curl from behind the router: %v\n%s", err, stderr.Bytes())
			}
			if got.n != size || hex.EncodeToString(got.h.Sum(nil)) != hex.EncodeToString(want.Sum(nil)) {
				t.Fatalf("downloaded %d bytes with sha256 %x, want %d bytes of /bytes' pattern", got.n, got.h.Sum(nil), size)
			}
			var timeouts uint64
			switch n := s.sess.network.(type) {
			case connStats:
				timeouts = n.ConnTotals().Timeouts
			case interface{ Stats() gvisorstack.Stats }:
				timeouts = n.Stats().Timeouts
			}
			if err := s.stop(); err != nil {
				t.Fatalf("serve: %v", err)
			}

			// The capture, in order: what the stack sent toward the client
			// (its IPv6 length) and the Packet Too Bigs it received.
			out, err := exec.Command("tshark", "-r", file, "-Y",
				"(ipv6.src == "+s.cfg.StackAddr6.String()+" && tcp.len > 0) || icmpv6.type == 2",
				"-T", "fields", "-E", "separator=,", "-e", "frame.number", "-e", "icmpv6.type", "-e", "icmpv6.mtu", "-e", "frame.len", "-e", "tcp.seq_raw", "-e", "tcp.len").Output()
			if err != nil {
				t.Fatalf("tshark: %v", err)
			}
			// A Packet Too Big's TCP fields are those of the segment it
			// quotes (tshark dissects the quoted packet).
			ptbs, bigAfter, smallAfter, bigBefore := 0, 0, 0, 0
			var quoted uint32
			resent := false
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				f := strings.Split(line, ",")
				if len(f) != 6 {
					t.Fatalf("tshark line %q", line)
				}
				seq, err1 := strconv.ParseUint(f[4], 10, 32)
				if err1 != nil {
					t.Fatalf("tshark line %q: sequence number: %v", line, err1)
				}
				if f[1] == "2" {
					if ptbs == 0 {
						if f[2] != "1280" {
							t.Errorf("the router's Packet Too Big says MTU %s, want 1280", f[2])
						}
						quoted = uint32(seq)
					}
					ptbs++
					continue
				}
				n, _ := strconv.Atoi(f[3])
				if segLen, _ := strconv.Atoi(f[5]); ptbs > 0 && n <= 1280 && quoted-uint32(seq) < uint32(segLen) {
					resent = true
				}
				switch {
				case ptbs == 0 && n > 1280:
					bigBefore++
				case ptbs > 0 && n <= 1280:
					smallAfter++
				case ptbs > 0 && smallAfter > 0:
					// Segments sent before the Packet Too Big was
					// handled may still be on their way out; once a
					// segment that fits has gone, none may be larger.
					bigAfter++
				}
			}
			t.Logf("%s: %d segments over 1280 bytes before the first of %d Packet Too Bigs, %d that fit after it, %d over 1280 after those; the quoted segment resent cut to fit: %v; %d retransmission timeouts",
				stack, bigBefore, ptbs, smallAfter, bigAfter, resent, timeouts)
			if ptbs == 0 || bigBefore == 0 {
				t.Fatalf("no Packet Too Big reached the stack, or it sent nothing too big first: the test's router did not do its part")
			}
			if smallAfter == 0 || bigAfter > 0 {
				t.Errorf("after the Packet Too Big the stack sent %d segments that fit and then %d over 1280 bytes, want only ones that fit", smallAfter, bigAfter)
			}
			if !resent {
				t.Errorf("no segment that fits carried sequence number %d again, which the first Packet Too Big quoted: the data the router dropped was not resent", quoted)
			}
		})
	}
}
