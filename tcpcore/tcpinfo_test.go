package tcpcore

import (
	"reflect"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"tunstack/wire"
)

// Bytes lays the struct out as Linux's: every field of TCPInfo written
// with a distinct value must read back at the same field of
// golang.org/x/sys/unix.TCPInfo (cgo's rendering of the kernel header),
// and the two bitfield bytes unix.TCPInfo leaves as padding must hold the
// window scales and the one-bit and two-bit flags.
func TestTCPInfoBytesMatchLinuxLayout(t *testing.T) {
	if TCPInfoSize != unix.SizeofTCPInfo {
		t.Fatalf("TCPInfoSize %d, unix.SizeofTCPInfo %d", TCPInfoSize, unix.SizeofTCPInfo)
	}
	var in TCPInfo
	v := reflect.ValueOf(&in).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Uint8:
			f.SetUint(uint64(i + 1))
		case reflect.Uint16:
			f.SetUint(uint64(0x100*(i+1) + i))
		case reflect.Uint32:
			f.SetUint(uint64(0x1000000*(i+1) + i))
		case reflect.Uint64:
			f.SetUint(uint64(0x100000000*(i+1) + i))
		}
	}
	in.SndWscale, in.RcvWscale = 0x9, 0xe
	in.DeliveryRateAppLimited, in.FastopenClientFail = 1, 2
	b := in.Bytes()
	if len(b) != TCPInfoSize {
		t.Fatalf("Bytes gave %d bytes, want %d", len(b), TCPInfoSize)
	}
	if b[6] != 0xe9 || b[7] != 0x5 {
		t.Fatalf("bitfield bytes %#x %#x, want 0xe9 (snd 9, rcv 14) and 0x5 (app-limited 1, TFO fail 2)", b[6], b[7])
	}
	u := *(*unix.TCPInfo)(unsafe.Pointer(&b[0])) // little-endian host
	uv := reflect.ValueOf(u)
	// unix's field names are Linux's without the tcpi_ prefix.
	names := map[string]string{"CAState": "Ca_state", "SndMSS": "Snd_mss", "RcvMSS": "Rcv_mss", "RTO": "Rto",
		"ATO": "Ato", "RTT": "Rtt", "RTTVar": "Rttvar", "PMTU": "Pmtu", "AdvMSS": "Advmss", "RcvRTT": "Rcv_rtt",
		"MinRTT": "Min_rtt", "DeliveredCE": "Delivered_ce", "DSACKDups": "Dsack_dups", "RcvOOOPack": "Rcv_ooopack",
		"TotalRTO": "Total_rto", "TotalRTORecoveries": "Total_rto_recoveries", "TotalRTOTime": "Total_rto_time",
		"ReceivedCE": "Received_ce", "DeliveredCEBytes": "Delivered_ce_bytes", "ReceivedCEBytes": "Received_ce_bytes",
		"DeliveredE1Bytes": "Delivered_e1_bytes", "DeliveredE0Bytes": "Delivered_e0_bytes",
		"ReceivedE1Bytes": "Received_e1_bytes", "ReceivedE0Bytes": "Received_e0_bytes"}
	checked := 0
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		switch name {
		case "SndWscale", "RcvWscale", "DeliveryRateAppLimited", "FastopenClientFail":
			continue // bitfields, checked above
		}
		un, ok := names[name]
		if !ok {
			un = linuxName(name)
		}
		uf := uv.FieldByName(un)
		if !uf.IsValid() {
			t.Fatalf("unix.TCPInfo has no field %s (for %s)", un, name)
		}
		if uf.Uint() != v.Field(i).Uint() {
			t.Errorf("%s: unix reads %#x, want %#x", name, uf.Uint(), v.Field(i).Uint())
		}
		checked++
	}
	if checked != uv.NumField()-1 { // all but unix's trailing padding
		t.Fatalf("checked %d fields, unix.TCPInfo has %d", checked, uv.NumField())
	}
}

// linuxName turns SndSsthresh into Snd_ssthresh, as unix names it.
func linuxName(s string) string {
	out := []byte{s[0]}
	for i := 1; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			out = append(out, '_', s[i]+'a'-'A')
		} else {
			out = append(out, s[i])
		}
	}
	return string(out)
}

var fullSyn = wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 1, SACKPermitted: true, HasWScale: true, WScale: 7}

