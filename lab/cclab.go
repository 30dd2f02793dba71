package lab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"tunstack/netif"
	"tunstack/policy"
	"tunstack/tcpcore"
	"tunstack/wire"
)

// The congestion-control labs (slow-start, fast-retransmit, sack, dsack)
// share one shape: the stack under test SENDS a bulk transfer to a kernel
// client, so that its congestion control and loss recovery are what the
// capture shows, over a wire that the lab impairs (a bottleneck, or one
// exact segment dropped, duplicated or held back). What they print comes
// from the capture at the server's side of the wire, from the wire's own
// log of what it did, and from the server's counters: tcpcore's
// per-connection counters for tunstack, the namespace's nstat counters for
// Linux, gVisor's stack counters for gVisor.

// CCData is what a congestion-control lab measured: one transfer per
// configuration compared (the sack lab compares three, the others run one).
type CCData struct {
	Transfers []*BulkTransfer
}

// BulkTransfer is one bulk transfer from the server to a kernel client.
type BulkTransfer struct {
	Variant string // the configuration, e.g. "SACK" or "NewReno (no SACK)"
	Setting string // how it was set on this stack
	// Unsupported, if not empty, says why the stack has no such
	// configuration; nothing else is set then.
	Unsupported string

	Bytes    int // what the server wrote
	Request  int // what the client wrote first
	Received int // what the client read
	Intact   bool
	Err      error // what cut the transfer short, if anything

	Accepted time.Duration // since the lab started
	Done     time.Duration // the client read EOF

	Capture *Capture
	// SACK holds each captured packet's SACK blocks, relative to the data
	// sender's ISN like Packet.Seq, parallel to Capture.Packets.
	SACK    [][]wire.SACKBlock
	Actions []WireAction       // what the lab wire's targeted rules did
	Impair  *netif.ImpairStats // what the SPEC impairment did, if any

	// Cwnd is the sender's congestion window as the stack reports it,
	// sampled while the transfer ran (tunstack: Conn.Info; Linux:
	// TCP_INFO); empty for gVisor, whose endpoint is not exposed.
	Cwnd       []CwndSample
	Congestion string // the window controller, as the stack names it
	// Counters are the server's loss-recovery counters at the end.
	Counters []Counter
}

// WireAction is one thing the lab wire's targeted rules did, for the
// timeline. Seq and End are relative to the sender's ISN, as in Packet.
type WireAction struct {
	At         time.Duration
	FromServer bool
	Action     string // "dropped", "duplicated", "held back", "released"
	Seq, End   uint32
}

func (a WireAction) String() string {
	dir := "client -> server"
	if a.FromServer {
		dir = "server -> client"
	}
	return fmt.Sprintf("%s data seq %d:%d (%s)", a.Action, a.Seq, a.End, dir)
}

// wireActions turns the wire's segment events into WireActions, with times
// relative to start. The server's segments are the ones it writes: the
// wire's outbound direction.
func wireActions(evs []netif.SegmentEvent, start time.Time) []WireAction {
	out := make([]WireAction, len(evs))
	for i, e := range evs {
		out[i] = WireAction{At: e.At.Sub(start), FromServer: e.Out, Action: e.Action, Seq: e.Seq, End: e.End}
	}
	return out
}

// CwndSample is the congestion window at one moment, in segments.
type CwndSample struct {
	At       time.Duration
	Cwnd     int
	SSThresh int // -1 while it is still "arbitrarily high"
}

// ccVariant is one configuration of the server that a lab compares.
type ccVariant struct {
	name    string
	profile func(*policy.Profile) // tunstack and gVisor
	sysctls [][2]string           // Linux's server namespace
	// unsupported names the stacks without this configuration, and why.
	unsupported map[string]string
}

// setting says how v is configured on stack.
func (v ccVariant) setting(stack string, o *Options) string {
	if stack == "linux" {
		var s []string
		for _, kv := range v.sysctls {
			s = append(s, strings.ReplaceAll(kv[0], "/", ".")+"="+kv[1])
		}
		p := v.options(*o).Profile
		s = append(s, "TCP_CONGESTION "+linuxCongestion(p))
		return "server " + strings.Join(s, ", ")
	}
	p := o.Profile.Clone()
	if v.profile != nil {
		v.profile(p)
	}
	return fmt.Sprintf("profile %s with SACK=%v, Congestion=%s", o.ProfileName, p.SACK, p.Congestion)
}

