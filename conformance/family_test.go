package conformance

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tunstack/lab/netns"
	"tunstack/wire"
)

// parseConfig parses a one-line script with option lines opts and the
// command line cmd, and returns its configuration.
func parseConfig(t *testing.T, opts string, cmd ...Option) (Config, error) {
	t.Helper()
	s, err := Parse("t.pkt", opts+"0 close(3) = 0\n", cmd...)
	if err != nil {
		return Config{}, err
	}
	return s.Config, nil
}

func opt(name, value string) Option { return Option{Name: name, Value: value, HasValue: true} }

// TestFamilyDefaultAddresses checks each family's addresses against
// packetdrill's config.c: IPv6 puts the stack at a random host of
// fd3d:fa7b:d17d::/96 in a /48 and the peer at 2001:db8::1 in a /32;
// ipv4-mapped-ipv6 keeps IPv4 on the wire and gives the sockets the
// same addresses mapped into IPv6, in AF_INET6 sockets.
func TestFamilyDefaultAddresses(t *testing.T) {
	c, err := parseConfig(t, "--ip_version=ipv6\n")
	if err != nil {
		t.Fatal(err)
	}
	base := netip.MustParsePrefix("fd3d:fa7b:d17d::/96")
	if !base.Contains(c.LocalIP) || c.LocalIP == base.Addr() || c.LocalPrefixLen != 48 {
		t.Errorf("ipv6 local %v/%d, want a host of %v in a /48", c.LocalIP, c.LocalPrefixLen, base)
	}
	if c.RemoteIP.String() != "2001:db8::1" || c.RemotePrefix.String() != "2001:db8::/32" || c.GatewayIP.String() != "fd3d:fa7b:d17d:8888::" {
		t.Errorf("ipv6 remote %v in %v, gateway %v", c.RemoteIP, c.RemotePrefix, c.GatewayIP)
	}
	if c.BindIP != c.LocalIP || c.ConnectIP != c.RemoteIP || !c.SocketFamily6 {
		t.Errorf("ipv6 sockets bind %v connect %v family6 %v", c.BindIP, c.ConnectIP, c.SocketFamily6)
	}

	// packetdrill's lexer reads ipv4-mapped-ipv6 on an option line as
	// words and a minus (a syntax error): that family is for the command
	// line.
	if _, err := parseConfig(t, "--ip_version=ipv4-mapped-ipv6\n"); err == nil {
		t.Error("--ip_version=ipv4-mapped-ipv6 parsed as an option line")
	}
	c, err = parseConfig(t, "--local_ip=192.168.7.8\n", opt("ip_version", "ipv4-mapped-ipv6"))
	if err != nil {
		t.Fatal(err)
	}
	if c.LocalIP.String() != "192.168.7.8" || c.RemoteIP.String() != "192.0.2.1" ||
		c.BindIP.String() != "::ffff:192.168.7.8" || c.ConnectIP.String() != "::ffff:192.0.2.1" || !c.SocketFamily6 {
		t.Errorf("mapped: wire %v > %v, sockets %v > %v, family6 %v", c.LocalIP, c.RemoteIP, c.BindIP, c.ConnectIP, c.SocketFamily6)
	}

	c, err = parseConfig(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.IPVersion != "ipv4" || !c.LocalIP.Is4() || c.BindIP != c.LocalIP || c.SocketFamily6 || c.LocalPrefixLen != 16 {
		t.Errorf("default: %s %v bind %v family6 %v /%d", c.IPVersion, c.LocalIP, c.BindIP, c.SocketFamily6, c.LocalPrefixLen)
	}
}

// TestFamilyCommandLineWins checks that --ip_version on the command line
// overrides a script's option line, as packetdrill's does, and that each
// family's addresses must be of that family.
func TestFamilyCommandLineWins(t *testing.T) {
	c, err := parseConfig(t, "--ip_version=ipv4\n", opt("ip_version", "ipv6"), opt("remote_ip", "fd3d:fa7b:d17d::1"),
		opt("local_ip", "fd3d:a0b:17d6::1"))
	if err != nil {
		t.Fatal(err)
	}
	if c.IPVersion != "ipv6" || c.RemoteIP.String() != "fd3d:fa7b:d17d::1" || c.RemotePrefix.Bits() != 128 || c.LocalIP.String() != "fd3d:a0b:17d6::1" {
		t.Errorf("got %s %v (%v) %v", c.IPVersion, c.RemoteIP, c.RemotePrefix, c.LocalIP)
	}
	for _, tc := range []struct {
		opts []Option
		want string
	}{
		{[]Option{opt("ip_version", "ipv6"), opt("local_ip", "192.168.0.2")}, "bad IPv6 address: 192.168.0.2"},
		{[]Option{opt("ip_version", "ipv6"), opt("remote_ip", "192.0.2.1")}, "bad IPv6 address: 192.0.2.1"},
		{[]Option{opt("ip_version", "ipv4-mapped-ipv6"), opt("local_ip", "fd3d::1")}, "bad IPv4 address: fd3d::1"},
		{[]Option{opt("ip_version", "ipv5")}, "bad --ip_version: ipv5"},
	} {
		if _, err := parseConfig(t, "", tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.opts, err, tc.want)
		}
	}
}

