package conformance

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"tunstack/policy"
	"tunstack/wire"
)

// Addresses in packetdrill's default networks, for targets made outside a
// script run (a script's own come from its Config: the local address is
// then random in 192.168.0.0/16, as packetdrill picks it).
var (
	DefaultLocalIP  = netip.MustParseAddr("192.168.0.2")
	DefaultRemoteIP = netip.MustParseAddr("192.0.2.1")
)

const (
	// anyTimeWait bounds how long a "*" outbound packet is waited for.
	anyTimeWait = 30 * time.Second
	// pollSlice is how often a wait for a system call checks its result.
	pollSlice = time.Millisecond
	// nonBlockingLimit is how long a call without an end time may take
	// before it counts as blocked.
	nonBlockingLimit = 200 * time.Millisecond
)

// Options configure a run. Command-line values override script options.
type Options struct {
	Stack          string // target name
	Profile        string // policy profile name ("" = linux)
	ToleranceUsecs int    // 0: from the script or the default
	// Args are packetdrill options given on the command line
	// (--tolerance_usecs=N, -D NAME=VALUE as define=NAME=VALUE, ...);
	// they override the script's option lines.
	Args []Option
	// NoTSO (--no-tso) has the target hand the runner one packet per
	// segment instead of whole TSO packets (TargetConfig.NoTSO).
	NoTSO bool
	// KeepGoing (--keep-going) runs a script to its end past mismatches:
	// a packet that differs is taken as the stack sent it (its timestamps,
	// its time) and the next line is compared from there; an unexpected
	// packet is set aside; a call's wrong result is noted. The verdict is
	// still FAIL with the first mismatch, and the result counts the lines
	// that matched, so a reference stack that differs early in a script
	// is still compared on the rest of it.
	KeepGoing bool
	// Trace, when set, receives a line per event as it runs.
	Trace io.Writer
}

// errFailed stops a run after the failure has been recorded.
var errFailed = errors.New("script failed")

// errMismatch is a recorded failure after which a KeepGoing run goes on.
var errMismatch = errors.New("line did not match")

type queued struct {
	pkt *seen
	at  time.Duration // script time
}

type pendingCall struct {
	ev    *Event
	ch    <-chan CallResult
	start time.Duration
	end   time.Duration
	tol   time.Duration
}

type runner struct {
	s   *Script
	t   Target
	res *Result
	opt Options

	tolerance time.Duration
	tolPct    float64 // --tolerance_percent
	tsTick    time.Duration
	local     netip.Addr
	remote    netip.Addr

	base      time.Duration // target time of script time zero
	shellTime time.Duration // time spent in shell lines, excluded from script time
	prev      time.Duration // script time of the previous event
	queue     []queued

	localISN uint32
	isnKnown bool // localISN was learned for the socket under test

	reached    int          // events run so far (KeepGoing counts)
	badLines   map[int]bool // lines that did not match (KeepGoing)
	localPort  uint16
	remotePort uint16
	ipID       uint16
	flows      flowLabels // the script's IPv6 flow labels and the stack's

	tsMap              map[uint32]uint32 // script TS val -> actual
	lastTSVal          uint32
	haveTS             bool
	tsScript0, tsReal0 uint32
	haveTS0            bool

	pending *pendingCall

	sut  sockUnderTest // the socket %{ }% blocks read (codeblock.go)
	code codeProgram   // the %{ }% blocks recorded so far
}

// Run parses and runs one script on the stack named in opt and never
// panics on a bad script: every problem becomes a FAIL naming the line.
func Run(path string, opt Options) *Result {
	start := time.Now()
	res := &Result{Script: path, Stack: opt.Stack, Status: Pass}
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	s, err := ParseFile(path, opt.commandLine()...)
	if err != nil {
		res.Status = Fail
		where := path
		msg := err.Error()
		var pe *ParseError
		if errors.As(err, &pe) {
			where, msg = pe.File, pe.Msg
			if pe.Line > 0 {
				where = fmt.Sprintf("%s:%d", pe.File, pe.Line)
			}
		}
		res.Failure = &Failure{Where: where, Message: "parse error: " + msg}
		return res
	}
	res.Family = s.Config.IPVersion
	RunScript(s, opt, res)
	return res
}