// options returns o as v changes it. A variant's settings are absolute,
// so applying v to options another variant set gives v's own.
func (v ccVariant) options(o Options) Options {
	if v.profile != nil {
		o.Profile = o.Profile.Clone()
		v.profile(o.Profile)
	}
	ss := slices.DeleteFunc(slices.Clone(o.serverSysctls), func(kv [2]string) bool {
		return slices.ContainsFunc(v.sysctls, func(w [2]string) bool { return w[0] == kv[0] })
	})
	o.serverSysctls = append(ss, v.sysctls...)
	return o
}

// transferSpec is what one transfer moves.
type transferSpec struct {
	bytes   int // server to client
	request int // client to server first, before the server writes
	// linuxCC is the kernel server's window controller (TCP_CONGESTION).
	linuxCC string
}

// ccPattern is byte i of a transfer: i mod 251, the demo site's /bytes
// pattern, so that a segment delivered twice or at the wrong offset shows.
func ccPattern(off, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte((off + i) % 251)
	}
	return p
}

// ccIntact checks p against the pattern at offset off.
func ccIntact(off int, p []byte) bool {
	for i, b := range p {
		if b != byte((off+i)%251) {
			return false
		}
	}
	return true
}

// ccCwndEvery is how often the sender's window is sampled.
const ccCwndEvery = 2 * time.Millisecond

// ccIOTimeout bounds each read and write of a transfer: far longer than
// any recovery, short enough that a stuck transfer ends the lab.
const ccIOTimeout = 20 * time.Second

// bulkTransfer runs one bulk transfer on topo: the client connects, sends
// spec.request bytes that the server reads, then the server writes
// spec.bytes and shuts its side down; the client reads to EOF and checks
// every byte. The capture is taken at the end, while the topology is
// still up.
func (r *run) bulkTransfer(topo *topology, spec transferSpec) (*BulkTransfer, error) {
	tr := &BulkTransfer{Bytes: spec.bytes, Request: spec.request}
	l, err := topo.srv.listen(serverPort, 8)
	if err != nil {
		return nil, fmt.Errorf("lab: listen: %w", err)
	}
	defer l.close()
	cs, err := openClients(r.ctx, topo.clientNS, socketDomain(topo.addrs.server), 1, 1)
	if err != nil {
		return nil, err
	}
	c := cs[0]
	c.rec = &ClientRecord{N: 1}
	defer c.close()
	if err := c.startConnect(r.tl, r.target); err != nil {
		return nil, fmt.Errorf("lab: connect: %w", err)
	}
	sc, err := l.accept(5 * time.Second)
	if err != nil {
		return nil, fmt.Errorf("lab: accept: %w", err)
	}
	defer sc.close()
	if err := c.waitConnect(r.tl, 5*time.Second); err != nil {
		return nil, fmt.Errorf("lab: connect: %w", err)
	}
	tr.Accepted = r.tl.now()
	if kc, ok := sc.(*kernelConn); ok && spec.linuxCC != "" {
		var err error
		kc.f.control(func(fd int) { err = unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, spec.linuxCC) })
		if err != nil {
			return nil, fmt.Errorf("lab: TCP_CONGESTION %s on the kernel server: %w", spec.linuxCC, err)
		}
	}

	if spec.request > 0 {
		if _, err := sockWriteAll(c.s, ccPattern(0, spec.request), ccIOTimeout); err != nil {
			return nil, fmt.Errorf("lab: client write: %w", err)
		}
		buf := make([]byte, spec.request)
		for got := 0; got < spec.request; {
			n, err := sc.read(buf[got:], ccIOTimeout)
			if err != nil {
				return nil, fmt.Errorf("lab: server read of the request: %w", err)
			}
			got += n
		}
		if !ccIntact(0, buf) {
			return nil, errors.New("lab: the server read a corrupted request")
		}
		r.tl.add("server", "read the client's %d-byte request", spec.request)
	}

	probe := newCwndProbe(topo, sc)
	stopSampling := make(chan struct{})
	var sampling sync.WaitGroup
	if probe != nil {
		sampling.Add(1)
		go func() {
			defer sampling.Done()
			t := time.NewTicker(ccCwndEvery)
			defer t.Stop()
			for {
				tr.sample(r.tl.now(), probe)
				select {
				case <-t.C:
				case <-stopSampling:
					return
				}
			}
		}()
	}

	writeErr := make(chan error, 1)
	go func() {
		const chunk = 64 << 10
		for off := 0; off < spec.bytes; off += chunk {
			if _, err := sc.write(ccPattern(off, min(chunk, spec.bytes-off)), ccIOTimeout); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- ccShutdownWrite(sc)
	}()
	r.tl.add("server", "writes %d bytes, then shuts down its side", spec.bytes)

	tr.Intact = true
	buf := make([]byte, 256<<10)
	for {
		n, err := c.s.read(buf, ccIOTimeout)
		if n > 0 {
			tr.Intact = tr.Intact && ccIntact(tr.Received, buf[:n])
			tr.Received += n
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			tr.Err = fmt.Errorf("client read after %d bytes: %w", tr.Received, err)
			break
		}
	}
	tr.Done = r.tl.now()
	r.tl.add("client 1", "read %d bytes, then EOF", tr.Received)
	if err := <-writeErr; err != nil && tr.Err == nil {
		tr.Err = fmt.Errorf("server write: %w", err)
	}
	tr.Intact = tr.Intact && tr.Received == spec.bytes
	// The client's ACK of the FIN crosses the wire.
	time.Sleep(endGrace)
	close(stopSampling)
	sampling.Wait()
	if probe != nil {
		tr.sample(r.tl.now(), probe)
		tr.Congestion = probe.congestion()
	}
	tr.Counters = ccCounters(topo, sc)

	if topo.rules != nil {
		tr.Actions = wireActions(topo.rules.SegmentEvents(), r.tl.start)
	}
	if topo.impaired != nil {
		st := topo.impaired.Stats()
		tr.Impair = &st
	}
	pcap := topo.captureSnapshot()
	ports := map[uint16]int{c.port: 1}
	if tr.Capture, err = parseCapture(bytes.NewReader(pcap), r.target, ports, r.tl.start); err != nil {
		return nil, err
	}
	if tr.SACK, err = parseSACKBlocks(pcap, r.target, len(tr.Capture.Packets)); err != nil {
		return nil, err
	}
	return tr, nil
}