// After a handshake with every option: state, options and scales, sizes,
// the handshake's segments and the initial window, and the ages of the
// last activity in milliseconds of virtual time. The values are those
// Linux 6.18 reports in the same exchange (passive: advmss 1448,
// bytes_acked 0, delivered 1, segs_out 0, segs_in 2; active: advmss 1448,
// bytes_acked 1, delivered 1).
func TestTCPInfoAfterHandshakeWithOptions(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.listenAndAccept(fullSyn)
	ti := c.TCPInfo(p.now)
	if ti.State != 1 || ti.CAState != TCPCAOpen {
		t.Fatalf("state %d ca_state %d, want ESTABLISHED (1), Open", ti.State, ti.CAState)
	}
	if ti.Options != TCPIOptTimestamps|TCPIOptSACK|TCPIOptWscale || ti.SndWscale != 7 || ti.RcvWscale != c.rcvWscale || c.rcvWscale == 0 {
		t.Fatalf("options %#x scales %d/%d, want TS|SACK|WSCALE, 7/%d", ti.Options, ti.SndWscale, ti.RcvWscale, c.rcvWscale)
	}
	// MSS 1460 less the 12 bytes of the timestamp option, both ways.
	if ti.SndMSS != 1448 || ti.AdvMSS != 1448 || ti.PMTU != 1500 {
		t.Fatalf("snd_mss %d advmss %d pmtu %d", ti.SndMSS, ti.AdvMSS, ti.PMTU)
	}
	if ti.SndCwnd != 10 || ti.SndSsthresh != 0x7fffffff || ti.Reordering != 3 {
		t.Fatalf("cwnd %d ssthresh %#x reordering %d", ti.SndCwnd, ti.SndSsthresh, ti.Reordering)
	}
	// Our SYN-ACK acknowledged: one segment delivered, but no byte counted
	// and no segment sent by this socket (the request sent it); it has
	// received the SYN and the ACK.
	if ti.Unacked != 0 || ti.BytesAcked != 0 || ti.Delivered != 1 || ti.SegsOut != 0 || ti.SegsIn != 2 || ti.DataSegsOut != 0 {
		t.Fatalf("unacked %d bytes_acked %d delivered %d segs %d/%d data_segs_out %d",
			ti.Unacked, ti.BytesAcked, ti.Delivered, ti.SegsOut, ti.SegsIn, ti.DataSegsOut)
	}
	if ti.SndWnd != 65535<<7 || ti.RcvWnd == 0 || ti.MaxPacingRate != ^uint64(0) {
		t.Fatalf("snd_wnd %d rcv_wnd %d max_pacing %d", ti.SndWnd, ti.RcvWnd, ti.MaxPacingRate)
	}
	p.advance(250 * time.Millisecond)
	ti = c.TCPInfo(p.now)
	if ti.LastDataSent != 250 || ti.LastDataRecv != 250 || ti.LastAckRecv != 250 {
		t.Fatalf("last data sent %d, data recv %d, ack recv %d ms; want 250 each", ti.LastDataSent, ti.LastDataRecv, ti.LastAckRecv)
	}
	// An active open counts its SYN's byte and segment.
	q := newPeer(t, nil)
	a, err := q.e.Connect(q.now, local, remote, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	syn := q.next()
	if ti := a.TCPInfo(q.now); ti.State != 2 || ti.Unacked != 1 || ti.SndCwnd != 10 {
		t.Fatalf("SYN-SENT: state %d unacked %d cwnd %d", ti.State, ti.Unacked, ti.SndCwnd)
	}
	q.e.Input(q.now, remoteIP, localIP, tseg{flags: fSA, seq: peerISN, ack: syn.seq + 1, wnd: 65535,
		opts: wire.TCPOptions{HasMSS: true, MSS: 1460, HasTS: true, TSVal: 5, TSEcr: syn.opts.TSVal}}.encode(remote, local))
	if ti := a.TCPInfo(q.now); ti.AdvMSS != 1448 || ti.BytesAcked != 1 || ti.Delivered != 1 || ti.State != 1 || ti.SegsOut != 2 || ti.SegsIn != 1 {
		t.Fatalf("active open: advmss %d bytes_acked %d delivered %d state %d segs %d/%d",
			ti.AdvMSS, ti.BytesAcked, ti.Delivered, ti.State, ti.SegsOut, ti.SegsIn)
	}
}

// RTT and RTTVar follow RFC 6298 from samples taken at exact virtual
// instants: 100 ms from the handshake, then 60 ms.
func TestTCPInfoRTTAtKnownInstants(t *testing.T) {
	p := newPeer(t, nil)
	l, err := p.e.Listen(p.now, local, 16, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa := p.next()
	p.advance(100 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535})
	c, err := l.Accept(p.now)
	if err != nil {
		t.Fatal(err)
	}
	ti := c.TCPInfo(p.now)
	// RFC 6298 §2.2: SRTT = R, RTTVAR = R/2; RTO = SRTT + max(4 RTTVAR, 200 ms).
	if ti.RTT != 100000 || ti.RTTVar != 50000 || ti.RTO != 300000 || ti.MinRTT != 100000 {
		t.Fatalf("rtt %d rttvar %d rto %d min_rtt %d", ti.RTT, ti.RTTVar, ti.RTO, ti.MinRTT)
	}
	c.Write(p.now, make([]byte, 100))
	d := p.next()
	p.advance(60 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: ackFor(d), wnd: 65535})
	ti = c.TCPInfo(p.now)
	// RFC 6298 §2.3: RTTVAR = 3/4 50 + 1/4 |100-60| = 47.5 ms; SRTT = 7/8 100 + 1/8 60 = 95 ms.
	if ti.RTT != 95000 || ti.RTTVar != 47500 || ti.MinRTT != 60000 || ti.RTO != 95000+200000 {
		t.Fatalf("rtt %d rttvar %d min_rtt %d rto %d", ti.RTT, ti.RTTVar, ti.MinRTT, ti.RTO)
	}
	if ti.BytesAcked != 100 || ti.BytesSent != 100 || ti.DataSegsOut != 1 || ti.Delivered != 2 {
		t.Fatalf("bytes_acked %d bytes_sent %d data_segs_out %d delivered %d", ti.BytesAcked, ti.BytesSent, ti.DataSegsOut, ti.Delivered)
	}
	// cwnd 10 (>= ssthresh/2 is false: ssthresh is unset), so slow start's
	// ratio 2: 1460 * 10 * 2 / 95 ms.
	if want := uint64(1460*10*2) * 1e9 / uint64(95*time.Millisecond); ti.PacingRate != want {
		t.Fatalf("pacing rate %d, want %d", ti.PacingRate, want)
	}
}