// stackPacket6 builds an IPv6 packet from the stack to the peer.
func stackPacket6(src, dst netip.Addr, flags uint8, seq, ack uint32, payload int, opts []byte, flowLabel uint32) []byte {
	tcpLen := wire.TCPHeaderLen + len(opts) + payload
	b := make([]byte, wire.IPv6HeaderLen+tcpLen)
	wire.PutIPv6Header(b, wire.IPv6Fields{Src: src.As16(), Dst: dst.As16(), NextHeader: wire.ProtoTCP, HopLimit: 64, FlowLabel: flowLabel}, tcpLen)
	t := wire.TCP(b[wire.IPv6HeaderLen:])
	wire.PutTCPHeader(t, wire.TCPFields{SrcPort: 8080, DstPort: 40000, Seq: seq, Ack: ack, Flags: flags, Window: 1000}, len(opts))
	copy(t[wire.TCPHeaderLen:], opts)
	t.ComputeChecksum6(src.As16(), dst.As16())
	return b
}

// TestRunnerIPv6Packets runs a script with --ip_version=ipv6 against a
// replay target: the runner must read the stack's IPv6 packets, build its
// own as IPv6 (Traffic Class from tos, Hop Limit from ttl, the flow label,
// the checksum over the IPv6 pseudo-header, no IPv4 identification) and
// hand the target the IPv6 addresses and AF_INET6 sockets.
func TestRunnerIPv6Packets(t *testing.T) {
	local, remote := netip.MustParseAddr("fd3d:fa7b:d17d::2"), netip.MustParseAddr("2001:db8::1")
	synack := stackPacket6(local, remote, wire.FlagSYN|wire.FlagACK, isn, 1, 0, []byte{2, 4, 5, 0xb4}, 0)
	data := stackPacket6(local, remote, wire.FlagPSH|wire.FlagACK, isn+1, 1, 100, nil, 0)
	src := "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n" +
		"+0 < (tos 0x28, flowlabel 0x12345) S 0:0(0) win 1000 <mss 1460>\n" +
		"+0 > S. 0:0(0) ack 1 <mss 1460>\n" +
		"+.1 < (ttl 7) . 1:1(0) ack 1 win 1000\n" +
		"+.1 > (ttl 64) P. 1:101(100) ack 1 win 1000\n"
	res, fake := runReplayArgs(t, src, []outPkt{{synack, time.Millisecond}, {data, 201 * time.Millisecond}},
		opt("ip_version", "ipv6"), opt("local_ip", local.String()))
	if res.Status != Pass || res.Family != "ipv6" {
		t.Fatalf("%s (family %q): %v", res.Status, res.Family, res.Failure)
	}
	if got := fake.cfg; got.LocalIP != local || got.RemoteIP != remote || got.BindIP != local || got.ConnectIP != remote || !got.SocketFamily6 ||
		got.LocalPrefixLen != 48 || got.RemotePrefix.String() != "2001:db8::/32" {
		t.Errorf("target config %+v", got)
	}
	if len(fake.injected) != 2 {
		t.Fatalf("%d packets injected, want 2", len(fake.injected))
	}
	syn, ack := wire.IPv6(fake.injected[0]), wire.IPv6(fake.injected[1])
	for i, p := range []wire.IPv6{syn, ack} {
		if p.Valid() != nil || p.NextHeader() != wire.ProtoTCP || p.SrcAddr() != remote || p.DstAddr() != local ||
			int(p.PayloadLen()) != len(p)-wire.IPv6HeaderLen {
			t.Fatalf("packet %d is not IPv6/TCP from %v to %v: % x", i, remote, local, []byte(p))
		}
		if !wire.TCP(p.Payload()).ChecksumValid6(p.Src(), p.Dst()) {
			t.Errorf("packet %d: bad checksum over the IPv6 pseudo-header", i)
		}
	}
	if syn.TrafficClass() != 0x28 || syn.FlowLabel() != 0x12345 || syn.HopLimit() != 64 {
		t.Errorf("SYN: traffic class %#x, flow label %#x, hop limit %d", syn.TrafficClass(), syn.FlowLabel(), syn.HopLimit())
	}
	if ack.HopLimit() != 7 || ack.TrafficClass() != 0 || ack.FlowLabel() != 0 {
		t.Errorf("ACK: hop limit %d, traffic class %#x, flow label %#x", ack.HopLimit(), ack.TrafficClass(), ack.FlowLabel())
	}
	if a := wire.TCP(ack.Payload()).Ack(); a != isn+1 {
		t.Errorf("ACK acknowledges %d, want the stack's ISN+1 %d", a, isn+1)
	}
}