// sample appends the probe's window if it changed.
func (tr *BulkTransfer) sample(at time.Duration, p *cwndProbe) {
	cwnd, ssthresh, ok := p.read()
	if !ok {
		return
	}
	if n := len(tr.Cwnd); n > 0 && tr.Cwnd[n-1].Cwnd == cwnd && tr.Cwnd[n-1].SSThresh == ssthresh {
		return
	}
	tr.Cwnd = append(tr.Cwnd, CwndSample{At: at, Cwnd: cwnd, SSThresh: ssthresh})
}

// CwndAt is the last sampled window at or before t (0 if none yet).
func (tr *BulkTransfer) CwndAt(t time.Duration) (CwndSample, bool) {
	var s CwndSample
	ok := false
	for _, c := range tr.Cwnd {
		if c.At > t {
			break
		}
		s, ok = c, true
	}
	return s, ok
}

// cwndProbe reads the sender's window from the stack.
type cwndProbe struct {
	info func() (tcpcore.Info, bool) // tunstack
	fd   *sockFile                   // linux
}

func newCwndProbe(topo *topology, sc serverConn) *cwndProbe {
	switch c := sc.(type) {
	case *userConn:
		if ic, ok := c.c.(interface{ Info() tcpcore.Info }); ok {
			return &cwndProbe{info: func() (tcpcore.Info, bool) { return ic.Info(), true }}
		}
	case *kernelConn:
		return &cwndProbe{fd: c.f}
	}
	return nil
}

// infinite ssthresh as the stacks spell it: tcpcore's 1<<30 bytes, Linux's
// TCP_INFINITE_SSTHRESH.
const linuxInfiniteSSThresh = 0x7fffffff

