package conformance

import (
	"net/netip"
	"strings"
	"testing"

	"tunstack/wire"
)

// parseOne parses a one-event script and returns its event.
func parseOne(t *testing.T, src string) *Event {
	t.Helper()
	s, err := Parse("t.pkt", src)
	if err != nil {
		t.Fatalf("parse %q: %v", src, err)
	}
	if len(s.Events) != 1 {
		t.Fatalf("parse %q: %d events", src, len(s.Events))
	}
	return s.Events[0]
}

func TestParseMsghdr(t *testing.T) {
	ev := parseOne(t, `+0 sendmsg(4, {msg_name(...)=..., msg_iov(2)=[{..., 100}, {..., 200}], msg_flags=0}, MSG_MORE) = 300`)
	m, err := MsghdrValue(ev.Syscall.Args[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(m.IOV) != 2 || m.IOV[0] != 100 || m.IOV[1] != 200 || m.Controls != 0 {
		t.Fatalf("msghdr %+v, want iovecs 100 and 200", m)
	}
	if v, err := IntValue(m.Flags); err != nil || v != 0 {
		t.Fatalf("msg_flags %s", m.Flags)
	}
	if f, _ := IntValue(ev.Syscall.Args[2]); f != symbols["MSG_MORE"] {
		t.Fatalf("flags %s", ev.Syscall.Args[2])
	}

	ev = parseOne(t, `+0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 1000}], msg_flags=MSG_TRUNC, msg_control=[]}, 0) = 10`)
	m, err = MsghdrValue(ev.Syscall.Args[1])
	if err != nil || len(m.IOV) != 1 || m.IOV[0] != 1000 {
		t.Fatalf("recvmsg msghdr %+v, %v", m, err)
	}
	if v, _ := IntValue(m.Flags); v != symbols["MSG_TRUNC"] {
		t.Fatalf("msg_flags %s", m.Flags)
	}
}

func TestParseMsghdrErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`0 sendmsg(4, {msg_name(...)=..., msg_iov(2)=[{..., 100}], msg_flags=0}, 0) = 1`, "msg_iov(2) lists 1 iovec"},
		{`0 sendmsg(4, {msg_name(...)=..., msg_flags=0}, 0) = 1`, "msg_iov"},
		{`0 sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 1}]}, 0) = 1`, `","`},
		{`0 sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 1}], msg_flags=0, msg_x=[]}, 0) = 1`, "msg_control"},
		{`0 sendmsg(4, {msg_name(3)=..., msg_iov(1)=[{..., 1}], msg_flags=0}, 0) = 1`, `"..." in msg_name`},
	} {
		_, err := Parse("t.pkt", tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parse %q: error %v, want one mentioning %q", tc.src, err, tc.want)
		}
	}
}

func TestIovecAndEpollArgs(t *testing.T) {
	ev := parseOne(t, `+0 writev(4, [{..., 50}, {..., 60}], 2) = 110`)
	lens, err := IovecLengths(ev.Syscall.Args[1])
	if err != nil || len(lens) != 2 || lens[0]+lens[1] != 110 {
		t.Fatalf("iovec lengths %v, %v", lens, err)
	}
	if _, err := IovecLengths(parseOne(t, `0 writev(4, [{"x", 5}], 1) = 5`).Syscall.Args[1]); err == nil {
		t.Fatal("an iovec whose base is not ... was accepted")
	}

	ev = parseOne(t, `+0 epoll_ctl(5, EPOLL_CTL_ADD, 4, {events=EPOLLIN|EPOLLET, fd=4}) = 0`)
	events, form, data, err := EpollArg(ev.Syscall.Args[3])
	if err != nil || events != 1|1<<31 || form != "fd" || data != 4 {
		t.Fatalf("epoll event %#x %s %d, %v", events, form, data, err)
	}
	ev = parseOne(t, `+0 epoll_wait(5, {events=0, u32=0xffffffff}, 1, 0) = 0`)
	if _, form, data, err := EpollArg(ev.Syscall.Args[1]); err != nil || form != "u32" || data != 0xffffffff {
		t.Fatalf("u32 form %s %d, %v", form, data, err)
	}
	ev = parseOne(t, `+0 epoll_wait(5, {events=0, cookie=1}, 1, 0) = 0`)
	if _, _, _, err := EpollArg(ev.Syscall.Args[1]); err == nil {
		t.Fatal("an epoll event with an unknown data field was accepted")
	}
}

