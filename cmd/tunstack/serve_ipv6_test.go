package main

// serve over IPv6: --net6, the dual-stack services, and what a kernel
// client sees of them through curl -6, ping -6 and a capture, on both
// stacks. The namespaced tests need root and skip without it, like the
// others in serve_test.go.

import (
	"errors"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tunstack/internal/testtools"
	"tunstack/lab/netns"
)

// url6 is path on the demo site at the stack's IPv6 address.
func (s *served) url6(path string) string {
	return "http://" + netip.AddrPortFrom(s.cfg.StackAddr6, s.cfg.HTTPPort).String() + path
}

func TestParseServeFlagsNet6(t *testing.T) {
	cfg, err := parseServeFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Net6 != netip.MustParsePrefix("fd00:7475:6e73::/64") || cfg.HostAddr6 != netip.MustParseAddr("fd00:7475:6e73::1") ||
		cfg.StackAddr6 != netip.MustParseAddr("fd00:7475:6e73::2") {
		t.Errorf("default IPv6: %v, host %v, stack %v; want fd00:7475:6e73::/64, ::1, ::2", cfg.Net6, cfg.HostAddr6, cfg.StackAddr6)
	}
	cfg, err = parseServeFlags([]string{"--net6", "2001:db8:7:8:9::55/80"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Net6 != netip.MustParsePrefix("2001:db8:7:8:9::/80") || cfg.HostAddr6 != netip.MustParseAddr("2001:db8:7:8:9::1") ||
		cfg.StackAddr6 != netip.MustParseAddr("2001:db8:7:8:9::2") {
		t.Errorf("--net6 2001:db8:7:8:9::55/80: %v, host %v, stack %v; want the masked prefix, ::1, ::2", cfg.Net6, cfg.HostAddr6, cfg.StackAddr6)
	}
	cfg, err = parseServeFlags([]string{"--net6", "none", "--mtu", "576"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Net6.IsValid() || cfg.HostAddr6.IsValid() || cfg.StackAddr6.IsValid() {
		t.Errorf("--net6 none: %v, host %v, stack %v; want IPv6 off", cfg.Net6, cfg.HostAddr6, cfg.StackAddr6)
	}
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--net6", "banana"}, "IPv6 prefix in CIDR form"},
		{[]string{"--net6", "fd00::2"}, "IPv6 prefix in CIDR form"},
		{[]string{"--net6", "198.18.0.0/24"}, "is not IPv6"},
		{[]string{"--net6", "::ffff:198.18.0.0/120"}, "is not IPv6"},
		{[]string{"--net6", "fd00::/127"}, "no room for ::1 and ::2"},
		{[]string{"--net6", "ff02::/64"}, "not a unicast prefix"},
		{[]string{"--net6", "fe80::/64"}, "not a unicast prefix"},
		{[]string{"--mtu", "1279"}, "--net6 none"},
	} {
		_, err := parseServeFlags(c.args)
		var ue *usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%q: %v, want a usage error saying %q", c.args, err, c.says)
			continue
		}
		if msg := err.Error(); strings.Count(msg, ". ") > 0 || !strings.HasSuffix(msg, ".") {
			t.Errorf("%q: %q is not one sentence", c.args, msg)
		}
	}
}

// Each service listens on the stack's IPv4 address and on its IPv6 address,
// and the banner shows how to reach them over IPv6.
func TestServeListensOnBothFamiliesAndTheBannerShowsIPv6(t *testing.T) {
	netns.RequireRoot(t)
	for _, stack := range stacks {
		t.Run(stack, func(t *testing.T) {
			s := startServe(t, "--stack", stack)
			got := map[string][]string{}
			for _, l := range s.sess.listeners {
				got[l.name] = append(got[l.name], l.ln.Addr().String())
			}
			for name, port := range map[string]uint16{"http": 80, "echo": 7, "discard": 9, "chargen": 19} {
				p := strconv.Itoa(int(port))
				if want := []string{"198.18.0.2:" + p, "[fd00:7475:6e73::2]:" + p}; !slices.Equal(got[name], want) {
					t.Errorf("%s listens on %v, want %v", name, got[name], want)
				}
			}
			out := s.out.String()
			for _, want := range []string{
				"host (kernel) side 198.18.0.1 and fd00:7475:6e73::1, stack 198.18.0.2 and fd00:7475:6e73::2",
				"curl -6 'http://[fd00:7475:6e73::2]/'",
				"ping -6 -c 3 fd00:7475:6e73::2",
				"tcpdump -n -i tun0 ip6",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("the banner lacks %q:\n%s", want, out)
				}
			}
			// Each family reaches the HTTP service, and the site sees the
			// client's address in its own family.
			for u, client := range map[string]string{s.url("/"): "198.18.0.1:", s.url6("/"): "[fd00:7475:6e73::1]:"} {
				body := string(s.curl(t, u))
				if !strings.Contains(body, "served by "+stack+".") || !strings.Contains(body, "You are "+client) {
					t.Errorf("%s does not name the stack or the client %s: %s", u, client, body)
				}
			}
		})
	}
}

func TestServeWithNet6NoneListensOnIPv4Only(t *testing.T) {
	netns.RequireRoot(t)
	s := startServe(t, "--net6", "none")
	for _, l := range s.sess.listeners {
		if a := l.ln.Addr().String(); !strings.HasPrefix(a, "198.18.0.2:") {
			t.Errorf("%s listens on %s, want 198.18.0.2", l.name, a)
		}
	}
	if out := s.out.String(); strings.Contains(out, "curl -6") || strings.Contains(out, "ping -6") || !strings.Contains(out, "(IPv6 off)") {
		t.Errorf("the banner shows IPv6 or does not say it is off:\n%s", out)
	}
	out, err := s.ns.Command("ip", "-6", "addr", "show", "dev", s.cfg.Dev, "scope", "global").CombinedOutput()
	if err != nil || strings.Contains(string(out), "inet6") {
		t.Errorf("the device has a global IPv6 address with --net6 none (%v):\n%s", err, out)
	}
}

func TestServeCurl6Downloads100MiBAndUploads100MiBIntact(t *testing.T) {
	testtools.Need(t, "curl")
	netns.RequireRoot(t)
	dir := t.TempDir()
	const size = 100 * mib
	down := writeRandomFile(t, filepath.Join(dir, "big.bin"), size, 5)
	upPath := filepath.Join(t.TempDir(), "up.bin")
	up := writeRandomFile(t, upPath, size, 6)
	for _, stack := range stacks {
		t.Run(stack, func(t *testing.T) {
			s := startServe(t, "--stack", stack, "--files", dir)
			sum, n, took, err := s.curlDownloadURL(s.url6("/files/big.bin"))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("100 MiB download over IPv6 in %v", took.Round(time.Millisecond))
			if n != size || sum != down {
				t.Fatalf("downloaded %d bytes with sha256 %s, want %d bytes with %s", n, sum, int64(size), down)
			}
			took = s.curlUpload(t, upPath, s.url6("/upload"), size, up, "-6")
			t.Logf("100 MiB upload over IPv6 in %v", took.Round(time.Millisecond))
		})
	}
}

func TestServePing6GetsReplies(t *testing.T) {
	testtools.Need(t, "ping")
	netns.RequireRoot(t)
	for _, stack := range stacks {
		t.Run(stack, func(t *testing.T) {
			s := startServe(t, "--stack", stack)
			out, err := s.ns.Command("ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "5", s.cfg.StackAddr6.String()).CombinedOutput()
			if err != nil {
				t.Fatalf("ping -6: %v\n%s", err, out)
			}
			m := regexp.MustCompile(`(\d+) received`).FindSubmatch(out)
			if m == nil || string(m[1]) != "3" {
				t.Fatalf("want 3 replies:\n%s", out)
			}
		})
	}
}

// tsharkCount counts the frames of file that filter matches, with TCP
// checksums checked.
func tsharkCount(t *testing.T, file, filter string) int {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-o", "tcp.check_checksum:TRUE", "-Y", filter, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark -Y %q: %v", filter, err)
	}
	return len(strings.Fields(string(out)))
}