func (p *cwndProbe) read() (cwnd, ssthresh int, ok bool) {
	if p.info != nil {
		in, _ := p.info()
		if in.SndMSS <= 0 {
			return 0, 0, false
		}
		ss := -1
		if in.SSThreshBytes < 1<<29 {
			ss = in.SSThreshBytes / in.SndMSS
		}
		return in.CwndBytes / in.SndMSS, ss, true
	}
	var ti *unix.TCPInfo
	var err error
	p.fd.control(func(fd int) { ti, err = unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO) })
	if err != nil {
		return 0, 0, false
	}
	ss := int(ti.Snd_ssthresh)
	if ti.Snd_ssthresh >= linuxInfiniteSSThresh {
		ss = -1
	}
	return int(ti.Snd_cwnd), ss, true
}

func (p *cwndProbe) congestion() string {
	if p.info != nil {
		in, _ := p.info()
		return in.Congestion
	}
	var name string
	p.fd.control(func(fd int) {
		name, _ = unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	})
	return strings.TrimRight(name, "\x00")
}

// ccShutdownWrite sends the server's FIN but keeps the socket, so that
// its counters can still be read.
func ccShutdownWrite(sc serverConn) error {
	switch c := sc.(type) {
	case *userConn:
		if cw, ok := c.c.(interface{ CloseWrite() error }); ok {
			return cw.CloseWrite()
		}
	case *kernelConn:
		var err error
		c.f.control(func(fd int) { err = unix.Shutdown(fd, unix.SHUT_WR) })
		return err
	}
	return sc.close()
}

// Loss-recovery counters under each stack's own names, and the common
// meaning the labs compare them by.
const (
	ccFastRetrans = "fast retransmissions"
	ccTimeouts    = "retransmission timeouts"
	ccDSACKRecv   = "D-SACK blocks received"
	ccDSACKSent   = "D-SACK blocks sent"
	ccUndos       = "window reductions undone"
	ccRecoveries  = "fast recoveries"
)

// ccCounterNames maps each common meaning to the stack's counter.
var ccCounterNames = map[string]map[string]string{
	"tunstack": {ccFastRetrans: "FastRetransmits", ccTimeouts: "Timeouts", ccDSACKRecv: "DSACKsReceived",
		ccDSACKSent: "DSACKsSent", ccUndos: "SpuriousUndos", ccRecoveries: "FastRecoveries"},
	"linux": {ccFastRetrans: "TCPFastRetrans", ccTimeouts: "TCPTimeouts", ccDSACKRecv: "TCPDSACKRecv",
		ccDSACKSent: "TCPDSACKOldSent", ccUndos: "TCPDSACKUndo", ccRecoveries: "TCPSackRecovery"},
	"gvisor": {ccFastRetrans: "FastRetransmit", ccTimeouts: "Timeouts", ccDSACKRecv: "SegmentsAckedWithDSACK",
		ccRecoveries: "FastRecovery", ccUndos: "SpuriousRecovery"},
}

// linuxCCCounters are the nstat counters the labs read from the server's
// namespace, which holds only the one connection.
var linuxCCCounters = []string{
	"TCPFastRetrans", "TCPSlowStartRetrans", "TCPTimeouts", "TCPLossProbes", "TCPLossProbeRecovery",
	"TCPSackRecovery", "TCPRenoRecovery", "TCPDSACKRecv", "TCPDSACKOfoRecv", "TCPDSACKOldSent",
	"TCPDSACKOfoSent", "TCPDSACKUndo", "TCPFullUndo", "TCPPartialUndo", "TCPLossUndo",
	"TCPSACKReorder", "TCPRenoReorder", "TCPTSReorder", "TCPDSACKIgnoredNoUndo", "TCPSpuriousRTOs",
}

