package conformance

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tunstack/wire"
)

// grammarCase is a script text and whether packetdrill takes it.
type grammarCase struct {
	name string
	src  string
	args []string // command-line options (packetdrill's spelling)
	ok   bool
	// want is part of our error for a rejected text.
	want string
	// atRun marks a text packetdrill parses but fails when it runs the
	// line (a result that is not an integer, a bad string escape): its
	// --dry_run accepts it, and our parser rejects it with the line.
	atRun bool
}

const ev0 = "0 close(3) = 0\n"

// grammarCases were each checked against packetdrill itself (see
// TestGrammarAgreesWithPacketdrill).
var grammarCases = []grammarCase{
	// The shape of a script.
	{name: "empty", src: "", want: "expected an event"},
	{name: "only an init command", src: "`echo hi`\n", want: "expected an event"},
	{name: "one event", src: ev0, ok: true},
	{name: "init and cleanup", src: "`echo init`\n" + ev0 + "`echo cleanup`\n", ok: true},
	{name: "second command without a time", src: "`echo a`\n`echo b`\n" + ev0, want: "2: a shell command without a time may only be"},
	{name: "command without a time between events", src: ev0 + "`echo c`\n+0 close(4) = 0\n", want: "2: a shell command without a time"},
	{name: "two cleanup commands", src: ev0 + "`echo c`\n`echo d`\n", want: "2: a shell command without a time"},
	{name: "timed commands anywhere", src: "`echo init`\n+0 `echo a`\n" + ev0 + "+0 `echo b`\n", ok: true},
	{name: "options, init, events", src: "--mss=1000\n`echo init`\n" + ev0, ok: true},
	{name: "option after an event", src: ev0 + "--mss=1000\n", want: "2: option --mss must come before"},
	{name: "code block with a time", src: "0 %{ x = 1 }%\n", ok: true},
	{name: "code block without a time", src: "%{ x = 1 }%\n" + ev0, want: "1: a %{ code block }% needs a time"},
	{name: "newlines mean nothing", src: "0\nclose(3) =\n0\n", ok: true},
	{name: "two events on a line", src: "0 close(3) = 0 +0 close(4) = 0\n", ok: true},

	// Lexical details.
	{name: "comment on the last line without a newline", src: "0 close(3) = 0 // c", want: "must end with a newline"},
	{name: "comment with a newline", src: "0 close(3) = 0 // c\n", ok: true},
	{name: "block comment", src: "/* a\n comment */ " + ev0, ok: true},
	{name: "block comment does not end at **/", src: "/* a **/ " + ev0, want: "unterminated /* comment"},
	{name: "block comment goes on past **/", src: "/* a **/ b */ " + ev0, ok: true},
	{name: "carriage return", src: "0 close(3) = 0\r\n", want: `found "\r"`},
	{name: "unterminated string", src: "0 write(3, \"abc, 3) = 3\n", want: "unterminated string"},
	{name: "word starting with digits", src: "0 foo(12ab) = 0\n", ok: true},

	// Options.
	{name: "tolerance", src: "--tolerance_usecs=10000\n" + ev0, ok: true},
	{name: "options on a line, blanks around =", src: "--mss = 1000 --mtu=1400\n" + ev0, ok: true},
	{name: "define to a number", src: "--define=X=1\n" + ev0, want: `1: expected a word, a "string" or a ` + "`command`"},
	{name: "define to a word", src: "--define=X=abc\n" + ev0, ok: true},
	{name: "define to a string", src: "--define=X=\"a b\"\n" + ev0, ok: true},
	{name: "define to a command", src: "--define=X=`echo hi`\n" + ev0, ok: true},
	{name: "define without =", src: "--define=X\n" + ev0, want: "1: bad definition: X"},
	{name: "float value", src: "--tolerance_percent=12.5\n" + ev0, want: "a value for --tolerance_percent"},
	{name: "prefix value", src: "--remote_ip=192.0.2.1/24\n" + ev0, want: `found "/"`},
	{name: "path value", src: "--init_scripts=a.sh\n" + ev0, want: `found "."`},
	{name: "quoted path value", src: "--init_scripts=\"a.sh\"\n" + ev0, ok: true},
	{name: "unknown option", src: "--bogus=1\n" + ev0, want: "1: option 'bogus' unknown"},
	{name: "flag with a value", src: "--verbose=1\n" + ev0, want: "option 'verbose' forbids an argument"},
	{name: "option without its value", src: "--mss\n" + ev0, want: "option 'mss' requires an argument"},
	{name: "flag", src: "--verbose\n" + ev0, ok: true},
	{name: "port 0", src: "--bind_port=0\n" + ev0, want: "bad --bind_port: 0"},
	{name: "port too big", src: "--connect_port=70000\n" + ev0, want: "bad --connect_port: 70000"},
	{name: "tolerance 0", src: "--tolerance_usecs=0\n" + ev0, want: "bad --tolerance_usecs: 0"},
	{name: "TS tick too big", src: "--tcp_ts_tick_usecs=2000000\n" + ev0, want: "bad --tcp_ts_tick_usecs"},
	{name: "unknown IP version", src: "--ip_version=ipv5\n" + ev0, want: "bad --ip_version: ipv5"},
	{name: "IPv6", src: "--ip_version=ipv6\n" + ev0, ok: true},
	{name: "local address", src: "--local_ip=10.0.0.1\n" + ev0, ok: true},
	{name: "bad local address", src: "--local_ip=999.1.1.1\n" + ev0, want: "bad IPv4 address: 999.1.1.1"},
	{name: "speed", src: "--speed=100\n" + ev0, ok: true},
	{name: "bad speed", src: "--speed=fast\n" + ev0, want: "bad --speed: fast"},
	{name: "noted options", src: "--non_fatal=packet\n--code_format=python\n--strict_segments\n" + ev0, ok: true},

	// Times.
	{name: "relative range", src: "+1~+2 > . 1:1(0) ack 1\n", ok: true},
	{name: "half relative range", src: "+1~2 > . 1:1(0) ack 1\n", want: "expected + before the end of a relative time range"},
	{name: "other half relative range", src: "1~+2 > . 1:1(0) ack 1\n", want: "the end of a time range"},
	{name: "backwards range", src: "2~1 > . 1:1(0) ack 1\n", want: "time range is backwards"},
	{name: "star for a call", src: "* close(3) = 0\n", want: "<star> can only be used with outbound packets"},
	{name: "range for a call", src: "1~2 close(3) = 0\n", want: "range can only be used with outbound packets"},
	{name: "star for an inbound packet", src: "* < . 1:1(0) ack 1 win 1\n", want: "<star> can only be used"},
	{name: "star for an outbound packet", src: "* > . 1:1(0) ack 1\n", ok: true},
	{name: "negative time", src: "-1 close(3) = 0\n", want: "negative time"},
	{name: "hex time", src: "0x10 close(3) = 0\n", want: "expected an event time"},
	{name: "fraction only", src: ".5 close(3) = 0\n", ok: true},
	{name: "trailing dot", src: "1. close(3) = 0\n", want: `found "."`},
	{name: "relative end time", src: "0...+1 read(3, ..., 1) = 1\n", want: "the end time of a blocking call"},
	{name: "end time", src: "0...1 read(3, ..., 1) = 1\n", ok: true},
	{name: "end time before start", src: "0.5...0.1 read(3, ..., 1) = 1\n", ok: true},

	// Packets.
	{name: "inbound", src: "0 < S 0:0(0) win 100\n", ok: true},
	{name: "inbound without a window", src: "0 < S 0:0(0)\n", want: "window must be specified for inbound packets"},
	{name: "outbound without a window", src: "0 > S 0:0(0)\n", ok: true},
	{name: "bad flag", src: "0 < SX 0:0(0) win 1\n", want: "Invalid TCP flag: 'X'"},
	{name: "dot first", src: "0 < .S 0:0(0) win 1\n", want: "a sequence range"},
	{name: "dot apart", src: "0 < S . 0:0(0) win 1\n", ok: true},
	{name: "no flags", src: "0 < - 0:0(0) win 1\n", ok: true},
	{name: "ACE flags", src: "0 < S1 0:0(0) win 1\n", ok: true},
	{name: "ECN and ACE flags", src: "0 < E1 0:0(0) win 1\n", want: "Conflicting TCP flag: '1'"},
	{name: "inconsistent length", src: "0 < S 0:10(5) win 1\n", want: "inconsistent TCP sequence numbers and payload size"},
	{name: "sequence past 32 bits", src: "0 < S 4294967295:4294967395(100) win 1\n", want: "TCP end sequence number out of range"},
	{name: "ack past 32 bits", src: "0 < . 1:1(0) ack 4294967296 win 1\n", want: "TCP ack sequence number out of range"},
	{name: "window past 16 bits", src: "0 < . 1:1(0) win 65536\n", want: "TCP window value out of range"},
	{name: "hex ack", src: "0 < . 1:1(0) ack 0x10 win 1\n", want: "an acknowledgment number after ack"},
	{name: "win before ack", src: "0 < . 1:1(0) win 1 ack 1\n", want: `found "ack"`},
	{name: "urg before win", src: "0 < U. 1:1(0) ack 1 urg 3 win 100\n", want: "window must be specified for inbound packets"},
	{name: "urg after win", src: "0 < U. 1:1(0) ack 1 win 100 urg 3\n", ok: true},
	{name: "inbound options not padded", src: "0 < S 0:0(0) win 1 <mss 1460,sackOK>\n", want: "TCP options are not padded correctly to ensure TCP header is a multiple of 4 bytes: 2 excess bytes"},
	{name: "outbound options not padded", src: "0 > S 0:0(0) <mss 1460,sackOK>\n", want: "not padded correctly"},
	{name: "options padded", src: "0 < S 0:0(0) win 1 <mss 1460,nop,nop,sackOK>\n", ok: true},
	{name: "no options in brackets", src: "0 > S 0:0(0) <>\n", want: "a TCP option"},
	{name: "any options inbound", src: "0 < S 0:0(0) win 1 <...>\n", want: "<...> for TCP options can only be used with outbound packets"},
	{name: "any options outbound", src: "0 > S 0:0(0) <...>\n", ok: true},
	{name: "five SACK blocks", src: "0 < . 1:1(0) ack 1 win 1 <sack 1:2 3:4 5:6 7:8 9:10>\n", want: "TCP option list too long"},
	{name: "four SACK blocks", src: "0 < . 1:1(0) ack 1 win 1 <nop,nop,sack 1:2 3:4 5:6 7:8>\n", ok: true},
	{name: "timestamps alone", src: "0 < . 1:1(0) ack 1 win 1 <TS val 1 ecr 2>\n", want: "2 excess bytes"},
	{name: "timestamps", src: "0 < . 1:1(0) ack 1 win 1 <nop,nop,TS val 1 ecr 2>\n", ok: true},
	{name: "wscale too big", src: "0 < S 0:0(0) win 1 <wscale 256,nop>\n", want: "window scale shift count out of range"},
	{name: "mss too big", src: "0 < S 0:0(0) win 1 <mss 65536>\n", want: "mss value out of range"},
	{name: "md5", src: "0 < S 0:0(0) win 1 <md5 00112233445566778899aabbccddeeff,nop,nop>\n", ok: true},
	{name: "fast open cookie", src: "0 < S 0:0(0) win 1 <FO abcd>\n", ok: true},
	{name: "odd fast open cookie", src: "0 < S 0:0(0) win 1 <FO abc,nop>\n", want: "odd number of digits"},
	{name: "empty fast open", src: "0 < S 0:0(0) win 1 <nop,nop,FO>\n", ok: true},
	{name: "AccECN", src: "0 < S 0:0(0) win 1 <ECN e0b 1 ceb 2 e1b 3,nop>\n", ok: true},
	{name: "unknown option", src: "0 < S 0:0(0) win 1 <bogus 3>\n", want: "a TCP option"},
	{name: "end of options", src: "0 < S 0:0(0) win 1 <eol,eol,eol,eol>\n", ok: true},
	{name: "udp", src: "0 < udp (100)\n", ok: true},
	{name: "udp too long", src: "0 > udp (70000)\n", want: "UDP payload size out of range"},
	{name: "icmp", src: "0 < icmp unreachable port_unreachable [1:1(0)]\n", ok: true},
	{name: "explicit ports", src: "0 < 8080>9090 S 0:0(0) win 1\n", ok: true},
	{name: "IP information", src: "0 > (tos 0x10) S. 0:0(0) ack 1\n", ok: true},

	// System calls.
	{name: "no arguments", src: "0 foo() = 0\n", ok: true},
	{name: "errno without its text", src: "0 close(3) = -1 EBADF\n", want: "(text) after the errno EBADF"},
	{name: "errno", src: "0 close(3) = -1 EBADF (Bad file descriptor)\n", ok: true},
	{name: "errno and a note", src: "0 close(3) = -1 EBADF (Bad file descriptor) (and more)\n", ok: true},
	{name: "note without errno", src: "0 close(3) = 0 (a note)\n", ok: true},
	{name: "number in a note", src: "0 close(3) = -1 EBADF (1 file)\n", want: "a word or ) in the note"},
	{name: "flags first in a note", src: "0 close(3) = -1 EBADF (flags x)\n", ok: true},
	{name: "flags later in a note", src: "0 close(3) = -1 EBADF (x flags)\n", want: "a word or ) in the note"},
	{name: "punctuation in a note", src: "0 close(3) = -1 EBADF (bad-file)\n", want: "a word or ) in the note"},
	{name: "reserved word in a note", src: "0 close(3) = -1 EBADF (ack)\n", want: "a word or ) in the note"},
	{name: "empty note", src: "0 close(3) = -1 EBADF ()\n", want: "a word"},
	{name: "flags note with |", src: "0 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)\n", want: "a word or ) in the note"},
	{name: "flags note", src: "0 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR O_NONBLOCK)\n", ok: true},
	{name: "symbolic result", src: "0 fcntl(3, F_GETFL) = O_RDWR|O_NONBLOCK\n", want: "Bad type; actual: binary_expression expected: integer", atRun: true},
	{name: "any result", src: "0 read(3, ..., 1) = ...\n", want: "Bad type; actual: ellipsis", atRun: true},
	{name: "result past 32 bits", src: "0 read(3, ..., 1) = 0x100000000\n", want: "Value out of range for 32-bit integer", atRun: true},
	{name: "flags argument", src: "0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n", ok: true},
	{name: "float argument", src: "0 write(3, ..., 1.5) = 0\n", want: "an argument"},
	{name: "call argument", src: "0 foo(3, bar(1)) = 0\n", want: `expected ")", found "("`},
	{name: "htons outside a sockaddr", src: "0 foo(htons(1)) = 0\n", want: "an argument"},
	{name: "inet_addr", src: "0 foo(inet_addr(\"1.2.3.4\")) = 0\n", ok: true},
	{name: "empty list", src: "0 foo([]) = 0\n", ok: true},
	{name: "trailing comma", src: "0 foo([1,]) = 0\n", want: "an argument"},
	{name: "empty braces", src: "0 foo({}) = 0\n", ok: true},
	{name: "structure", src: "0 foo({a=1, 2}) = 0\n", ok: true},
	{name: "pollfd without events", src: "0 foo({fd=3}) = 0\n", want: `expected ","`},
	{name: "pollfd", src: "0 poll([{fd=3, events=POLLIN}], 1, 0) = 0\n", ok: true},
	{name: "pollfd with revents", src: "0 poll([{fd=3, events=POLLIN, revents=0}], 1, 0) = 0\n", ok: true},
	{name: "epoll event", src: "0 epoll_ctl(5, EPOLL_CTL_ADD, 4, {events=EPOLLIN, fd=4}) = 0\n", ok: true},
	{name: "linger", src: "0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0\n", ok: true},
	{name: "linger with a name", src: "0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=X}, 8) = 0\n", want: "an integer after linger="},
	{name: "linger out of order", src: "0 setsockopt(4, SOL_SOCKET, SO_LINGER, {linger=0, onoff=1}, 8) = 0\n", want: "an argument"},
	{name: "assignment", src: "0 foo(a=1|2) = 0\n", ok: true},
	{name: "strings joined", src: "0 foo(\"a\" \"b\") = 0\n", ok: true},
	{name: "string prefix", src: "0 foo(\"a\"...) = 0\n", ok: true},
	{name: "joined strings prefix", src: "0 foo(\"a\" \"b\"...) = 0\n", want: `expected ")", found "..."`},
	{name: "bad escape", src: "0 foo(\"a\\qb\") = 0\n", want: "unsupported escape code: 'q'", atRun: true},
	{name: "reserved word as an argument", src: "0 foo(ack) = 0\n", want: "an argument"},
	{name: "reserved word as a call", src: "0 ack(3) = 0\n", want: "a packet"},
	{name: "sockaddr", src: "0 connect(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr(\"192.0.2.1\")}, 16) = 0\n", ok: true},
	{name: "sockaddr without htons", src: "0 connect(3, {sa_family=AF_INET, sin_port=8080, sin_addr=inet_addr(\"192.0.2.1\")}, 16) = 0\n", want: "htons"},
	{name: "sockaddr with a bad address", src: "0 connect(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr(\"1.2.3\")}, 16) = 0\n", want: "invalid IPv4 address"},
	{name: "negative argument", src: "0 foo(-1) = -1 E2BIG (x)\n", ok: true},

	// Definitions: -D on the command line, --define in the script; a
	// defined WORD reads as its value, and the command line wins.
	{name: "defined number", args: []string{"-D", "N=3"}, src: "0 close(N) = N\n", ok: true},
	{name: "defined command", args: []string{"-D", "CMD=`echo hi`"}, src: ev0 + "CMD\n", ok: true},
	// packetdrill has read the first token after the options before it
	// knows the definitions: that one is never replaced.
	{name: "definition of the first token", args: []string{"-D", "CMD=`echo hi`"}, src: "CMD\n" + ev0, want: `found "CMD"`},
	{name: "defined reserved word", args: []string{"-D", "X=ack"}, src: "0 foo(X) = 0\n", ok: true},
	{name: "defined call name", src: "--define=F=close\n0 F(3) = 0\n", ok: true},
	{name: "command line defines win", args: []string{"-D", "R=1"}, src: "--define=R=xyz\n0 close(3) = R\n", ok: true},
	{name: "script define", src: "--define=R=xyz\n0 close(3) = R\n", want: "Bad type; actual: word", atRun: true},
	{name: "bad command-line definition", args: []string{"-D", "X"}, src: ev0, want: "Command Line: bad definition: X"},
}