// TestRunnerIPv6IgnoresOtherPackets checks that what an IPv6 link carries
// besides the connection (IPv4, a router solicitation, TCP of other
// addresses) is passed by, as the linux target's TUN brings the kernel's
// neighbour discovery and MLD along.
func TestRunnerIPv6IgnoresOtherPackets(t *testing.T) {
	local, remote := netip.MustParseAddr("fd3d:fa7b:d17d::2"), netip.MustParseAddr("2001:db8::1")
	rs := make([]byte, wire.IPv6HeaderLen+8)
	wire.PutIPv6Header(rs, wire.IPv6Fields{Src: local.As16(), Dst: netip.MustParseAddr("ff02::2").As16(), NextHeader: wire.ProtoICMPv6, HopLimit: 255}, 8)
	rs[wire.IPv6HeaderLen] = 133 // router solicitation
	other := stackPacket6(local, netip.MustParseAddr("2001:db8::9"), wire.FlagACK, 5, 5, 0, nil, 0)
	synack := stackPacket6(local, remote, wire.FlagSYN|wire.FlagACK, isn, 1, 0, []byte{2, 4, 5, 0xb4}, 0)
	src := "0 < S 0:0(0) win 1000 <mss 1460>\n+0 > S. 0:0(0) ack 1 <mss 1460>\n"
	res, _ := runReplayArgs(t, src, []outPkt{{rs, 0}, {other, 0}, {stackPacket(wire.FlagACK, 1, 1, 0, nil), 0}, {synack, time.Millisecond}},
		opt("ip_version", "ipv6"), opt("local_ip", local.String()))
	if res.Status != Pass {
		t.Fatalf("%s: %v", res.Status, res.Failure)
	}
}

