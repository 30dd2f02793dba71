package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"tunstack/control"
	"tunstack/stack"
	"tunstack/tcpcore"
)

func init() {
	commands["ss"] = func(args []string) error {
		opts, err := parseSSArgs(args)
		if errors.Is(err, errHelp) {
			fmt.Print(ssHelp)
			return nil
		}
		if err != nil {
			return err
		}
		return runSS(opts, os.Stdout)
	}
}

const ssHelp = `Usage: tunstack ss [-tlaineoH] [--dev tun0 | --netns NAME | --socket PATH] [FILTER]

Lists the TCP sockets of a running tunstack serve, as iproute2's ss lists
the kernel's: State, Recv-Q, Send-Q, Local Address:Port, Peer Address:Port.
It asks the serve over its control socket (/run/tunstack/DEV.sock, or
/run/tunstack/netns/NAME/DEV.sock for serve --netns NAME), which is root's.

  -t, --tcp          TCP sockets (the only kind there is; accepted for habit)
  -l, --listening    listening sockets only
  -a, --all          every socket; without -l or -a, every one but
                     listening, SYN-RECV and TIME-WAIT ones, as ss
  -i, --info         TCP_INFO below each socket, in ss -ti's names, order and
                     units; a listener's also ends with synq:N, its SYN queue
  -n, --numeric      rates as whole bits per second (ports are always numbers)
  -e, --extended     the timer, the shutdown state (<->) and a listener's
                     synq:N (SYN queue); ss's ino, sk, uid and cgroup name
                     kernel objects this stack does not have, so none is shown
  -o, --options      the timer, as timer:(NAME,TIME,COUNT)
  -H, --no-header    no header line
  --dev NAME         the serve of TUN device NAME (default tun0)
  --netns NAME, -N NAME
                     the serve started with --netns NAME
  --socket PATH      the control socket at PATH

FILTER, as ss takes it: state STATE (established, syn-sent, syn-recv,
fin-wait-1, fin-wait-2, time-wait, closed, close-wait, last-ack, listening,
closing, and the groups all, connected, synchronized, bucket, big), exclude
STATE, then conditions sport OP :PORT, dport OP :PORT (OP one of = == != < >
<= >= eq ne lt gt le ge), src ADDR[/LEN][:PORT], dst ADDR[/LEN][:PORT],
joined by and (implied between two conditions), or, not, and parentheses:
  tunstack ss -tn state established '( dport = :80 or sport = :80 )'

Recv-Q and Send-Q: for a connection, the bytes received and not read, and
the bytes written and not acknowledged (a SYN or FIN counts one); for a
listener, the accept queue and the backlog. A stack that cannot report a
value (gVisor: Send-Q, a listener's queues) shows -.
`

// ssOptions is a parsed tunstack ss command line.
type ssOptions struct {
	listening, all, info, numeric, extended, timers, noHeader bool

	dev, netns, socket string
	filter             ssFilter
}

// parseSSArgs reads ss's flags, which combine as ss's do (-tni), and the
// filter after them.
func parseSSArgs(args []string) (ssOptions, error) {
	o := ssOptions{dev: "tun0"}
	short := map[byte]*bool{'l': &o.listening, 'a': &o.all, 'i': &o.info, 'n': &o.numeric,
		'e': &o.extended, 'o': &o.timers, 'H': &o.noHeader, 't': new(bool), '4': new(bool)}
	long := map[string]*bool{"tcp": short['t'], "listening": &o.listening, "all": &o.all, "info": &o.info,
		"numeric": &o.numeric, "extended": &o.extended, "options": &o.timers, "no-header": &o.noHeader, "ipv4": short['4']}
	valued := map[string]*string{"dev": &o.dev, "netns": &o.netns, "net": &o.netns, "N": &o.netns, "socket": &o.socket}
	var filter []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			filter = append(filter, args[i+1:]...)
			i = len(args)
		case arg == "-h" || arg == "--help" || arg == "-help":
			return o, errHelp
		case strings.HasPrefix(arg, "--") || arg == "-N" || strings.HasPrefix(arg, "-N="):
			name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
			if b, ok := long[name]; ok && !hasValue {
				*b = true
				continue
			}
			dst, ok := valued[name]
			if !ok {
				return o, usagef("there is no flag %s for ss; run tunstack ss --help to see the flags it takes.", arg)
			}
			if !hasValue {
				if i+1 == len(args) {
					return o, usagef("%s needs a value after it, as %s VALUE.", arg, arg)
				}
				i++
				value = args[i]
			}
			if value == "" {
				return o, usagef("%s needs a value that is not empty.", arg)
			}
			*dst = value
		case len(arg) > 1 && arg[0] == '-':
			for j := 1; j < len(arg); j++ {
				b, ok := short[arg[j]]
				if !ok {
					return o, ssFlagError(arg[j])
				}
				*b = true
			}
		default:
			filter = append(filter, arg)
		}
	}
	f, err := parseSSFilter(filter)
	if err != nil {
		return o, err
	}
	o.filter = f
	return o, nil
}