// commandLine turns packetdrill command-line arguments into options.
func commandLine(args []string) []Option {
	var out []Option
	for i := 0; i < len(args); i++ {
		if args[i] == "-D" {
			out = append(out, Option{Name: "define", Value: args[i+1], HasValue: true})
			i++
		}
	}
	return out
}

func TestGrammarCases(t *testing.T) {
	for _, c := range grammarCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.pkt", c.src, commandLine(c.args)...)
			if c.ok {
				if err != nil {
					t.Fatalf("rejected: %v\n%s", err, c.src)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error with %q\n%s", c.want, c.src)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want one with %q", err, c.want)
			}
		})
	}
}

// TestGrammarAgreesWithPacketdrill runs every case through the real
// packetdrill when PACKETDRILL names its binary (as for make conformance):
// its --dry_run parses and configures a script without running it, so it
// must accept exactly the cases marked ok, and those it fails only at run
// time.
func TestGrammarAgreesWithPacketdrill(t *testing.T) {
	bin := os.Getenv("PACKETDRILL")
	if bin == "" {
		t.Skip("PACKETDRILL is not set")
	}
	dir := t.TempDir()
	for _, c := range grammarCases {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "t.pkt"), []byte(c.src), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, append(append([]string{"--dry_run"}, c.args...), "t.pkt")...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if accepted := err == nil; accepted != (c.ok || c.atRun) {
				t.Fatalf("packetdrill accepted=%v, the case says %v:\n%s\n%s", accepted, c.ok || c.atRun, c.src, out)
			}
		})
	}
}