// TestFlowLabels checks the pairing of script and stack flow labels
// packetdrill makes: bound on first use, the same script label wants the
// same stack label, another script label another stack label.
func TestFlowLabels(t *testing.T) {
	var f flowLabels
	steps := []struct {
		script, live uint32
		want         string
	}{
		{1, 0, "unmarked"},
		{1, 0xabc, ""},
		{1, 0xabc, ""},
		{1, 0xdef, "inconsistent flowlabels"},
		{2, 0xabc, "expected a different flowlabel"},
		{2, 0x123, ""},
		{2, 0x123, ""},
		{1, 0x123, "expected a different flowlabel"},
	}
	for i, s := range steps {
		d := f.check(s.script, s.live)
		if (s.want == "") != (d == "") || !strings.Contains(d, s.want) {
			t.Errorf("step %d (script %#x, live %#x): %q, want %q", i, s.script, s.live, d, s.want)
		}
	}
}

// TestMergeSegmentsIPv6 checks that a burst of IPv6 segments merges into
// one TSO packet with the IPv6 payload length and the TCP checksum over
// the IPv6 pseudo-header, as the kernel's TUN would hand it over.
func TestMergeSegmentsIPv6(t *testing.T) {
	local, remote := netip.MustParseAddr("fd3d:fa7b:d17d::2"), netip.MustParseAddr("2001:db8::1")
	a := stackPacket6(local, remote, wire.FlagACK, 1000, 1, 1440, nil, 7)
	b := stackPacket6(local, remote, wire.FlagACK|wire.FlagPSH, 2440, 1, 1000, nil, 7)
	if !sameSegmentHeaders(a, b) {
		t.Fatal("segments of one flow differ in their headers")
	}
	if c := stackPacket6(local, remote, wire.FlagACK, 2440, 1, 1000, nil, 8); sameSegmentHeaders(a, c) {
		t.Error("segments with different flow labels were taken for one TSO packet")
	}
	m := mergeSegments([]outbound{{a, 0}, {b, 0}})
	ip := wire.IPv6(m)
	if ip.Valid() != nil || int(ip.PayloadLen()) != wire.TCPHeaderLen+2440 || len(m) != wire.IPv6HeaderLen+wire.TCPHeaderLen+2440 {
		t.Fatalf("merged packet: payload length %d, %d bytes", ip.PayloadLen(), len(m))
	}
	seg := wire.TCP(ip.Payload())
	if seg.Seq() != 1000 || seg.Flags() != wire.FlagACK|wire.FlagPSH || !seg.ChecksumValid6(ip.Src(), ip.Dst()) || ip.FlowLabel() != 7 {
		t.Errorf("merged: seq %d flags %s checksum ok %v flow label %#x", seg.Seq(), FlagString(seg.Flags()), seg.ChecksumValid6(ip.Src(), ip.Dst()), ip.FlowLabel())
	}
	h, _, ok := ipTCP(m)
	if !ok || !h.v6 || h.src != local || h.dst != remote || h.hdrLen != wire.IPv6HeaderLen || binary.BigEndian.Uint16(m[4:]) != ip.PayloadLen() {
		t.Errorf("ipTCP of the merged packet: %+v %v", h, ok)
	}
}

// TestInProcessTargetsRunEachFamily runs scripts on tunstack and gVisor in
// each family: a passive and an active open with data, so that packets go
// both ways through bind, listen, accept and connect of the family's
// sockets.
func TestInProcessTargetsRunEachFamily(t *testing.T) {
	scripts := []string{"scripts/handshake/passive-open-options.pkt", "scripts/handshake/active-open-no-options.pkt"}
	for _, stack := range []string{"tunstack", "gvisor"} {
		for _, fam := range []string{"ipv4", "ipv6", "ipv4-mapped-ipv6"} {
			args := []Option{opt("ip_version", fam)}
			if fam == "ipv6" {
				args = append(args, opt("mtu", "1520"))
			}
			for _, s := range scripts {
				res := Run(s, Options{Stack: stack, Args: args, KeepGoing: stack == "gvisor"})
				switch {
				case res.Family != fam:
					t.Errorf("%s %s: result family %q", stack, fam, res.Family)
				case stack == "tunstack" && res.Status != Pass:
					t.Errorf("%s on tunstack in %s: %s %v", s, fam, res.Status, res.Failure)
				case stack == "gvisor" && (res.Status == Skip || res.Matched < 5):
					// gVisor's own window differs (differences.json);
					// the handshake and the data must still get through.
					t.Errorf("%s on gvisor in %s: %s, %d of %d lines matched: %v", s, fam, res.Status, res.Matched, res.Lines, res.Failure)
				}
			}
		}
	}
}