// ccCounters reads the server's loss-recovery counters.
func ccCounters(topo *topology, sc serverConn) []Counter {
	switch {
	case topo.tunstack != nil:
		uc, ok := sc.(*userConn)
		if !ok {
			return nil
		}
		ic, ok := uc.c.(interface{ Info() tcpcore.Info })
		if !ok {
			return nil
		}
		k := ic.Info().Counters
		return []Counter{
			{"Retransmits", k.Retransmits}, {"FastRetransmits", k.FastRetransmits},
			{"RTORetransmits", k.RTORetransmits}, {"LostRetransmits", k.LostRetransmits},
			{"RescueRetransmits", k.RescueRetransmits}, {"TLPRetransmits", k.TLPRetransmits}, {"Timeouts", k.Timeouts},
			{"FastRecoveries", k.FastRecoveries}, {"SACKRecoveries", k.SACKRecoveries},
			{"DSACKsSent", k.DSACKsSent}, {"DSACKsReceived", k.DSACKsReceived},
			{"SpuriousUndos", k.SpuriousUndos}, {"TailLossProbes", k.TailLossProbes},
			{"DupAcksIn", k.DupAcksIn}, {"OutOfOrderSegs", k.OutOfOrderSegs},
		}
	case topo.gvisor != nil:
		t := topo.gvisor.GVisor().Stats().TCP
		return []Counter{
			{"Retransmits", t.Retransmits.Value()}, {"FastRetransmit", t.FastRetransmit.Value()},
			{"SlowStartRetransmits", t.SlowStartRetransmits.Value()}, {"Timeouts", t.Timeouts.Value()},
			{"FastRecovery", t.FastRecovery.Value()}, {"SACKRecovery", t.SACKRecovery.Value()},
			{"TLPRecovery", t.TLPRecovery.Value()}, {"SegmentsAckedWithDSACK", t.SegmentsAckedWithDSACK.Value()},
			{"SpuriousRecovery", t.SpuriousRecovery.Value()}, {"SpuriousRTORecovery", t.SpuriousRTORecovery.Value()},
		}
	}
	ks, ok := topo.srv.(*kernelServer)
	if !ok {
		return nil
	}
	c, err := ks.ns.TCPCounters()
	if err != nil {
		return nil
	}
	cs := []Counter{{"RetransSegs", c.Tcp["RetransSegs"]}}
	for _, n := range linuxCCCounters {
		cs = append(cs, Counter{n, c.TcpExt[n]})
	}
	return cs
}

// Count returns a counter by its common meaning (ccFastRetrans...), and
// whether the stack has one.
func (tr *BulkTransfer) count(stack, meaning string) (uint64, bool) {
	name, ok := ccCounterNames[stack][meaning]
	if !ok {
		return 0, false
	}
	return counterValue(tr.Counters, name), true
}

// countText writes a counter by meaning with the stack's name for it.
func (tr *BulkTransfer) countText(stack, meaning string) string {
	name, ok := ccCounterNames[stack][meaning]
	if !ok {
		return meaning + ": no such counter on " + stack
	}
	return fmt.Sprintf("%s %d (%s)", meaning, counterValue(tr.Counters, name), name)
}

// parseSACKBlocks reads the SACK option of each packet parseCapture kept
// (the same filter, in the same order), relative to the data sender's ISN.
func parseSACKBlocks(pcap []byte, server netip.AddrPort, n int) ([][]wire.SACKBlock, error) {
	rd, err := pcapgo.NewReader(bytes.NewReader(pcap))
	if err != nil {
		return nil, fmt.Errorf("lab: read capture: %w", err)
	}
	out := make([][]wire.SACKBlock, 0, n)
	isn := map[flowKey]uint32{}
	var opts wire.TCPOptions
	for {
		data, _, err := rd.ReadPacketData()
		if err != nil {
			break
		}
		src, dst, t, ok := ipTCP(data)
		if !ok {
			continue
		}
		var k flowKey
		switch {
		case dst == server.Addr() && t.DstPort() == server.Port():
			k = flowKey{t.SrcPort(), true}
		case src == server.Addr() && t.SrcPort() == server.Port():
			k = flowKey{t.DstPort(), false}
		default:
			continue
		}
		if t.Flags()&wire.FlagSYN != 0 {
			if _, ok := isn[k]; !ok {
				isn[k] = t.Seq()
			}
		}
		var blocks []wire.SACKBlock
		if perr := wire.ParseTCPOptions(t.Options(), &opts); perr == nil && opts.NumSACK > 0 {
			peer := isn[flowKey{k.port, !k.toServer}]
			for _, b := range opts.SACK[:opts.NumSACK] {
				blocks = append(blocks, wire.SACKBlock{Left: b.Left - peer, Right: b.Right - peer})
			}
		}
		out = append(out, blocks)
	}
	if len(out) != n {
		return nil, fmt.Errorf("lab: capture has %d TCP packets for the SACK pass, %d for the first", len(out), n)
	}
	return out, nil
}