// SACK reveals a loss: the fast retransmission puts the connection in
// Recovery with the hole lost and retransmitted, counted in segments; the
// ACK that fills it returns it to Open.
func TestTCPInfoFastRetransmitWithSACK(t *testing.T) {
	p := newPeer(t, nil)
	// A path with an RTT: RACK's reordering window is a quarter of it.
	c, iss := acceptOnPath(t, p, wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true}, 10*time.Millisecond)
	segs := sendSegments(t, p, c, 10)
	mss := Seq(c.MSS())
	if ti := c.TCPInfo(p.now); ti.Unacked != 10 || ti.NotsentBytes != 0 || ti.BytesSent != 10*uint64(mss) {
		t.Fatalf("unacked %d notsent %d bytes_sent %d", ti.Unacked, ti.NotsentBytes, ti.BytesSent)
	}
	p.advance(10 * time.Millisecond)
	una := iss + 1
	for i := 1; i <= 3; i++ { // segments 1..3 arrive, 0 is missing
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: una, wnd: 65535,
			opts: wire.TCPOptions{NumSACK: 1, SACK: [4]wire.SACKBlock{{Left: uint32(segs[1].seq), Right: uint32(ackFor(segs[i]))}}}})
		if i == 1 {
			if ti := c.TCPInfo(p.now); ti.CAState != TCPCADisorder || ti.Sacked != 1 {
				t.Fatalf("after one SACK: ca_state %d sacked %d, want Disorder, 1", ti.CAState, ti.Sacked)
			}
		}
	}
	r := p.expect(fA, una, peerISN+1)
	if len(r.payload) != int(mss) {
		t.Fatalf("retransmitted %v", r)
	}
	p.collectAll()
	ti := c.TCPInfo(p.now)
	if ti.CAState != TCPCARecovery || ti.Unacked != 10 || ti.Sacked != 3 || ti.Lost != 1 || ti.Retrans != 1 {
		t.Fatalf("ca_state %d unacked %d sacked %d lost %d retrans %d; want Recovery, 10, 3, 1, 1",
			ti.CAState, ti.Unacked, ti.Sacked, ti.Lost, ti.Retrans)
	}
	if ti.TotalRetrans != 1 || ti.BytesRetrans != uint64(mss) || ti.Delivered != 1+3 || ti.Retransmits != 0 {
		t.Fatalf("total_retrans %d bytes_retrans %d delivered %d retransmits %d", ti.TotalRetrans, ti.BytesRetrans, ti.Delivered, ti.Retransmits)
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: c.sndMax, wnd: 65535})
	ti = c.TCPInfo(p.now)
	if ti.CAState != TCPCAOpen || ti.Unacked != 0 || ti.Sacked != 0 || ti.Lost != 0 || ti.Retrans != 0 || ti.Delivered != 11 {
		t.Fatalf("after recovery: ca_state %d unacked %d sacked %d lost %d retrans %d delivered %d",
			ti.CAState, ti.Unacked, ti.Sacked, ti.Lost, ti.Retrans, ti.Delivered)
	}
	// The peer reports the retransmission as a duplicate (RFC 2883).
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: c.sndMax, wnd: 65535,
		opts: wire.TCPOptions{NumSACK: 1, SACK: [4]wire.SACKBlock{{Left: uint32(una), Right: uint32(una + mss)}}}})
	if ti := c.TCPInfo(p.now); ti.DSACKDups != 1 {
		t.Fatalf("dsack_dups %d, want 1", ti.DSACKDups)
	}
}