// TestSuitePassesOnTunstackIPv6 runs every script that is not for IPv4
// alone on tunstack over IPv6, with the kernel selftests' IPv6 MTU of
// 1520 (the MSS of 1460 the scripts are written with): the engine must
// behave as over IPv4.
func TestSuitePassesOnTunstackIPv6(t *testing.T) {
	var scripts []string
	for _, f := range suiteScripts(t) {
		if fam, err := ScriptFamily(f); err != nil {
			t.Fatal(err)
		} else if fam == "" || fam == "ipv6" {
			scripts = append(scripts, f)
		}
	}
	for _, f := range scripts {
		res := Run(f, Options{Stack: "tunstack", Args: []Option{opt("ip_version", "ipv6"), opt("mtu", "1520")}, ToleranceUsecs: suiteToleranceUsecs})
		if res.Status != Pass {
			t.Errorf("%s over IPv6: %s %v", f, res.Status, res.Failure)
		}
	}
}

// TestLinuxTargetRunsIPv6 runs a passive open with data on the kernel over
// IPv6: its TUN gets the local address in a /48 and the route to the
// peer's /32, its sockets are AF_INET6, and the runner reads the kernel's
// IPv6 packets (TSO ones included) past its router solicitations and MLD
// reports.
func TestLinuxTargetRunsIPv6(t *testing.T) {
	netns.RequireRoot(t)
	s := "scripts/handshake/passive-open-wscale-0.pkt"
	res := Run(s, Options{Stack: "linux", Args: []Option{opt("ip_version", "ipv6"), opt("mtu", "1520")}, ToleranceUsecs: suiteToleranceUsecs})
	if res.Status != Pass || res.Family != "ipv6" {
		t.Fatalf("%s over IPv6 on linux: %s (family %q) %v %s", s, res.Status, res.Family, res.Failure, res.Reason)
	}
}

// TestSocketDomainIsTheRuns checks that a socket() naming a domain gets
// it only when it is the run's (AF_INET6 for ipv6 and ipv4-mapped-ipv6,
// AF_INET for ipv4), on each target (linux as root only).
func TestSocketDomainIsTheRuns(t *testing.T) {
	dir := t.TempDir()
	for _, stack := range []string{"tunstack", "gvisor", "linux"} {
		t.Run(stack, func(t *testing.T) {
			if stack == "linux" {
				netns.RequireRoot(t)
			}
			for _, tc := range []struct{ fam, domain, want string }{
				{"ipv4", "AF_INET", ""},
				{"ipv4", "AF_INET6", "only the run's, AF_INET "},
				{"ipv6", "AF_INET6", ""},
				{"ipv6", "AF_INET", "only the run's, AF_INET6 "},
				{"ipv4-mapped-ipv6", "AF_INET", "only the run's, AF_INET6 "},
			} {
				path := filepath.Join(dir, tc.fam+"-"+tc.domain+".pkt")
				os.WriteFile(path, []byte("0 socket("+tc.domain+", SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3) = 0\n"), 0o644)
				res := Run(path, Options{Stack: stack, Args: []Option{opt("ip_version", tc.fam)}})
				switch {
				case tc.want == "" && res.Status != Pass:
					t.Errorf("%s socket(%s): %s %v", tc.fam, tc.domain, res.Status, res.Failure)
				case tc.want != "" && (res.Status != Fail || res.Failure == nil || !strings.Contains(res.Failure.Message, tc.want)):
					t.Errorf("%s socket(%s): %s %v, want a failure saying %q", tc.fam, tc.domain, res.Status, res.Failure, tc.want)
				}
			}
		})
	}
}