// RunScript runs a parsed script, filling in res.
func RunScript(s *Script, opt Options, res *Result) {
	r := &runner{s: s, res: res, opt: opt, tsMap: map[uint32]uint32{}}
	cfg, run := r.configure()
	if !run {
		return
	}
	r.remotePort = uint16(40000 + rand.IntN(20000))

	profName := opt.Profile
	if profName == "" {
		profName = "linux"
	}
	prof, err := policy.ByName(profName)
	if err != nil {
		r.failAt(0, err.Error(), "", "")
		return
	}
	r.applyShellSysctls(prof)
	cfg.Profile = prof

	factory, err := LookupTarget(opt.Stack)
	if err != nil {
		r.failAt(0, err.Error(), "", "")
		return
	}
	t, err := factory(cfg)
	if err != nil {
		if errors.Is(err, ErrNotAvailable) {
			res.Status, res.Reason = Skip, err.Error()
			return
		}
		r.failAt(0, "cannot start stack "+opt.Stack+": "+err.Error(), "", "")
		return
	}
	r.t = t
	defer func() {
		if err := t.Close(); err != nil {
			res.Notes = append(res.Notes, "closing the target: "+err.Error())
		}
	}()
	if !r.runInit() {
		return
	}
	r.base = t.Now()
	if err := r.run(); err != nil && !errors.Is(err, errFailed) {
		r.failAt(r.now(), "runner: "+err.Error(), "", "")
	}
	r.runCleanup()
}

// now is the current script time.
func (r *runner) now() time.Duration { return r.t.Now() - r.base - r.shellTime }

func (r *runner) where(ev *Event) string { return fmt.Sprintf("%s:%d", r.s.Path, ev.Line) }

func (r *runner) fail(ev *Event, msg, expected, actual string) error {
	f := &Failure{Where: r.where(ev), Message: msg, Expected: expected, Actual: actual, Time: r.now().Seconds()}
	r.res.Status = Fail
	if !r.opt.KeepGoing {
		r.res.Failure = f
		return errFailed
	}
	if r.res.Failure == nil {
		r.res.Failure = f
	}
	r.res.Mismatches = append(r.res.Mismatches, f)
	if r.badLines == nil {
		r.badLines = map[int]bool{}
	}
	r.badLines[ev.Line] = true
	return errMismatch
}

func (r *runner) failAt(t time.Duration, msg, expected, actual string) {
	r.res.Status = Fail
	r.res.Failure = &Failure{Where: r.s.Path, Message: msg, Expected: expected, Actual: actual, Time: t.Seconds()}
}

func (r *runner) trace(format string, args ...any) {
	if r.opt.Trace != nil {
		fmt.Fprintf(r.opt.Trace, "%9.4f "+format+"\n", append([]any{r.now().Seconds()}, args...)...)
	}
}

// tol is the timing tolerance for an event at script time t: the larger of
// --tolerance_usecs and --tolerance_percent (12.5) of the time since the
// previous event.
func (r *runner) tol(t time.Duration) time.Duration {
	if d := time.Duration(r.tolPct / 100 * float64(t-r.prev)); d > r.tolerance {
		return d
	}
	return r.tolerance
}

// pumpUntil collects outbound packets until script time t; with stopOnPacket
// it returns as soon as one relevant packet has been queued.
func (r *runner) pumpUntil(t time.Duration, stopOnPacket bool) error {
	for {
		pkt, at, ok, err := r.t.Outbound(t + r.base + r.shellTime)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		s, isTCP := decodeOutbound(pkt)
		if !isTCP || s.ip.src != r.local || s.ip.dst != r.remote {
			continue // not ours: neither the test's address pair nor TCP
		}
		q := queued{s, at - r.base - r.shellTime}
		r.queue = append(r.queue, q)
		r.trace("saw   > %s", s.String(r.localISN))
		if stopOnPacket {
			return nil
		}
	}
}

// checkUnexpected fails if a packet that no script line matched arrived
// before the given script time.
func (r *runner) checkUnexpected(ev *Event, before time.Duration) error {
	if len(r.queue) > 0 && r.queue[0].at < before {
		q := r.queue[0]
		err := r.fail(ev, fmt.Sprintf("unexpected packet from the stack at %.4fs, before this line", q.at.Seconds()), "", q.pkt.String(r.localISN))
		if !errors.Is(err, errMismatch) {
			return err
		}
		// Set the unexpected packets aside; the line itself still runs.
		for len(r.queue) > 0 && r.queue[0].at < before {
			r.queue = r.queue[1:]
		}
	}
	return nil
}