// Scripts in the shapes found in packetdrill's own suite and in the wild.
var goodScripts = map[string]string{
	"passive": "--tolerance_usecs=10000\n--ip_version=ipv4\n`../common/defaults.sh`\n" + `
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0  > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
+.1 < . 1:1(0) ack 1 win 257
+0  accept(3, ..., ...) = 4
` + "`echo done`\n",
	"active": `0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 8>
+.1 < S. 0:0(0) ack 1 win 5792 <mss 1460,sackOK,TS val 700 ecr 100,nop,wscale 7>
+0 > . 1:1(0) ack 1 <nop,nop,TS val 200 ecr 700>
+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
+0 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR O_NONBLOCK)`,
	"ranges-blocking": `0.100...0.300 accept(3, ..., ...) = 4
+.2~+.3 > P. 1:1001(1000) ack 1
1.0~1.5 > . 1:1(0) ack 1
* > F. 1:1(0) ack 1 <...>
+0 < R 5:5(0) win 0
+0 < - 1:1(0) win 0
+0 < FP. 1:11(10) ack 1 win 100 urg 3 <sack 1:5 10:20,nop,nop>
+0 < EW. 1:1(0) ack 1 win 100
+0 < U. 1:1(0) ack 1 win 100 urg 1`,
	"syscall-args": `0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0
+0 poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1
+0 setsockopt(3, SOL_TCP, TCP_CONGESTION, "cubic", 5) = 0
+0 write(4, ..., 0x10) = 16
+0 connect(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.0.2.1")}, 16) = 0
+0 getsockopt(4, SOL_SOCKET, SO_ERROR, [ECONNRESET], [4]) = 0
+0 read(4, ..., 100) = -1 EAGAIN (Resource temporarily unavailable)
+0 write(4, "a\tb" "\x41", 4) = 4`,
	"shell-code": "0 `sysctl -q net.ipv4.tcp_sack=0; echo 1 > /proc/sys/net/ipv4/tcp_dsack`\n" + `
+0 %{
assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd
assert tcpi_rto == 1000000
}%
+0 %{ print(tcpi_ca_state) }%
`,
}

