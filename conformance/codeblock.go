package conformance

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// %{ ... }% blocks, as packetdrill runs them: at the block's time the
// runner reads the struct tcp_info of the socket under test and records
// it as Python assignments (tcpi_snd_cwnd = 10, ...), followed by the
// block's code. After the last event, if the script has passed so far, the
// recorded program runs once in python3: each block sees the values read
// at its own time, and names a block defines stay defined for the blocks
// after it. An exception (a failed assert) fails the script at the line of
// the block that raised it.
//
// The socket under test is packetdrill's: the socket of the latest
// socket() call; when an inbound SYN reaches it while it listens, the
// connection that SYN starts, which has a descriptor once accept returns
// it. A block that runs while the socket under test has no descriptor
// fails.

// tcpInfoTarget is a target that reads a socket's struct tcp_info, by the
// script's descriptor. The map holds Python variable names and values;
// a field the target cannot give is left out.
type tcpInfoTarget interface {
	TCPInfo(fd int) (vars map[string]uint64, err error)
}

// Linux's tcpi_state values for the sockets without a connection.
const (
	linuxClose  = 7
	linuxListen = 10
)

// tcpInfoLayout lists struct tcp_info's fields in order, as Linux 6.18 lays
// them out (include/uapi/linux/tcp.h): each is aligned to its size; byte 6
// holds tcpi_snd_wscale (low 4 bits) and tcpi_rcv_wscale, byte 7
// tcpi_delivery_rate_app_limited (bit 0) and tcpi_fastopen_client_fail
// (bits 1-2).
var tcpInfoLayout = []struct {
	name string
	size int
}{
	{"state", 1}, {"ca_state", 1}, {"retransmits", 1}, {"probes", 1}, {"backoff", 1}, {"options", 1},
	{"", 1}, {"", 1}, // the bit fields
	{"rto", 4}, {"ato", 4}, {"snd_mss", 4}, {"rcv_mss", 4},
	{"unacked", 4}, {"sacked", 4}, {"lost", 4}, {"retrans", 4}, {"fackets", 4},
	{"last_data_sent", 4}, {"last_ack_sent", 4}, {"last_data_recv", 4}, {"last_ack_recv", 4},
	{"pmtu", 4}, {"rcv_ssthresh", 4}, {"rtt", 4}, {"rttvar", 4}, {"snd_ssthresh", 4}, {"snd_cwnd", 4},
	{"advmss", 4}, {"reordering", 4}, {"rcv_rtt", 4}, {"rcv_space", 4}, {"total_retrans", 4},
	{"pacing_rate", 8}, {"max_pacing_rate", 8}, {"bytes_acked", 8}, {"bytes_received", 8},
	{"segs_out", 4}, {"segs_in", 4}, {"notsent_bytes", 4}, {"min_rtt", 4},
	{"data_segs_in", 4}, {"data_segs_out", 4},
	{"delivery_rate", 8}, {"busy_time", 8}, {"rwnd_limited", 8}, {"sndbuf_limited", 8},
	{"delivered", 4}, {"delivered_ce", 4}, {"bytes_sent", 8}, {"bytes_retrans", 8},
	{"dsack_dups", 4}, {"reord_seen", 4}, {"rcv_ooopack", 4}, {"snd_wnd", 4}, {"rcv_wnd", 4},
	{"rehash", 4}, {"total_rto", 2}, {"total_rto_recoveries", 2}, {"total_rto_time", 4},
	{"received_ce", 4}, {"delivered_e1_bytes", 4}, {"delivered_e0_bytes", 4}, {"delivered_ce_bytes", 4},
	{"received_e1_bytes", 4}, {"received_e0_bytes", 4}, {"received_ce_bytes", 4},
}