func (r *runner) run() error {
	r.res.Lines = len(r.s.Events)
	for _, ev := range r.s.Events {
		err := r.event(ev)
		if err != nil && !errors.Is(err, errMismatch) {
			return err
		}
		r.reached++
		r.res.Matched = r.reached - len(r.badLines)
	}
	if r.pending != nil {
		if err := r.finishPending(); err != nil && !errors.Is(err, errMismatch) {
			return err
		}
		r.res.Matched = r.reached - len(r.badLines)
	}
	// Anything the stack sent up to the last event, and within the
	// tolerance after it, that no line matched is a failure.
	end := r.prev + r.tolerance
	if err := r.pumpUntil(end, false); err != nil {
		return err
	}
	if len(r.queue) > 0 {
		q := r.queue[0]
		r.res.Status = Fail
		f := &Failure{Where: fmt.Sprintf("%s:%d", r.s.Path, r.s.Events[len(r.s.Events)-1].Line),
			Message: fmt.Sprintf("unexpected packet from the stack at %.4fs, after the last line", q.at.Seconds()),
			Actual:  q.pkt.String(r.localISN), Time: r.now().Seconds()}
		if r.res.Failure == nil {
			r.res.Failure = f
		}
		if !r.opt.KeepGoing {
			return errFailed
		}
		r.res.Mismatches = append(r.res.Mismatches, f)
	}
	return r.runCode()
}

func (r *runner) event(ev *Event) error {
	var t, hi time.Duration
	switch ev.Time.Kind {
	case TimeAbsolute:
		t, hi = ev.Time.Start, ev.Time.Start
		if ev.Time.HasRange {
			hi = ev.Time.End
		}
	case TimeRelative:
		t, hi = r.prev+ev.Time.Start, r.prev+ev.Time.Start
		if ev.Time.HasRange {
			hi = r.prev + ev.Time.End
		}
	case TimeAny:
		t, hi = r.prev, r.prev+anyTimeWait
	}
	tol := r.tol(t)
	// A blocked call whose end time has come returns before this event.
	if r.pending != nil && (ev.Syscall != nil || r.pending.end+r.pending.tol < t) {
		// A mismatch belongs to the blocked call's line; this line runs.
		if err := r.finishPending(); err != nil && !errors.Is(err, errMismatch) {
			return err
		}
	}
	switch {
	case ev.Packet != nil && ev.Packet.Unsupported != "":
		return r.fail(ev, fmt.Sprintf("cannot run this line: %s are not supported by this runner", ev.Packet.Unsupported), "", "")
	case ev.Packet != nil && ev.Packet.Dir == Outbound:
		return r.expect(ev, t, hi, tol)
	case ev.Packet != nil:
		return r.inject(ev, t, tol)
	case ev.Syscall != nil:
		return r.syscall(ev, t, tol)
	case ev.Shell != nil:
		return r.shell(ev, t, tol)
	case ev.Code != nil:
		return r.codeEvent(ev, t, tol)
	}
	return r.fail(ev, "cannot run this line", "", "")
}

// waitFor moves to script time t, collecting what the stack sends meanwhile,
// and fails on a packet that arrived too early to belong to a later line.
func (r *runner) waitFor(ev *Event, t, tol time.Duration) error {
	if err := r.pumpUntil(t, false); err != nil {
		return err
	}
	return r.checkUnexpected(ev, t-tol)
}