func TestParseGoodScripts(t *testing.T) {
	for name, src := range goodScripts {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(name+".pkt", src); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseDetails(t *testing.T) {
	s, err := Parse("p.pkt", goodScripts["passive"])
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Options) != 2 || s.Options[0].Name != "tolerance_usecs" || s.Options[0].Value != "10000" || !s.Options[0].HasValue || s.Options[1].Value != "ipv4" {
		t.Errorf("options: %+v", s.Options)
	}
	if s.Config.Tolerance != 10*time.Millisecond || s.Config.IPVersion != "ipv4" {
		t.Errorf("config: %+v", s.Config)
	}
	if s.Init == nil || s.Init.Command != "../common/defaults.sh" || s.Init.Line != 3 {
		t.Errorf("init command: %+v", s.Init)
	}
	if s.Cleanup == nil || s.Cleanup.Command != "echo done" || s.Cleanup.Line != 13 {
		t.Errorf("cleanup command: %+v", s.Cleanup)
	}
	syn := s.Events[4].Packet
	if syn.Dir != Inbound || syn.Flags != wire.FlagSYN || !syn.HasWin || syn.Win != 32792 || len(syn.Opts) != 6 {
		t.Errorf("SYN: %+v", syn)
	}
	if syn.Opts[0].Kind != OptKindMSS || syn.Opts[0].Value != 1000 || syn.Opts[5].Kind != OptKindWScale || syn.Opts[5].Value != 7 {
		t.Errorf("SYN options: %+v", syn.Opts)
	}
	sa := s.Events[5].Packet
	if sa.Dir != Outbound || sa.Flags != wire.FlagSYN|wire.FlagACK || !sa.HasAck || sa.Ack != 1 || sa.HasWin {
		t.Errorf("SYN-ACK: %+v", sa)
	}
	if e := s.Events[6]; e.Time.Kind != TimeRelative || e.Time.Start != 100*time.Millisecond || e.Line != 11 {
		t.Errorf("event time/line: %+v", e)
	}

	s, err = Parse("a.pkt", goodScripts["active"])
	if err != nil {
		t.Fatal(err)
	}
	if sc := s.Events[7].Syscall; sc.Result.Int != 0x802 || sc.Errno != "" || sc.Note != "flags O_RDWR O_NONBLOCK" {
		t.Errorf("fcntl result and note: %+v", sc)
	}
	if v, _ := IntValue(s.Events[1].Syscall.Args[2]); v != 0x802 {
		t.Errorf("O_RDWR|O_NONBLOCK = %#x", v)
	}

	s, err = Parse("r.pkt", goodScripts["ranges-blocking"])
	if err != nil {
		t.Fatal(err)
	}
	acc := s.Events[0]
	if acc.Time.Start != 100*time.Millisecond || !acc.Syscall.HasEnd || acc.Syscall.EndTime != 300*time.Millisecond {
		t.Errorf("blocking call: %+v %+v", acc.Time, acc.Syscall)
	}
	if r := s.Events[1].Time; r.Kind != TimeRelative || !r.HasRange || r.Start != 200*time.Millisecond || r.End != 300*time.Millisecond {
		t.Errorf("relative range: %+v", r)
	}
	if r := s.Events[2].Time; r.Kind != TimeAbsolute || !r.HasRange || r.End != 1500*time.Millisecond {
		t.Errorf("absolute range: %+v", r)
	}
	if s.Events[3].Time.Kind != TimeAny || !s.Events[3].Packet.OptionsAny {
		t.Errorf("any: %+v", s.Events[3])
	}
	if p := s.Events[5].Packet; p.Flags != 0 || p.FlagStr != "-" {
		t.Errorf("no flags: %+v", p)
	}
	fp := s.Events[6].Packet
	if fp.Flags != wire.FlagFIN|wire.FlagPSH|wire.FlagACK || fp.Len != 10 || fp.Urg != 3 || len(fp.Opts[0].Blocks) != 2 || fp.Opts[1].Kind != OptKindNOP {
		t.Errorf("FP.: %+v", fp)
	}
	if p := s.Events[7].Packet; p.Flags != wire.FlagECE|wire.FlagCWR|wire.FlagACK {
		t.Errorf("EW.: %+v", p)
	}

	s, err = Parse("a.pkt", goodScripts["syscall-args"])
	if err != nil {
		t.Fatal(err)
	}
	l := s.Events[0].Syscall.Args[3]
	if v, _ := StructField(l, "linger"); l.Kind != ExprStruct || v.Int != 0 {
		t.Errorf("linger: %s", l)
	}
	pes, err := PollEntries(s.Events[1].Syscall.Args[0])
	if err != nil || len(pes) != 1 || pes[0].FD != 4 || pes[0].Events != 5 || pes[0].Revents != 4 {
		t.Errorf("poll: %+v %v", pes, err)
	}
	if a := s.Events[2].Syscall.Args[3]; a.Kind != ExprString || a.Name != "cubic" {
		t.Errorf("string: %s", a)
	}
	if v, _ := IntValue(s.Events[3].Syscall.Args[2]); v != 16 {
		t.Errorf("hex: %d", v)
	}
	if sa := s.Events[4].Syscall.Args[1]; sa.String() != `{sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.0.2.1")}` {
		t.Errorf("sockaddr: %s", sa)
	}
	if v, _ := PointerInt(s.Events[5].Syscall.Args[3]); v != 104 {
		t.Errorf("[ECONNRESET] = %d", v)
	}
	rd := s.Events[6].Syscall
	if v, _ := IntValue(rd.Result); v != -1 || rd.Errno != "EAGAIN" || rd.ErrnoText != "Resource temporarily unavailable" || rd.Note != "" {
		t.Errorf("errno: %+v", rd)
	}
	if a := s.Events[7].Syscall.Args[1]; a.Kind != ExprString || a.Name != "a\tbA" {
		t.Errorf("joined string with escapes: %q", a.Name)
	}

	s, err = Parse("c.pkt", goodScripts["shell-code"])
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Events) != 3 || s.Events[0].Shell == nil || s.Init != nil || s.Events[1].Code == nil || !strings.Contains(s.Events[1].Code.Code, "tcpi_rto") || s.Events[2].Code.Code != "print(tcpi_ca_state)" {
		t.Errorf("shell and code blocks: %+v", s.Events)
	}
}