// IsDSACK reports whether packet i's first SACK block is a D-SACK (RFC
// 2883 §4): below its cumulative ACK, or inside its second block.
func (tr *BulkTransfer) IsDSACK(i int) bool {
	b := tr.SACK[i]
	if len(b) == 0 {
		return false
	}
	if int32(b[0].Left-tr.Capture.Packets[i].Ack) < 0 {
		return true
	}
	return len(b) > 1 && int32(b[0].Left-b[1].Left) >= 0 && int32(b[0].Right-b[1].Right) <= 0
}

func formatSACK(b []wire.SACKBlock) string {
	var s []string
	for _, x := range b {
		s = append(s, fmt.Sprintf("%d-%d", x.Left, x.Right))
	}
	return strings.Join(s, " ")
}

// ccTransferVariants runs the lab's variants in order: the first on the
// run's own topology (set up with variants[0] by the lab's options hook),
// the others each on a fresh one, so that every variant starts from the
// same empty path.
func (r *run) ccTransferVariants(variants []ccVariant, spec transferSpec) error {
	data := &CCData{}
	r.data = data
	base := *r.opts
	for i, v := range variants {
		o := base
		tr := &BulkTransfer{Variant: v.name}
		if why, ok := v.unsupported[o.Stack]; ok {
			tr.Unsupported = why
			data.Transfers = append(data.Transfers, tr)
			continue
		}
		var topo *topology
		if i == 0 {
			topo = r.topo
		} else {
			// r.opts has variants[0]; every variant sets the same
			// knobs, so v's settings replace them.
			o = v.options(base)
			o.Pcap = nil
			t, err := newTopology(r.ctx, &o)
			if err != nil {
				return err
			}
			topo = t
		}
		r.tl.add("lab", "variant %q: %s", v.name, v.setting(o.Stack, &o))
		spec.linuxCC = linuxCongestion(v.options(o).Profile)
		got, err := r.bulkTransfer(topo, spec)
		if topo != r.topo {
			topo.close()
		}
		if err != nil {
			return fmt.Errorf("variant %s: %w", v.name, err)
		}
		got.Variant, got.Setting = v.name, v.setting(o.Stack, &o)
		data.Transfers = append(data.Transfers, got)
	}
	return nil
}

// ccData returns a result's transfers.
func ccData(res *Result) *CCData {
	d, _ := res.Data.(*CCData)
	if d == nil {
		d = &CCData{}
	}
	return d
}

// ccOptions fills in what every congestion-control lab shares: the delay
// and the profile. adjust, if not nil, changes the profile.
func ccOptions(o *Options, adjust func(*policy.Profile)) {
	if o.Delay <= 0 {
		o.Delay = ccDelay
	}
	o.Profile = profileOrLinux(o.Profile).Clone()
	if adjust != nil {
		adjust(o.Profile)
	}
}

// linuxCongestion is the kernel's name for the window controller p
// names. The kernel server's socket is set to it (TCP_CONGESTION, which
// root may set to any available module, where a namespace's default may
// only be one of tcp_allowed_congestion_control), so that the three
// stacks run the same algorithm, not the host's default (BBR on some).
func linuxCongestion(p *policy.Profile) string {
	switch p.Congestion {
	case "newreno", "tahoe", "":
		return "reno" // Linux's reno module recovers like NewReno without SACK
	}
	return p.Congestion
}

// ccRTT is the path's round-trip time as the capture shows it: the
// shortest time from a data segment sent once to the first ACK that
// covers exactly its end (the handshake's when there is none).
func (tr *BulkTransfer) ccRTT() time.Duration {
	sentAt := map[uint32]time.Duration{}
	var best, synack time.Duration
	seen := false
	for _, p := range tr.Capture.Packets {
		switch {
		case !p.ToServer && p.SYN && p.ACK && !seen:
			synack, seen = p.At, true
		case seen && p.ToServer && p.ACK && !p.SYN && best == 0:
			best = p.At - synack
		}
		if !p.ToServer && p.Len > 0 {
			if p.Retrans > 0 {
				delete(sentAt, p.Seq+uint32(p.Len))
			} else {
				sentAt[p.Seq+uint32(p.Len)] = p.At
			}
		}
		if p.ToServer && p.ACK {
			if t, ok := sentAt[p.Ack]; ok {
				if d := p.At - t; best == 0 || d < best {
					best = d
				}
				delete(sentAt, p.Ack)
			}
		}
	}
	return best
}