// Without SACK, duplicate ACKs stand for SACKed segments (Linux's reno
// sacked_out) and the third starts Recovery.
func TestTCPInfoFastRetransmitWithoutSACK(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	sendSegments(t, p, c, 6)
	for i := 1; i <= 3; i++ {
		p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535})
	}
	p.expect(fA, iss+1, peerISN+1)
	ti := c.TCPInfo(p.now)
	if ti.CAState != TCPCARecovery || ti.Sacked != 3 || ti.Lost != 1 || ti.Retrans != 1 || ti.Unacked != 6 || ti.TotalRetrans != 1 {
		t.Fatalf("ca_state %d sacked %d lost %d retrans %d unacked %d total_retrans %d",
			ti.CAState, ti.Sacked, ti.Lost, ti.Retrans, ti.Unacked, ti.TotalRetrans)
	}
}

// A retransmission timeout: Loss, the timeout counts, a doubled RTO; the
// episode's time ends with the next ACK of new data.
func TestTCPInfoRetransmissionTimeout(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.listenAndAccept(plainSyn)
	sendSegments(t, p, c, 2)
	rto := c.rtt.rto
	p.step() // the RTO
	p.next()
	ti := c.TCPInfo(p.now)
	if ti.CAState != TCPCALoss || ti.Retransmits != 1 || ti.Backoff != 1 || ti.RTO != usec(2*rto) ||
		ti.TotalRTO != 1 || ti.TotalRTORecoveries != 1 || ti.Lost != 2 || ti.Retrans != 1 {
		t.Fatalf("ca_state %d retransmits %d backoff %d rto %d total_rto %d recoveries %d lost %d retrans %d",
			ti.CAState, ti.Retransmits, ti.Backoff, ti.RTO, ti.TotalRTO, ti.TotalRTORecoveries, ti.Lost, ti.Retrans)
	}
	p.step() // a second timeout, same episode
	p.collectAll()
	if ti := c.TCPInfo(p.now); ti.TotalRTO != 2 || ti.TotalRTORecoveries != 1 || ti.Retransmits != 2 {
		t.Fatalf("second timeout: total_rto %d recoveries %d retransmits %d", ti.TotalRTO, ti.TotalRTORecoveries, ti.Retransmits)
	}
	p.advance(50 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: c.sndMax, wnd: 65535})
	// The episode ran from the first timeout, rto after the write, for
	// rto*2 to the second and 50 ms more.
	if ti := c.TCPInfo(p.now); ti.TotalRTOTime != msec(2*rto+50*time.Millisecond) || ti.Retransmits != 0 || ti.CAState != TCPCAOpen {
		t.Fatalf("total_rto_time %d ms, want %d; retransmits %d ca_state %d", ti.TotalRTOTime, msec(2*rto+50*time.Millisecond), ti.Retransmits, ti.CAState)
	}
}