// TestParseTimesAsPacketdrill: a float time's microseconds are truncated,
// not rounded (1.001 s is 1000999 µs to packetdrill: 1.001*1e6 is
// 1000999.9999999999 in floating point).
func TestParseTimesAsPacketdrill(t *testing.T) {
	s, err := Parse("t.pkt", "1.001 close(3) = 0\n+2 close(4) = 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Events[0].Time.Start; got != 1000999*time.Microsecond {
		t.Errorf("1.001 s = %v, want 1.000999s", got)
	}
	if got := s.Events[1].Time.Start; got != 2*time.Second {
		t.Errorf("+2 = %v", got)
	}
}

func TestParseDefines(t *testing.T) {
	s, err := Parse("d.pkt", "--define=SOCK=\"text\"\n--define=W=win\n`echo init`\n0 write(FD, SOCK, 4) = FD\n+0 < . 1:1(0) ack 1 W 1\n",
		Option{Name: "define", Value: "FD=0x10", HasValue: true}, Option{Name: "define", Value: "CMD=`echo hi`", HasValue: true},
		Option{Name: "define", Value: "OCT=010", HasValue: true})
	if err != nil {
		// "W" becomes the WORD "win", not the keyword: packetdrill's
		// definitions never make reserved words.
		if !strings.Contains(err.Error(), `found "win"`) {
			t.Fatal(err)
		}
	} else {
		t.Fatal("a definition made the reserved word win")
	}
	s, err = Parse("d.pkt", "--define=SOCK=\"text\"\n0 write(FD, SOCK, OCT) = FD\nCMD\n",
		Option{Name: "define", Value: "FD=0x10", HasValue: true}, Option{Name: "define", Value: "CMD=`echo hi`", HasValue: true},
		Option{Name: "define", Value: "OCT=010", HasValue: true})
	if err != nil {
		t.Fatal(err)
	}
	sc := s.Events[0].Syscall
	if s.Cleanup == nil || s.Cleanup.Command != "echo hi" || sc.Result.Int != 16 || sc.Args[0].Int != 16 || sc.Args[1].Name != "text" || sc.Args[2].Int != 8 {
		t.Errorf("defined values: cleanup %+v, call %+v", s.Cleanup, sc)
	}
}