func (r *runner) expect(ev *Event, lo, hi, tol time.Duration) error {
	want := ev.Packet
	if len(r.queue) == 0 {
		if err := r.pumpUntil(hi+tol, true); err != nil {
			return err
		}
	}
	if len(r.queue) == 0 {
		return r.fail(ev, fmt.Sprintf("expected packet did not arrive by %.4fs (expected at %s)", (hi+tol).Seconds(), window(lo, hi, tol, ev.Time.Kind == TimeAny)), PacketString(want), "nothing")
	}
	q := r.queue[0]
	r.queue = r.queue[1:]
	got, at := q.pkt, q.at
	// Learn the stack's ISN (and, for an active open, its port) from its
	// first SYN or SYN-ACK for the socket under test: the script counts the
	// stack's sequence numbers from it. As in the real packetdrill, which
	// tests one socket at a time, a later SYN-ACK on the same socket (a
	// connection reopened from TIME-WAIT, a listener's second connection)
	// is numbered from the first ISN; a socket() call starts afresh.
	if want.Flags&wire.FlagSYN != 0 && got.flags&wire.FlagSYN != 0 && !r.isnKnown {
		r.isnKnown = true
		r.localISN = got.seq - want.Start
		if got.flags&wire.FlagACK == 0 {
			r.localPort, r.remotePort = got.srcPort, got.dstPort
		}
	}
	if !r.strictSegments() && got.payload < want.Len {
		// As packetdrill does, the packets that continue this one make up
		// the payload the line expects (burst.go).
		var err error
		if got, at, err = r.aggregateFor(ev, got, at, hi+tol); err != nil {
			return err
		}
	}
	// On a mismatch a KeepGoing run takes the packet as the stack sent it:
	// its timestamps and its time are what later lines are compared with.
	differs := func(msg string) error {
		err := r.fail(ev, msg, PacketString(want), got.String(r.localISN))
		r.learnTS(want, got)
		r.prev = at
		return err
	}
	if ev.Time.Kind != TimeAny && at < lo-tol {
		return differs(fmt.Sprintf("packet arrived too early at %.4fs (expected at %s)", at.Seconds(), window(lo, hi, tol, false)))
	}
	if ev.Time.Kind != TimeAny && at > hi+tol {
		return differs(fmt.Sprintf("packet arrived too late at %.4fs (expected at %s)", at.Seconds(), window(lo, hi, tol, false)))
	}
	if got.optErr != nil {
		return differs("stack sent malformed TCP options")
	}
	if d := mismatch(want, got, r.localISN, r.tsValCheck(tol), &r.flows); d != "" {
		return differs(fmt.Sprintf("bad outbound packet at %.4fs: %s", at.Seconds(), d))
	}
	r.learnTS(want, got)
	r.trace("match > %s (line %d)", got.String(r.localISN), ev.Line)
	r.prev = at
	return nil
}

func window(lo, hi, tol time.Duration, any bool) string {
	if any {
		return "any time"
	}
	if lo == hi {
		return fmt.Sprintf("%.4fs ±%.1fms", lo.Seconds(), float64(tol)/1e6)
	}
	return fmt.Sprintf("%.4fs~%.4fs ±%.1fms", lo.Seconds(), hi.Seconds(), float64(tol)/1e6)
}

// learnTS records the stack's real TS val for the value the script wrote.
func (r *runner) learnTS(want *Packet, got *seen) {
	var g *TCPOpt
	for i := range got.opts {
		if got.opts[i].Kind == OptKindTS {
			g = &got.opts[i]
		}
	}
	if g == nil {
		return
	}
	r.lastTSVal, r.haveTS = g.TSVal, true
	for _, o := range want.Opts {
		if o.Kind == OptKindTS {
			r.tsMap[o.TSVal] = g.TSVal
			if !r.haveTS0 {
				r.tsScript0, r.tsReal0, r.haveTS0 = o.TSVal, g.TSVal, true
			}
		}
	}
}

// tsValCheck returns the TS val check used with --tcp_ts_tick_usecs: the
// stack's clock must advance as the script's values do, within tolerance.
func (r *runner) tsValCheck(tol time.Duration) func(script, actual uint32) string {
	if r.tsTick <= 0 {
		return nil
	}
	return func(script, actual uint32) string {
		if !r.haveTS0 {
			return ""
		}
		want := int64(int32(script - r.tsScript0))
		got := int64(int32(actual - r.tsReal0))
		slack := int64(tol/r.tsTick) + 1
		if got < want-slack || got > want+slack {
			return fmt.Sprintf("TS val advanced %d ticks since the first, expected %d (±%d, tick %v)", got, want, slack, r.tsTick)
		}
		return ""
	}
}

// mapEcr rewrites an inbound TS ecr: a value the script used as an outbound
// TS val becomes the stack's real one. Other non-zero values become the
// stack's latest TS val, so that its RTT samples stay sane.
func (r *runner) mapEcr(e uint32) uint32 {
	if v, ok := r.tsMap[e]; ok {
		return v
	}
	if e != 0 && r.haveTS {
		return r.lastTSVal
	}
	return e
}