func ssFlagError(c byte) error {
	switch c {
	case 'u', 'w', 'x', 'd', 'S', 'M', '0':
		return usagef("-%c asks for sockets other than TCP; the stack has only TCP sockets: use -t or nothing.", c)
	case '6':
		return usagef("-6 asks for IPv6 sockets; the stack speaks IPv4 only: use -4 or nothing.")
	}
	return usagef("there is no flag -%c for ss; run tunstack ss --help to see the flags it takes.", c)
}

// ssWhere is what a serve's banner adds to `tunstack ss` to reach it.
func ssWhere(dev, netns string) string {
	w := ""
	if dev != "tun0" {
		w += " --dev " + dev
	}
	if netns != "" {
		w += " --netns " + netns
	}
	return w
}

// runSS asks the serve for its sockets and prints them.
func runSS(o ssOptions, out io.Writer) error {
	path := o.socket
	if path == "" {
		path = control.SocketPath(o.dev, o.netns)
	}
	c, err := control.Dial(path)
	if errors.Is(err, control.ErrNoServer) {
		return fmt.Errorf("no tunstack serve answers on %s: start one with `sudo tunstack serve%s`, or point ss at a running one with --dev, --netns or --socket", path, ssWhere(o.dev, o.netns))
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_, socks, err := c.Sockets()
	if err != nil {
		return err
	}
	formatSS(out, socks, o)
	return nil
}

// Linux's TCP states as ss numbers them (include/net/tcp_states.h), for
// the state filter and the names ss prints.
const (
	lxEstablished = 1 + iota
	lxSynSent
	lxSynRecv
	lxFinWait1
	lxFinWait2
	lxTimeWait
	lxClose
	lxCloseWait
	lxLastAck
	lxListen
	lxClosing
	lxMax
)

// ssStateNames are ss's column names for Linux's states.
var ssStateNames = [lxMax]string{"UNKNOWN", "ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2",
	"TIME-WAIT", "UNCONN", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING"}

// stateSet is a set of Linux states, bit n for state n.
type stateSet uint16

const (
	ssAll       stateSet = (1<<lxMax - 1) &^ 1
	ssBucket             = 1<<lxSynRecv | 1<<lxTimeWait
	ssConnected          = ssAll &^ (1<<lxListen | 1<<lxClose)
	// ssDefault is what ss lists without -a, -l or a state filter: the
	// connected sockets but SYN-RECV and TIME-WAIT.
	ssDefault   = ssConnected &^ ssBucket
	ssListening = 1<<lxListen | 1<<lxClose
)

// ssStateWords are the names ss's state filter takes.
var ssStateWords = map[string]stateSet{
	"established": 1 << lxEstablished, "syn-sent": 1 << lxSynSent, "syn-recv": 1 << lxSynRecv,
	"fin-wait-1": 1 << lxFinWait1, "fin-wait-2": 1 << lxFinWait2, "time-wait": 1 << lxTimeWait,
	"closed": 1 << lxClose, "close-wait": 1 << lxCloseWait, "last-ack": 1 << lxLastAck,
	"listening": 1 << lxListen, "closing": 1 << lxClosing,
	"all": ssAll, "connected": ssConnected, "synchronized": ssConnected &^ (1 << lxSynSent),
	"bucket": ssBucket, "big": ssAll &^ ssBucket,
}

// ssFilter is a parsed filter: the state keywords and the condition.
type ssFilter struct {
	states, excluded stateSet // states named by state and exclude
	cond             ssCond   // nil: every socket
}

// statesFor is the set of states listed under the flags.
func (f ssFilter) statesFor(o ssOptions) stateSet {
	set := f.states
	switch {
	case set != 0:
	case o.all:
		set = ssAll
	case o.listening:
		set = ssListening
	default:
		set = ssDefault
	}
	return set &^ f.excluded
}

// ssCond is a condition on a socket.
type ssCond interface {
	match(si *stack.SocketInfo) bool
}

type (
	ssAnd  struct{ a, b ssCond }
	ssOr   struct{ a, b ssCond }
	ssNot  struct{ c ssCond }
	ssPort struct {
		remote bool // dport rather than sport
		op     string
		port   uint16
	}
	ssHost struct {
		remote bool // dst rather than src
		negate bool
		prefix netip.Prefix // invalid: any address
		port   int          // -1: any port
	}
)

func (c ssAnd) match(si *stack.SocketInfo) bool { return c.a.match(si) && c.b.match(si) }
func (c ssOr) match(si *stack.SocketInfo) bool  { return c.a.match(si) || c.b.match(si) }
func (c ssNot) match(si *stack.SocketInfo) bool { return !c.c.match(si) }

func (c ssPort) match(si *stack.SocketInfo) bool {
	p := si.Local.Port()
	if c.remote {
		p = si.Remote.Port()
	}
	switch c.op {
	case "=":
		return p == c.port
	case "!=":
		return p != c.port
	case "<":
		return p < c.port
	case ">":
		return p > c.port
	case "<=":
		return p <= c.port
	}
	return p >= c.port // ">="
}

func (c ssHost) match(si *stack.SocketInfo) bool {
	ap := si.Local
	if c.remote {
		ap = si.Remote
	}
	ok := (!c.prefix.IsValid() || c.prefix.Contains(ap.Addr())) && (c.port < 0 || int(ap.Port()) == c.port)
	return ok != c.negate
}

// ssOps maps ss's comparison words to symbols.
var ssOps = map[string]string{"=": "=", "==": "=", "eq": "=", "!=": "!=", "ne": "!=", "neq": "!=",
	"<": "<", "lt": "<", ">": ">", "gt": ">", "<=": "<=", "le": "<=", ">=": ">=", "ge": ">="}

// parseSSFilter parses ss's filter language from the words after the
// flags. The words may be split however the shell split them: "sport =
// :80" in one argument is the same as three.
func parseSSFilter(args []string) (ssFilter, error) {
	var f ssFilter
	var toks []string
	for _, a := range args {
		a = strings.NewReplacer("(", " ( ", ")", " ) ").Replace(a)
		toks = append(toks, strings.Fields(a)...)
	}
	// The state keywords come first, as in ss.
	for len(toks) > 0 && (toks[0] == "state" || toks[0] == "exclude" || toks[0] == "excl") {
		if len(toks) < 2 {
			return f, usagef("%s needs a state after it, such as %s established.", toks[0], toks[0])
		}
		set, ok := ssStateWords[toks[1]]
		if toks[1] == "listen" {
			set, ok = 1<<lxListen, true
		}
		if !ok {
			return f, usagef("%q is not a state; use one of established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, closed, close-wait, last-ack, listening, closing, all, connected, synchronized, bucket, big.", toks[1])
		}
		if toks[0] == "state" {
			f.states |= set
		} else {
			f.excluded |= set
		}
		toks = toks[2:]
	}
	if len(toks) == 0 {
		return f, nil
	}
	p := ssParser{toks: toks}
	c, err := p.or()
	if err != nil {
		return f, err
	}
	if !p.done() {
		return f, usagef("the filter has %q where it should end or join conditions with and/or; see tunstack ss --help.", p.peek())
	}
	f.cond = c
	return f, nil
}

// ssParser is a recursive-descent parser over the filter's words: or binds
// loosest, then and (also implied between two conditions), then not.
type ssParser struct {
	toks []string
	i    int
}

func (p *ssParser) done() bool   { return p.i >= len(p.toks) }
func (p *ssParser) peek() string { return p.toks[p.i] }
func (p *ssParser) next() string { p.i++; return p.toks[p.i-1] }

func (p *ssParser) or() (ssCond, error) {
	c, err := p.and()
	for err == nil && !p.done() && (p.peek() == "or" || p.peek() == "||" || p.peek() == "|") {
		p.next()
		var d ssCond
		if d, err = p.and(); err == nil {
			c = ssOr{c, d}
		}
	}
	return c, err
}

func (p *ssParser) and() (ssCond, error) {
	c, err := p.not()
	for err == nil && !p.done() && p.peek() != ")" && p.peek() != "or" && p.peek() != "||" && p.peek() != "|" {
		if w := p.peek(); w == "and" || w == "&&" || w == "&" {
			p.next()
		}
		var d ssCond
		if d, err = p.not(); err == nil {
			c = ssAnd{c, d}
		}
	}
	return c, err
}

func (p *ssParser) not() (ssCond, error) {
	if p.done() {
		return nil, usagef("the filter ends where a condition should follow; see tunstack ss --help.")
	}
	switch w := p.next(); w {
	case "not", "!":
		c, err := p.not()
		return ssNot{c}, err
	case "(":
		c, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.done() || p.next() != ")" {
			return nil, usagef("the filter opens a parenthesis it does not close.")
		}
		return c, nil
	case "sport", "dport":
		if p.done() {
			return nil, usagef("%s needs a comparison and a port, as %s = :80.", w, w)
		}
		op, ok := ssOps[p.next()]
		if !ok || p.done() {
			return nil, usagef("%s needs a comparison (= != < > <= >=) and a port, as %s = :80.", w, w)
		}
		port, err := parseSSPort(p.next())
		if err != nil {
			return nil, err
		}
		return ssPort{remote: w == "dport", op: op, port: port}, nil
	case "src", "dst":
		h := ssHost{remote: w == "dst"}
		if !p.done() {
			if op, ok := ssOps[p.peek()]; ok {
				if op != "=" && op != "!=" {
					return nil, usagef("%s compares with = or != only, as %s = 198.18.0.1.", w, w)
				}
				h.negate = op == "!="
				p.next()
			}
		}
		if p.done() {
			return nil, usagef("%s needs an address, as %s 198.18.0.1, %s 198.18.0.0/24:80 or %s :80.", w, w, w, w)
		}
		if err := h.parse(p.next()); err != nil {
			return nil, err
		}
		return h, nil
	case ")":
		return nil, usagef("the filter closes a parenthesis it did not open.")
	default:
		return nil, usagef("%q is not a filter condition; use sport, dport, src or dst (state and exclude come first); see tunstack ss --help.", w)
	}
}

// parseSSPort reads ":80", "80" or "*:80".
func parseSSPort(s string) (uint16, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "*"), ":")
	n, err := strconv.ParseUint(t, 10, 16)
	if err != nil {
		return 0, usagef("%q is not a port number; ports are numbers here (no service names), as :80.", s)
	}
	return uint16(n), nil
}