func TestParseErrorsNameLineAndExpectation(t *testing.T) {
	cases := []struct{ src, want string }{
		{"0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 > S. 0:0 ack 1", "x.pkt:2: expected \"(\""},
		{"\n\n0 < S 0:10(5) win 100", "x.pkt:3: inconsistent TCP sequence numbers"},
		{"0 < SX 0:0(0) win 1", "x.pkt:1: Invalid TCP flag: 'X'"},
		{"0 close(3)", "x.pkt:1: expected = result after close(...)"},
		{"hello", "x.pkt:1: expected an event time"},
		{"0 `echo", "x.pkt:1: unterminated shell command"},
		{"/* open\n\n", "x.pkt:1: unterminated /* comment"},
		{"0 %{ x", "x.pkt:1: unterminated %{ code block"},
		{"0 write(4, ..., [1, ) = 0", "x.pkt:1: expected an argument"},
		{"... read(4, ..., 1) = 1", "x.pkt:1: expected an event time"},
		{"0 close(3) = 0\n\n\n+0 close(4) =\n (3", "x.pkt:5: expected an argument"},
	}
	for _, c := range cases {
		_, err := Parse("x.pkt", c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", c.src, err, c.want)
		}
	}
}

// TestParseSuiteScripts: every script in the suite parses, and starts by
// setting Linux's defaults in its init command.
func TestParseSuiteScripts(t *testing.T) {
	for _, f := range suiteScripts(t) {
		s, err := ParseFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		if s.Init == nil || !strings.Contains(s.Init.Command, "defaults.sh") {
			t.Errorf("%s: expected an init command running ../common/defaults.sh", f)
		}
	}
}