// Zero-window probing: each unanswered probe counts in Probes and
// doubles the interval (Backoff); an answer resets Probes only.
func TestTCPInfoZeroWindowProbes(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := zeroWindowConn(t, p)
	if ti := c.TCPInfo(p.now); ti.SndWnd != 0 || ti.NotsentBytes != 3000 || ti.Probes != 0 {
		t.Fatalf("snd_wnd %d notsent %d probes %d", ti.SndWnd, ti.NotsentBytes, ti.Probes)
	}
	for i := 1; i <= 2; i++ {
		p.step()
		p.next()
		if ti := c.TCPInfo(p.now); ti.Probes != uint8(i) || ti.Backoff != uint8(i) {
			t.Fatalf("after probe %d: probes %d backoff %d", i, ti.Probes, ti.Backoff)
		}
	}
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: c.sndUna, wnd: 0})
	if ti := c.TCPInfo(p.now); ti.Probes != 0 || ti.Backoff != 2 {
		t.Fatalf("answered: probes %d backoff %d, want 0, 2", ti.Probes, ti.Backoff)
	}
}

// The receiving side: data in order and out of order, the FIN.
func TestTCPInfoReceiveCounters(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true})
	p.send(tseg{flags: fA, seq: peerISN + 1 + 500, ack: iss + 1, wnd: 65535, payload: make([]byte, 300)})
	p.send(tseg{flags: fA, seq: peerISN + 1 + 500, ack: iss + 1, wnd: 65535, payload: make([]byte, 300)})
	p.advance(30 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1, wnd: 65535, payload: make([]byte, 500)})
	ti := c.TCPInfo(p.now)
	if ti.RcvOOOPack != 2 || ti.DataSegsIn != 3 || ti.BytesReceived != 800 || ti.LastDataRecv != 0 || ti.SegsIn != 5 {
		t.Fatalf("rcv_ooopack %d data_segs_in %d bytes_received %d last_data_recv %d segs_in %d",
			ti.RcvOOOPack, ti.DataSegsIn, ti.BytesReceived, ti.LastDataRecv, ti.SegsIn)
	}
	p.send(tseg{flags: fFA, seq: peerISN + 801, ack: iss + 1, wnd: 65535})
	if ti := c.TCPInfo(p.now); ti.BytesReceived != 801 || ti.State != 8 {
		t.Fatalf("after FIN: bytes_received %d state %d, want 801, CLOSE_WAIT (8)", ti.BytesReceived, ti.State)
	}
}

// TCPInfo allocates nothing and leaves the connection as it was.
func TestTCPInfoAllocatesNothing(t *testing.T) {
	p := newPeer(t, nil)
	c, _ := p.listenAndAccept(fullSyn)
	sendSegments(t, p, c, 4)
	if n := testing.AllocsPerRun(100, func() { _ = c.TCPInfo(p.now) }); n != 0 {
		t.Fatalf("TCPInfo allocates %v times", n)
	}
}

// A listener reports LISTEN, its accept queue in Unacked and its backlog
// in Sacked (Linux tcp_get_info's aliases for a listener).
func TestListenerTCPInfo(t *testing.T) {
	p := newPeer(t, nil)
	l, err := p.e.Listen(p.now, local, 5, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	sa := p.next()
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: sa.seq + 1, wnd: 65535})
	ti := l.TCPInfo()
	if ti.State != 10 || ti.Unacked != 1 || ti.Sacked != 5 || ti.SndCwnd != 10 || ti.Reordering != 3 || ti.PacingRate != ^uint64(0) {
		t.Fatalf("state %d unacked %d sacked %d cwnd %d reordering %d pacing %d",
			ti.State, ti.Unacked, ti.Sacked, ti.SndCwnd, ti.Reordering, ti.PacingRate)
	}
	if _, err := l.Accept(p.now); err != nil || l.TCPInfo().Unacked != 0 {
		t.Fatalf("after accept: %v, unacked %d", err, l.TCPInfo().Unacked)
	}
}