// A capture of a download over IPv6 shows the whole connection, every TCP
// checksum good over the IPv6 pseudo-header, and nothing tshark finds
// malformed.
func TestServePcapOverIPv6HasGoodChecksumsAndNothingMalformed(t *testing.T) {
	testtools.Need(t, "tshark", "curl")
	netns.RequireRoot(t)
	for _, stack := range stacks {
		t.Run(stack, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "serve6.pcap")
			s := startServe(t, "--stack", stack, "--pcap", file)
			s.curl(t, "-o", "/dev/null", s.url6("/bytes/3000000"))
			client, server := s.cfg.HostAddr6.String(), s.cfg.StackAddr6.String()
			// As in TestServePcapShowsHandshakeDataFinAndGoodChecksums: the
			// end of the exchange comes after curl is gone.
			var missing []string
			for deadline := time.Now().Add(10 * time.Second); ; {
				pkts, err := tsharkTCPOf(file, "ipv6")
				if err == nil {
					if missing = checkOneConnection(pkts, client, server); len(missing) == 0 {
						break
					}
				}
				if time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err := s.stop(); err != nil {
				t.Fatalf("serve: %v", err)
			}
			pkts, err := tsharkTCPOf(file, "ipv6")
			if err != nil {
				t.Fatal(err)
			}
			if missing = checkOneConnection(pkts, client, server); len(missing) > 0 {
				t.Errorf("the capture lacks %s", strings.Join(missing, "; "))
			}
			data := 0
			for _, p := range pkts {
				if p.checksumStatus != "1" {
					t.Errorf("frame %d: tcp.checksum.status %q, want 1 (good)", p.frame, p.checksumStatus)
				}
				if p.src == server {
					data += p.len
				}
			}
			if data < 3000000 {
				t.Errorf("the stack's segments over IPv6 carry %d bytes, want the 3000000 of the body and more", data)
			}
			if n := tsharkCount(t, file, "_ws.malformed || _ws.expert.severity == error"); n != 0 {
				t.Errorf("tshark finds %d malformed or erroneous frames", n)
			}
			if n := badTCPChecksums(t, file); n != 0 {
				t.Errorf("tshark finds %d segments with a bad TCP checksum", n)
			}
		})
	}
}