func TestConfigDefaultsAndOverrides(t *testing.T) {
	s, err := Parse("t.pkt", ev0)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config
	if c.BindPort != 8080 || c.ConnectPort != 8080 || c.MTU != 1500 || c.Tolerance != 4*time.Millisecond || c.TolerancePercent != 12.5 ||
		c.TSTick != 0 || c.RemoteIP.String() != "192.0.2.1" || c.RemotePrefix.String() != "192.0.2.0/24" || c.GatewayIP.String() != "192.168.0.1" ||
		c.Netmask.String() != "255.255.0.0" || c.IPVersion != "ipv4" {
		t.Errorf("defaults: %+v", c)
	}
	// The local address is random in 192.168.0.0/16, never the network,
	// the gateway (.0.1) or the broadcast address.
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		s, _ := Parse("t.pkt", ev0)
		a := s.Config.LocalIP.As4()
		if a[0] != 192 || a[1] != 168 || (a[2] == 0 && a[3] < 2) || (a[2] == 255 && a[3] == 255) {
			t.Fatalf("default local address %s", s.Config.LocalIP)
		}
		seen[s.Config.LocalIP.String()] = true
	}
	if len(seen) < 2 {
		t.Errorf("50 default local addresses, all %v", seen)
	}
	// Script options, then the command line's, which win.
	s, err = Parse("t.pkt", "--tolerance_usecs=10000\n--bind_port=9000\n--remote_ip=192.0.2.7\n"+ev0,
		Option{Name: "tolerance_usecs", Value: "20000", HasValue: true}, Option{Name: "tolerance_percent", Value: "5.5", HasValue: true},
		Option{Name: "local_ip", Value: "10.1.2.3", HasValue: true})
	if err != nil {
		t.Fatal(err)
	}
	c = s.Config
	if c.Tolerance != 20*time.Millisecond || c.TolerancePercent != 5.5 || c.BindPort != 9000 || c.RemoteIP.String() != "192.0.2.7" ||
		c.RemotePrefix.Bits() != 32 || c.LocalIP.String() != "10.1.2.3" {
		t.Errorf("overrides: %+v", c)
	}
	// atoi's reading, as packetdrill's: leading digits count.
	if s, err := Parse("t.pkt", "--mtu=1400abc\n"+ev0); err != nil || s.Config.MTU != 1400 {
		t.Errorf("--mtu=1400abc: %v %+v", err, s)
	}
	for _, bad := range []Option{{Name: "wire_client"}, {Name: "so_filename", Value: "x.so", HasValue: true}} {
		if err := CheckCommandLine([]Option{bad}); err == nil || !strings.Contains(err.Error(), "not supported by this runner") {
			t.Errorf("--%s: %v", bad.Name, err)
		}
	}
}