func (r *runner) inject(ev *Event, t, tol time.Duration) error {
	if err := r.waitFor(ev, t, tol); err != nil {
		return err
	}
	r.ipID++
	// A SYN to a listening socket under test comes from a new remote port,
	// as packetdrill gives each connection it opens to a listener its own
	// ephemeral port: a server that listens again next to the connection
	// its old listener accepted gets a new 4-tuple, not that connection's.
	if r.sut.listening && ev.Packet.Flags&wire.FlagSYN != 0 && ev.Packet.Flags&wire.FlagACK == 0 {
		old := r.remotePort
		for r.remotePort == old {
			r.remotePort = uint16(40000 + rand.IntN(20000))
		}
	}
	pkt, err := buildInbound(ev.Packet, inboundSpec{
		src: r.remote, dst: r.local, srcPort: r.remotePort, dstPort: r.localPort,
		ipID: r.ipID, localISN: r.localISN, mapEcr: r.mapEcr,
	})
	if err != nil {
		return r.fail(ev, "cannot build packet: "+err.Error(), PacketString(ev.Packet), "")
	}
	// The runner itself may be late on a loaded machine; what follows is
	// timed from when the packet really went in.
	actual := max(t, r.now())
	if err := r.t.Inject(pkt); err != nil {
		return r.fail(ev, "inject: "+err.Error(), PacketString(ev.Packet), "")
	}
	r.trace("sent  < %s (line %d)", PacketString(ev.Packet), ev.Line)
	r.sut.packet(ev.Packet)
	r.prev = actual
	return nil
}

func (r *runner) shell(ev *Event, t, tol time.Duration) error {
	if err := r.waitFor(ev, t, tol); err != nil {
		return err
	}
	start := r.t.Now()
	err := r.t.Shell(ev.Shell.Command, filepath.Dir(r.s.Path))
	r.shellTime += r.t.Now() - start
	switch {
	case errors.Is(err, ErrNoShell):
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("%s: shell line not run on %s; its sysctls were applied to the profile", r.where(ev), r.t.Name()))
	case err != nil:
		return r.fail(ev, "shell command failed: "+err.Error(), "`"+ev.Shell.Command+"`", "")
	}
	r.trace("shell `%s` (line %d)", ev.Shell.Command, ev.Line)
	r.prev = t
	return nil
}

func (r *runner) syscall(ev *Event, t, tol time.Duration) error {
	if err := r.waitFor(ev, t, tol); err != nil {
		return err
	}
	sc := ev.Syscall
	call := &Call{Name: sc.Name, Args: sc.Args, WantFD: -1, Line: ev.Line}
	if sc.Name == "socket" {
		r.isnKnown = false
	}
	if sc.Name == "socket" || sc.Name == "accept" || sc.Name == "accept4" || sc.Name == "epoll_create" || sc.Name == "epoll_create1" {
		if v, err := IntValue(sc.Result); err == nil && v >= 0 {
			call.WantFD = int(v)
		}
	}
	actual := max(t, r.now())
	ch := r.t.Syscall(call)
	r.trace("call  %s (line %d)", sc.Name, ev.Line)
	r.prev = actual
	if sc.HasEnd {
		end := sc.EndTime
		if ev.Time.Kind == TimeRelative {
			end = t - ev.Time.Start + sc.EndTime
		}
		end += actual - t
		r.pending = &pendingCall{ev: ev, ch: ch, start: actual, end: end, tol: r.tol(end)}
		return nil
	}
	// A call without an end time must not block. Its return is not timed
	// more closely than that: a loaded machine can delay the kernel's
	// processing of the packet before it, which is no fault of the stack.
	limit := max(tol, nonBlockingLimit)
	res, done, err := r.waitCall(ch, actual+limit)
	if err != nil {
		return err
	}
	if !done {
		return r.fail(ev, fmt.Sprintf("%s blocked for more than %.0fms; a call that blocks needs an end time (...T before its name)", sc.Name, float64(limit)/1e6), syscallString(sc), "still blocked")
	}
	return r.checkCall(ev, res)
}

// waitCall waits for a call's result until script time deadline, collecting
// packets meanwhile.
func (r *runner) waitCall(ch <-chan CallResult, deadline time.Duration) (CallResult, bool, error) {
	if rt, ok := r.t.(interface{ RealTime() bool }); ok && rt.RealTime() {
		// Packets wait in the target with their times; block on the call.
		wait := deadline - r.now()
		if wait < 0 {
			wait = 0
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case res := <-ch:
			return res, true, nil
		case <-timer.C:
			select {
			case res := <-ch:
				return res, true, nil
			default:
				return CallResult{}, false, nil
			}
		}
	}
	for {
		select {
		case res := <-ch:
			return res, true, nil
		default:
		}
		now := r.now()
		if now >= deadline {
			select {
			case res := <-ch:
				return res, true, nil
			default:
				return CallResult{}, false, nil
			}
		}
		step := now + pollSlice
		if step > deadline {
			step = deadline
		}
		if err := r.pumpUntil(step, false); err != nil {
			return CallResult{}, false, err
		}
	}
}