// tcpInfoVars decodes a binary struct tcp_info (little-endian, as a
// getsockopt on this machine returns it) into tcpi_* variables. Fields
// past the end of b (an older kernel's shorter struct) are left out.
func tcpInfoVars(b []byte) map[string]uint64 {
	vars := map[string]uint64{}
	le := binary.LittleEndian
	off := 0
	for _, f := range tcpInfoLayout {
		off = (off + f.size - 1) / f.size * f.size
		if off+f.size > len(b) {
			break
		}
		var v uint64
		switch f.size {
		case 1:
			v = uint64(b[off])
		case 2:
			v = uint64(le.Uint16(b[off:]))
		case 4:
			v = uint64(le.Uint32(b[off:]))
		case 8:
			v = le.Uint64(b[off:])
		}
		switch {
		case f.name != "":
			vars["tcpi_"+f.name] = v
		case off == 6:
			vars["tcpi_snd_wscale"], vars["tcpi_rcv_wscale"] = v&0xf, v>>4
		case off == 7:
			vars["tcpi_delivery_rate_app_limited"], vars["tcpi_fastopen_client_fail"] = v&1, v>>1&3
		}
		off += f.size
	}
	return vars
}

// tcpInfoNames are all the variables a Linux tcp_info provides.
func tcpInfoNames() []string {
	full := tcpInfoVars(make([]byte, 280))
	names := make([]string, 0, len(full))
	for n := range full {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// codeSymbols are the constant names packetdrill defines for the blocks
// (Linux's values).
var codeSymbols = []struct {
	name  string
	value int
}{
	{"TCP_ESTABLISHED", 1}, {"TCP_SYN_SENT", 2}, {"TCP_SYN_RECV", 3}, {"TCP_FIN_WAIT1", 4},
	{"TCP_FIN_WAIT2", 5}, {"TCP_TIME_WAIT", 6}, {"TCP_CLOSE", 7}, {"TCP_CLOSE_WAIT", 8},
	{"TCP_LAST_ACK", 9}, {"TCP_LISTEN", 10}, {"TCP_CLOSING", 11},
	{"TCP_CA_Open", 0}, {"TCP_CA_Disorder", 1}, {"TCP_CA_CWR", 2}, {"TCP_CA_Recovery", 3}, {"TCP_CA_Loss", 4},
	{"TCPI_OPT_TIMESTAMPS", 1}, {"TCPI_OPT_SACK", 2}, {"TCPI_OPT_WSCALE", 4}, {"TCPI_OPT_ECN", 8},
	{"TCPI_OPT_ECN_SEEN", 16}, {"TCPI_OPT_SYN_DATA", 32}, {"TCPI_OPT_USEC_TS", 64}, {"TCPI_OPT_TFO_CHILD", 128},
}

// sockUnderTest follows packetdrill's socket under test.
type sockUnderTest struct {
	fd        int  // the script's descriptor, when named
	named     bool // fd names it
	listening bool // fd listens: an inbound SYN makes its connection the socket under test
	child     bool // waiting for accept to name the connection
}

// call follows a successful system call.
func (u *sockUnderTest) call(sc *Syscall, res CallResult) {
	if res.Err != nil || res.Ret < 0 {
		return
	}
	switch sc.Name {
	case "socket":
		*u = sockUnderTest{fd: int(res.Ret), named: true}
	case "listen":
		if v, err := IntValue(sc.Args[0]); err == nil && int(v) == u.fd && u.named {
			u.listening = true
		}
	case "accept", "accept4":
		if u.child {
			*u = sockUnderTest{fd: int(res.Ret), named: true}
		}
	}
}

// packet follows an injected packet.
func (u *sockUnderTest) packet(p *Packet) {
	const syn, ack = 0x02, 0x10
	if u.listening && p.Flags&syn != 0 && p.Flags&ack == 0 {
		*u = sockUnderTest{child: true}
	}
}

// codeProgram is the Python program the blocks build up.
type codeProgram struct {
	buf    bytes.Buffer
	blocks int
	lines  map[int]int // block number -> script line
}

// codePreamble makes an exception name the block it came from: each block
// sets _line before its code, and the hook prints it on the first line.
const codePreamble = `import sys, traceback
_line = 0
def _drill_excepthook(etype, value, tb):
    sys.stderr.write("drill-block-line %d\n" % _line)
    traceback.print_exception(etype, value, tb)
sys.excepthook = _drill_excepthook
`

// add records a block: the variables read at its time, then its code.
func (c *codeProgram) add(line int, vars map[string]uint64, code string) {
	if c.lines == nil {
		c.lines = map[int]int{}
		c.buf.WriteString(codePreamble)
		for _, s := range codeSymbols {
			fmt.Fprintf(&c.buf, "%s = %d\n", s.name, s.value)
		}
	}
	c.blocks++
	c.lines[c.blocks] = line
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	// A field the target lacks is deleted, so a block that reads it fails
	// with a NameError that names it rather than reading a stale value.
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	fmt.Fprintf(&c.buf, "\n_line = %d\n", line)
	for _, n := range tcpInfoNames() {
		if !have[n] {
			fmt.Fprintf(&c.buf, "globals().pop(%q, None)\n", n)
		}
	}
	for _, n := range names {
		fmt.Fprintf(&c.buf, "%s = %d\n", n, vars[n])
	}
	c.buf.WriteString(code)
	c.buf.WriteString("\n")
}

// errNoPython reports that python3, which the blocks need, is missing.
var errNoPython = errors.New("python3 is not installed (Debian package python3); %{ }% blocks need it")

var blockLineRE = regexp.MustCompile(`drill-block-line (\d+)`)

// run executes the program. It returns the script line of the block that
// failed and the error's text, or 0 and nil.
func (c *codeProgram) run(dir string) (int, error) {
	py, err := exec.LookPath("python3")
	if err != nil {
		return c.firstLine(), errNoPython
	}
	f, err := os.CreateTemp("", "drill-code-*.py")
	if err != nil {
		return c.firstLine(), err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(c.buf.Bytes()); err != nil {
		f.Close()
		return c.firstLine(), err
	}
	if err := f.Close(); err != nil {
		return c.firstLine(), err
	}
	cmd := exec.Command(py, f.Name())
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		return 0, nil
	}
	text := strings.TrimSpace(string(out))
	line := c.firstLine()
	if m := blockLineRE.FindStringSubmatch(text); m != nil {
		line, _ = strconv.Atoi(m[1])
		text = strings.TrimSpace(strings.Replace(text, m[0], "", 1))
	}
	// The traceback's last line says what failed.
	if i := strings.LastIndexByte(text, '\n'); i >= 0 && strings.Contains(text, "Traceback") {
		text = strings.TrimSpace(text[i+1:])
	}
	if strings.Contains(text, "NameError") {
		text += " (a tcp_info field this target does not provide, or a name the block never defined)"
	}
	return line, fmt.Errorf("%%{ }%% block failed: %s", text)
}

func (c *codeProgram) firstLine() int { return c.lines[1] }

// scriptDir is where the program runs, as packetdrill runs it beside the
// script.
func scriptDir(path string) string { return filepath.Dir(path) }

// codeEvent reads tcp_info for a %{ }% block at its time and records the
// block.
func (r *runner) codeEvent(ev *Event, t, tol time.Duration) error {
	if err := r.waitFor(ev, t, tol); err != nil {
		return err
	}
	ti, ok := r.t.(tcpInfoTarget)
	if !ok {
		return r.fail(ev, fmt.Sprintf("cannot run this %%{ }%% block: the %s target cannot read TCP_INFO", r.t.Name()), "", "")
	}
	if !r.sut.named {
		return r.fail(ev, "cannot run this %{ }% block: no socket under test has a descriptor to read TCP_INFO from (a connection is named once accept returns it)", "", "")
	}
	vars, err := ti.TCPInfo(r.sut.fd)
	if err != nil {
		return r.fail(ev, fmt.Sprintf("getsockopt(%d, SOL_TCP, TCP_INFO) for the %%{ }%% block: %v", r.sut.fd, err), "", "")
	}
	r.code.add(ev.Line, vars, ev.Code.Code)
	r.trace("code  tcp_info of fd %d read (line %d)", r.sut.fd, ev.Line)
	r.prev = t
	return nil
}

// runCode runs the blocks' program once the events have passed.
func (r *runner) runCode() error {
	if r.code.blocks == 0 {
		return nil
	}
	line, err := r.code.run(scriptDir(r.s.Path))
	if err == nil {
		return nil
	}
	r.res.Status = Fail
	f := &Failure{Where: fmt.Sprintf("%s:%d", r.s.Path, line), Message: err.Error(), Time: r.now().Seconds()}
	if r.res.Failure == nil {
		r.res.Failure = f
	}
	if r.opt.KeepGoing {
		r.res.Mismatches = append(r.res.Mismatches, f)
	}
	return errFailed
}