// parse reads ADDR, ADDR/LEN, ADDR:PORT, ADDR/LEN:PORT, :PORT, * or *:PORT.
func (h *ssHost) parse(s string) error {
	h.port = -1
	host, port := s, ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		if port == "" || port == "*" {
			port = ""
		} else {
			n, err := parseSSPort(port)
			if err != nil {
				return err
			}
			h.port = int(n)
		}
	}
	if host == "" || host == "*" {
		return nil
	}
	var err error
	if strings.Contains(host, "/") {
		h.prefix, err = netip.ParsePrefix(host)
		h.prefix = h.prefix.Masked()
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(host); err == nil {
			h.prefix = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil || !h.prefix.Addr().Is4() {
		return usagef("%q is not an IPv4 address or prefix (no names are resolved), as 198.18.0.1 or 198.18.0.0/24:80.", s)
	}
	return nil
}

// formatSS prints the sockets the options select, as ss lays them out:
// one column per field, each as wide as its widest cell or (when printed)
// header, the
// addresses right-aligned against their ports; the State column only when
// the filter admits more than one state; with -i each full socket's
// TCP_INFO on a line of its own below it, after a tab. One difference:
// ss also counts the -i text into the last column's width, which pads its
// header line with as many spaces; that padding is left out here.
func formatSS(w io.Writer, socks []stack.SocketInfo, o ssOptions) {
	states := o.filter.statesFor(o)
	type row struct {
		cells [8]string
		info  string
	}
	const (
		colState = iota
		colRecvQ
		colSendQ
		colLocal
		colLocalPort
		colPeer
		colPeerPort
		colProcess
	)
	header := [8]string{"State", "Recv-Q", "Send-Q", "Local Address:", "Port", "Peer Address:", "Port", "Process"}
	delims := [8]string{"", " ", " ", " ", "", " ", "", ""}
	right := [8]bool{colLocal: true, colPeer: true}
	// Linux behaviour (ss.c): with a single state in the filter the State
	// column says nothing and is left out.
	showState := states&(states-1) != 0
	var rows []row
	for i := range socks {
		si := &socks[i]
		lx := int(si.State.Linux())
		if states&(1<<lx) == 0 || (o.filter.cond != nil && !o.filter.cond.match(si)) {
			continue
		}
		r := row{cells: [8]string{
			ssStateNames[lx],
			ssQueue(si.RecvQ, si.Unknown&(stack.UnknownRecvQ) != 0),
			ssQueue(si.SendQ, si.Unknown&(stack.UnknownSendQ) != 0),
			ssAddrText(si.Local.Addr()) + ":",
			ssPortText(si.Local.Port()),
			ssAddrText(si.Remote.Addr()) + ":",
			ssPortText(si.Remote.Port()),
			ssProcessText(si, o),
		}}
		if o.info && si.TCPInfo != nil {
			r.info = ssInfoText(si, o)
		}
		rows = append(rows, r)
	}
	var width [8]int
	for c := range width {
		if c == colState && !showState {
			continue
		}
		if !o.noHeader {
			width[c] = len(header[c])
		}
		for _, r := range rows {
			width[c] = max(width[c], len(r.cells[c]))
		}
	}
	line := func(cells [8]string) string {
		var b strings.Builder
		first := true
		for c := range cells {
			if c == colState && !showState {
				continue
			}
			if !first {
				b.WriteString(delims[c])
			}
			first = false
			pad := strings.Repeat(" ", width[c]-len(cells[c]))
			if right[c] {
				b.WriteString(pad + cells[c])
			} else {
				b.WriteString(cells[c] + pad)
			}
		}
		return b.String()
	}
	if !o.noHeader {
		fmt.Fprintln(w, line(header))
	}
	for _, r := range rows {
		fmt.Fprintln(w, line(r.cells))
		if r.info != "" {
			fmt.Fprintf(w, "\t%s\n", r.info)
		}
	}
}

// ssQueue is a Recv-Q or Send-Q cell; "-" when the stack cannot say.
// Linux behaviour (ss.c): the number is printed as %-6d, so the cell is
// at least six wide whether or not the header is shown.
func ssQueue(n int, unknown bool) string {
	v := strconv.Itoa(n)
	if unknown {
		v = "-"
	}
	return fmt.Sprintf("%-6s", v)
}

// ssAddrText is an address as ss prints it: IPv6 ones in brackets,
// [::] for the wildcard, IPv4-mapped ones too (Linux behaviour: ss.c
// inet_addr_print() brackets every AF_INET6 address).
func ssAddrText(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	return "[" + a.String() + "]"
}

// ssPortText is a port cell: ss shows port 0 (a listener's peer) as *.
func ssPortText(p uint16) string {
	if p == 0 {
		return "*"
	}
	return strconv.Itoa(int(p))
}

// ssProcessText is what ss prints in the Process column: with -o or -e
// the timer, with -e the shutdown state; for a listener with -e its SYN
// queue (where ss prints the kernel's inode, cookie and cgroup, which this
// stack does not have).
func ssProcessText(si *stack.SocketInfo, o ssOptions) string {
	var b strings.Builder
	if (o.timers || o.extended) && si.Timer != tcpcore.TimerOff && si.Unknown&stack.UnknownTimer == 0 {
		count := 0
		if si.TCPInfo != nil {
			switch si.Timer {
			case tcpcore.TimerRetrans:
				count = int(si.TCPInfo.Retransmits)
			case tcpcore.TimerPersist, tcpcore.TimerKeepalive:
				count = int(si.TCPInfo.Probes)
			}
		}
		fmt.Fprintf(&b, " timer:(%s,%s,%d)", si.Timer, ssTimerText(si.TimerLeft), count)
	}
	if o.extended {
		if si.State == tcpcore.Listen && si.Unknown&stack.UnknownSynQueue == 0 {
			fmt.Fprintf(&b, " synq:%d", si.SynQueue)
		}
		if si.Unknown&stack.UnknownShutdown == 0 && si.State != tcpcore.TimeWait {
			// Linux behaviour (ss.c): '<' for reading open, '>' for
			// writing open, '-' for either shut.
			rd, wr := byte('<'), byte('>')
			if si.ShutRead {
				rd = '-'
			}
			if si.ShutWrite {
				wr = '-'
			}
			fmt.Fprintf(&b, " %c-%c", rd, wr)
		}
	}
	return b.String()
}

// ssTimerText formats a timer's time left as ss does (print_ms_timer):
// minutes, then seconds with milliseconds after a dot, or "sec" when whole.
func ssTimerText(d time.Duration) string {
	ms := int(d / time.Millisecond)
	secs, msecs := ms/1000, ms%1000
	minutes := secs / 60
	secs %= 60
	var b strings.Builder
	if minutes > 0 {
		msecs = 0
		fmt.Fprintf(&b, "%dmin", minutes)
		if minutes > 9 {
			secs = 0
		}
	}
	if secs > 0 {
		if secs > 9 {
			msecs = 0
		}
		sep := "sec"
		if msecs > 0 {
			sep = "."
		}
		fmt.Fprintf(&b, "%d%s", secs, sep)
	}
	if msecs > 0 {
		fmt.Fprintf(&b, "%03dms", msecs)
	}
	return b.String()
}

// ssInfoText is the TCP_INFO line of ss -ti (iproute2 6.1's
// tcp_show_info and tcp_stats_print): the same names, order and units,
// and the same rule for each field to leave it out (zero, or the value
// that means unset).
func ssInfoText(si *stack.SocketInfo, o ssOptions) string {
	t := si.TCPInfo
	var b strings.Builder
	out := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	ms := func(us uint32) string { return ssG(float64(us) / 1000) }
	if o.extended || o.timers {
		for _, opt := range []struct {
			bit  uint8
			name string
		}{{tcpcore.TCPIOptTimestamps, "ts"}, {tcpcore.TCPIOptSACK, "sack"}, {tcpcore.TCPIOptECN, "ecn"},
			{tcpcore.TCPIOptECNSeen, "ecnseen"}, {tcpcore.TCPIOptSYNData, "fastopen"}} {
			if t.Options&opt.bit != 0 {
				out(" %s", opt.name)
			}
		}
	}
	if si.Congestion != "" {
		out(" %s", si.Congestion)
	}
	if t.Options&tcpcore.TCPIOptWscale != 0 {
		out(" wscale:%d,%d", t.SndWscale, t.RcvWscale)
	}
	// An RTO of 3 s is the initial one of a socket that has not connected.
	if t.RTO != 0 && t.RTO != 3000000 {
		out(" rto:%s", ms(t.RTO))
	}
	if t.Backoff != 0 {
		out(" backoff:%d", t.Backoff)
	}
	if t.RTT != 0 {
		out(" rtt:%s/%s", ms(t.RTT), ms(t.RTTVar))
	}
	if t.ATO != 0 {
		out(" ato:%s", ms(t.ATO))
	}
	for _, f := range []struct {
		name string
		v    uint32
	}{{"mss", t.SndMSS}, {"pmtu", t.PMTU}, {"rcvmss", t.RcvMSS}, {"advmss", t.AdvMSS}, {"cwnd", t.SndCwnd}} {
		if f.v != 0 {
			out(" %s:%d", f.name, f.v)
		}
	}
	// ssthresh at or above 0xffff is the initial "infinite" one.
	if t.SndSsthresh != 0 && t.SndSsthresh < 0xffff {
		out(" ssthresh:%d", t.SndSsthresh)
	}
	for _, f := range []struct {
		name string
		v    uint64
	}{{"bytes_sent", t.BytesSent}, {"bytes_retrans", t.BytesRetrans}, {"bytes_acked", t.BytesAcked},
		{"bytes_received", t.BytesReceived}, {"segs_out", uint64(t.SegsOut)}, {"segs_in", uint64(t.SegsIn)},
		{"data_segs_out", uint64(t.DataSegsOut)}, {"data_segs_in", uint64(t.DataSegsIn)}} {
		if f.v != 0 {
			out(" %s:%d", f.name, f.v)
		}
	}
	if t.RTT != 0 && t.SndMSS != 0 && t.SndCwnd != 0 {
		out(" send %sbps", ssBandwidth(float64(t.SndCwnd)*float64(t.SndMSS)*8e6/float64(t.RTT), o.numeric))
	}
	for _, f := range []struct {
		name string
		v    uint32
	}{{"lastsnd", t.LastDataSent}, {"lastrcv", t.LastDataRecv}, {"lastack", t.LastAckRecv}} {
		if f.v != 0 {
			out(" %s:%d", f.name, f.v)
		}
	}
	if t.PacingRate != 0 && t.PacingRate != ^uint64(0) {
		out(" pacing_rate %sbps", ssBandwidth(float64(t.PacingRate)*8, o.numeric))
		if t.MaxPacingRate != 0 && t.MaxPacingRate != ^uint64(0) {
			out("/%sbps", ssBandwidth(float64(t.MaxPacingRate)*8, o.numeric))
		}
	}
	if t.DeliveryRate != 0 {
		out(" delivery_rate %sbps", ssBandwidth(float64(t.DeliveryRate)*8, o.numeric))
	}
	if t.Delivered != 0 {
		out(" delivered:%d", t.Delivered)
	}
	if t.DeliveredCE != 0 {
		out(" delivered_ce:%d", t.DeliveredCE)
	}
	if t.DeliveryRateAppLimited != 0 {
		out(" app_limited")
	}
	if t.BusyTime != 0 {
		out(" busy:%dms", t.BusyTime/1000)
		if t.RwndLimited != 0 {
			out(" rwnd_limited:%dms(%.1f%%)", t.RwndLimited/1000, 100*float64(t.RwndLimited)/float64(t.BusyTime))
		}
		if t.SndbufLimited != 0 {
			out(" sndbuf_limited:%dms(%.1f%%)", t.SndbufLimited/1000, 100*float64(t.SndbufLimited)/float64(t.BusyTime))
		}
	}
	if t.Unacked != 0 {
		out(" unacked:%d", t.Unacked)
	}
	if t.Retrans != 0 || t.TotalRetrans != 0 {
		out(" retrans:%d/%d", t.Retrans, t.TotalRetrans)
	}
	if t.Lost != 0 {
		out(" lost:%d", t.Lost)
	}
	// A listener's Sacked is its backlog, not a SACK count.
	if t.Sacked != 0 && si.State != tcpcore.Listen {
		out(" sacked:%d", t.Sacked)
	}
	if t.DSACKDups != 0 {
		out(" dsack_dups:%d", t.DSACKDups)
	}
	if t.Fackets != 0 {
		out(" fackets:%d", t.Fackets)
	}
	if t.Reordering != 3 && si.Unknown&stack.UnknownReordering == 0 {
		out(" reordering:%d", t.Reordering)
	}
	if t.ReordSeen != 0 {
		out(" reord_seen:%d", t.ReordSeen)
	}
	if t.RcvRTT != 0 {
		out(" rcv_rtt:%s", ms(t.RcvRTT))
	}
	if t.RcvSpace != 0 {
		out(" rcv_space:%d", t.RcvSpace)
	}
	if t.RcvSsthresh != 0 {
		out(" rcv_ssthresh:%d", t.RcvSsthresh)
	}
	if t.NotsentBytes != 0 {
		out(" notsent:%d", t.NotsentBytes)
	}
	// ^0 is no sample yet, which ss leaves out as it does zero.
	if t.MinRTT != 0 && t.MinRTT != ^uint32(0) {
		out(" minrtt:%s", ms(t.MinRTT))
	}
	if t.RcvOOOPack != 0 {
		out(" rcv_ooopack:%d", t.RcvOOOPack)
	}
	if t.SndWnd != 0 {
		out(" snd_wnd:%d", t.SndWnd)
	}
	if si.State == tcpcore.Listen && !o.extended && si.Unknown&stack.UnknownSynQueue == 0 {
		out(" synq:%d", si.SynQueue)
	}
	return b.String()
}

// ssG formats as C's %g: six significant digits, no trailing zeros.
func ssG(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// ssBandwidth formats bits per second as ss does (sprint_bw): whole
// numbers with -n, else three significant digits and a K, M, G or T.
func ssBandwidth(bps float64, numeric bool) string {
	if numeric {
		return strconv.FormatFloat(bps, 'f', 0, 64)
	}
	for _, u := range []struct {
		scale float64
		unit  string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "K"}} {
		if bps >= u.scale {
			return strconv.FormatFloat(bps/u.scale, 'g', 3, 64) + u.unit
		}
	}
	return ssG(bps)
}