func (r *runner) finishPending() error {
	p := r.pending
	r.pending = nil
	res, done, err := r.waitCall(p.ch, p.end+p.tol)
	if err != nil {
		return err
	}
	if !done {
		return r.fail(p.ev, fmt.Sprintf("%s did not return by %.4fs (expected at %.4fs)", p.ev.Syscall.Name, (p.end+p.tol).Seconds(), p.end.Seconds()), syscallString(p.ev.Syscall), "still blocked")
	}
	at := res.At - r.base - r.shellTime
	if at < p.end-p.tol {
		return r.fail(p.ev, fmt.Sprintf("%s returned at %.4fs, expected at %.4fs ±%.1fms", p.ev.Syscall.Name, at.Seconds(), p.end.Seconds(), float64(p.tol)/1e6), syscallString(p.ev.Syscall), resultString(res))
	}
	return r.checkCall(p.ev, res)
}

func syscallString(sc *Syscall) string {
	var args []string
	for _, a := range sc.Args {
		args = append(args, a.String())
	}
	s := fmt.Sprintf("%s(%s) = %s", sc.Name, strings.Join(args, ", "), sc.Result)
	if sc.Errno != "" {
		s += " " + sc.Errno
	}
	return s
}

func resultString(res CallResult) string {
	s := fmt.Sprintf("= %d", res.Ret)
	if res.Errno != "" {
		s += " " + res.Errno
	}
	return s
}

// checkCall compares a call's result, errno and output arguments with the
// script.
func (r *runner) checkCall(ev *Event, res CallResult) error {
	sc := ev.Syscall
	if res.Err != nil {
		return r.fail(ev, "cannot run this line: "+res.Err.Error(), syscallString(sc), "")
	}
	if sc.Result.Kind != ExprEllipsis {
		want, err := IntValue(sc.Result)
		if err != nil {
			return r.fail(ev, "bad expected result: "+err.Error(), syscallString(sc), "")
		}
		if want != res.Ret {
			return r.fail(ev, fmt.Sprintf("%s returned %d, expected %d", sc.Name, res.Ret, want), syscallString(sc), resultString(res))
		}
	}
	if canonicalErrno(sc.Errno) != canonicalErrno(res.Errno) {
		w := sc.Errno
		if w == "" {
			w = "no error"
		}
		g := res.Errno
		if g == "" {
			g = "no error"
		}
		return r.fail(ev, fmt.Sprintf("%s failed with %s, expected %s", sc.Name, g, w), syscallString(sc), resultString(res))
	}
	for i, v := range res.OutInt {
		if i >= len(sc.Args) || sc.Args[i].Kind != ExprList || len(sc.Args[i].Items) != 1 || sc.Args[i].Items[0].Kind == ExprEllipsis {
			continue
		}
		want, err := PointerInt(sc.Args[i])
		if err != nil {
			return r.fail(ev, fmt.Sprintf("argument %d: %v", i+1, err), syscallString(sc), "")
		}
		if want != v {
			return r.fail(ev, fmt.Sprintf("%s argument %d holds %d, expected %d", sc.Name, i+1, v, want), syscallString(sc), fmt.Sprintf("[%d]", v))
		}
	}
	if msg, act := checkCallOut(sc, res); msg != "" {
		return r.fail(ev, msg, syscallString(sc), act)
	}
	if sc.Name == "poll" && len(sc.Args) > 0 && res.Revents != nil {
		pes, err := PollEntries(sc.Args[0])
		if err != nil {
			return r.fail(ev, err.Error(), syscallString(sc), "")
		}
		for i, pe := range pes {
			if pe.HasRev && i < len(res.Revents) && pe.Revents != res.Revents[i] {
				return r.fail(ev, fmt.Sprintf("poll revents for fd %d are %#x, expected %#x", pe.FD, res.Revents[i], pe.Revents), syscallString(sc), fmt.Sprintf("revents=%#x", res.Revents[i]))
			}
		}
	}
	r.sut.call(sc, res)
	return nil
}