func TestParseIPInfo(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want IPInfo
	}{
		{`0 > (tos 0x10) S. 0:0(0) ack 1`, IPInfo{Check: TOSByte, TOS: 0x10}},
		{`0 > [tos 0x28] P. 1:11(10) ack 1`, IPInfo{Check: TOSByte, TOS: 0x28}},
		{`0 < [ect0] S 0:0(0) win 100`, IPInfo{Check: TOSECN, TOS: ecnECT0}},
		{`0 < [ce] . 1:1(0) ack 1 win 100`, IPInfo{Check: TOSECN, TOS: ecnCE}},
		{`0 > [noecn] . 1:1(0) ack 1`, IPInfo{Check: TOSECN, TOS: ecnNotECT}},
		{`0 > [ect01] . 1:1(0) ack 1`, IPInfo{Check: TOSECT01}},
		{`0 > (ttl 64) . 1:1(0) ack 1`, IPInfo{TTL: 64}},
		{`0 > (ect1, flowlabel 0x12345) . 1:1(0) ack 1`, IPInfo{Check: TOSECN, TOS: ecnECT1, FlowLabel: 0x12345, HasFlowLabel: true}},
		{`0 > . 1:1(0) ack 1`, IPInfo{}},
	} {
		ev := parseOne(t, tc.src)
		if ev.Packet.IP != tc.want {
			t.Errorf("%q: IP info %+v, want %+v", tc.src, ev.Packet.IP, tc.want)
		}
	}
	for _, tc := range []struct{ src, want string }{
		{`0 < [ect01] . 1:1(0) ack 1`, "outbound"},
		{`0 > (tos 16) . 1:1(0) ack 1`, "hexadecimal"},
		{`0 > (tos 0x100) . 1:1(0) ack 1`, "out of range"},
		{`0 > (ttl 0) . 1:1(0) ack 1`, "ttl"},
		{`0 > (tos 0x10] . 1:1(0) ack 1`, `")"`},
	} {
		_, err := Parse("t.pkt", tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parse %q: error %v, want one mentioning %q", tc.src, err, tc.want)
		}
	}
}

// TestIPMismatch checks the IP information of a line against an IPv4 TOS
// byte and TTL, and against the same values as an IPv6 Traffic Class and
// Hop Limit (they mean the same in both families).
func TestIPMismatch(t *testing.T) {
	for _, fam := range []struct{ src, dst netip.Addr }{
		{netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("192.0.2.1")},
		{netip.MustParseAddr("fd3d:fa7b:d17d::2"), netip.MustParseAddr("2001:db8::1")},
	} {
		hl := ipHeaderLen(fam.src)
		pkt := make([]byte, hl+wire.TCPHeaderLen)
		putIPHeader(pkt, ipFields{src: fam.src, dst: fam.dst, ttl: 64, tos: 0x28 | ecnECT0}, wire.TCPHeaderLen)
		wire.PutTCPHeader(wire.TCP(pkt[hl:]), wire.TCPFields{SrcPort: 1, DstPort: 2, Flags: wire.FlagACK}, 0)
		ip, _, ok := ipTCP(pkt)
		if !ok || ip.v6 != fam.src.Is6() || ip.src != fam.src || ip.dst != fam.dst {
			t.Fatalf("%v: ipTCP read %+v, %v", fam.src, ip, ok)
		}
		checkIPMismatch(t, ip)
	}
}

func checkIPMismatch(t *testing.T, ip ipHdr) {
	for _, tc := range []struct {
		want IPInfo
		ok   bool
	}{
		{IPInfo{}, true},
		{IPInfo{Check: TOSByte, TOS: 0x2a}, true},
		{IPInfo{Check: TOSByte, TOS: 0x28}, false},
		{IPInfo{Check: TOSECN, TOS: ecnECT0}, true},
		{IPInfo{Check: TOSECN, TOS: ecnCE}, false},
		{IPInfo{Check: TOSECT01}, true},
		{IPInfo{TTL: 64}, true},
		{IPInfo{TTL: 63}, false},
	} {
		if d := ipMismatch(tc.want, ip); (d == "") != tc.ok {
			t.Errorf("%+v against tos 0x2a ttl 64: %q, want match %v", tc.want, d, tc.ok)
		}
	}
}
