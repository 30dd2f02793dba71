package congestion

import (
	"testing"
	"time"
)

// hyRun drives a CUBIC sender in slow start the way the engine does: per
// ACK, the delay sample, then OnAck. Sequence numbers are bytes from 0.
type hyRun struct {
	c        *Cubic
	una, nxt uint32
}

func newHyRun(iw int) *hyRun {
	c := NewCubic(Config{MSS: 1000, InitialWindowSegments: iw, HyStart: true})
	return &hyRun{c: c, nxt: uint32(c.CongestionWindow())}
}

// ack acknowledges n bytes at now with the delay sample rtt and sends
// what the window then allows.
func (r *hyRun) ack(now, rtt time.Duration, n int) {
	r.una += uint32(n)
	r.c.OnAckSample(now, rtt, r.una, r.nxt)
	flight := int(r.nxt - r.una)
	r.c.OnAck(now, n, 2*(flight+n), 0)
	if w := uint32(r.c.CongestionWindow()); r.nxt-r.una < w {
		r.nxt = r.una + w
	}
}

func (r *hyRun) inSlowStart() bool { return r.c.CongestionWindow() < r.c.SlowStartThreshold() }

// Linux behaviour (hystart_update, HYSTART_DELAY): a round trip whose
// smallest of the first eight samples exceeds the minimum RTT by more than
// clamp(minRTT/8, 4 ms, 16 ms) ends slow start at the ninth ACK, with
// ssthresh = cwnd; ACKs all arriving at once never form a train.
func TestHyStartDelayExitAtNinthSample(t *testing.T) {
	r := newHyRun(10)
	at := 100 * time.Millisecond
	for i := 0; i < 5; i++ { // round 1: 100 ms, cwnd 10 -> 20
		r.ack(at, 100*time.Millisecond, 2000)
	}
	at += 125 * time.Millisecond
	for i := 1; i <= 8; i++ { // round 2: 125 ms > 100 + 12.5
		r.ack(at, 125*time.Millisecond, 2000)
		if !r.inSlowStart() {
			t.Fatalf("slow start ended at sample %d of the slower round; Linux takes 8 first", i)
		}
	}
	cwnd := r.c.CongestionWindow()
	r.ack(at, 125*time.Millisecond, 2000)
	if r.inSlowStart() || r.c.SlowStartThreshold() != cwnd || !r.c.hy.found {
		t.Fatalf("after the ninth sample: cwnd %d ssthresh %d, want ssthresh = cwnd before the ACK (%d)",
			r.c.CongestionWindow(), r.c.SlowStartThreshold(), cwnd)
	}
	if r.c.CongestionWindow() >= cwnd+1000 {
		t.Fatalf("cwnd grew from %d to %d on the exit ACK, as slow start would", cwnd, r.c.CongestionWindow())
	}
}

// Without Config.HyStart (the rfc profile: RFC 9438 has no such rule)
// slow start goes on until a loss, whatever the delays.
func TestHyStartOffKeepsSlowStart(t *testing.T) {
	r := newHyRun(10)
	r.c.iw.HyStart = false
	at := 100 * time.Millisecond
	for i := 0; i < 5; i++ {
		r.ack(at, 100*time.Millisecond, 2000)
	}
	at += 200 * time.Millisecond
	for i := 0; i < 20; i++ {
		r.ack(at+time.Duration(i)*time.Millisecond, 200*time.Millisecond, 2000)
	}
	if !r.inSlowStart() || r.c.hy.found {
		t.Fatalf("slow start ended (cwnd %d ssthresh %d) with HyStart off", r.c.CongestionWindow(), r.c.SlowStartThreshold())
	}
}

// A rise within the margin (here 12.5 ms over 100 ms) is not congestion;
// nor is any rise while cwnd is below 16 segments.
func TestHyStartDelayWithinMarginOrSmallWindowStays(t *testing.T) {
	r := newHyRun(10)
	at := 100 * time.Millisecond
	for i := 0; i < 5; i++ {
		r.ack(at, 100*time.Millisecond, 2000)
	}
	at += 112 * time.Millisecond
	for i := 0; i < 15; i++ {
		r.ack(at, 112*time.Millisecond, 2000)
	}
	if !r.inSlowStart() {
		t.Fatalf("slow start ended on a 12 ms rise over 100 ms (margin 12.5 ms)")
	}

	r = newHyRun(4)
	at = 100 * time.Millisecond
	for i := 0; i < 4; i++ {
		r.ack(at, 100*time.Millisecond, 1000)
	}
	at += 200 * time.Millisecond
	for i := 0; i < 7; i++ { // cwnd 8 -> 15: below hystart_low_window
		r.ack(at, 200*time.Millisecond, 1000)
	}
	if !r.inSlowStart() {
		t.Fatalf("slow start ended with cwnd %d, below 16 segments", r.c.CongestionWindow()/1000)
	}
}

// Linux behaviour (hystart_update, HYSTART_ACK_TRAIN, no pacing): ACKs at
// most 2 ms apart that keep coming for more than half the minimum RTT
// (plus at most 1 ms for aggregation) after the round began end slow start.
func TestHyStartAckTrainExit(t *testing.T) {
	r := newHyRun(32) // one round is 32 ACKs of a segment
	at := 40 * time.Millisecond
	r.ack(at, 40*time.Millisecond, 1000) // round 1 begins; delayMin 40 ms
	// The threshold is (40 ms + ack delay <= 1 ms) / 2 <= 20.5 ms: ACKs
	// 1 ms apart, at most 21 ms after the round's start, then one more.
	for i := 1; i <= 20; i++ {
		r.ack(at+time.Duration(i)*time.Millisecond, 40*time.Millisecond, 1000)
		if !r.inSlowStart() {
			t.Fatalf("slow start ended %d ms into the train; the threshold is about 20 ms", i)
		}
	}
	r.ack(at+21*time.Millisecond, 40*time.Millisecond, 1000)
	r.ack(at+22*time.Millisecond, 40*time.Millisecond, 1000)
	if r.inSlowStart() {
		t.Fatalf("slow start goes on after a 22 ms train of ACKs with a 40 ms minimum RTT")
	}

	// A gap of more than 2 ms breaks the train.
	r = newHyRun(32)
	r.ack(at, 40*time.Millisecond, 1000)
	for i := 1; i <= 10; i++ {
		r.ack(at+time.Duration(3*i)*time.Millisecond, 40*time.Millisecond, 1000)
	}
	if !r.inSlowStart() {
		t.Fatalf("ACKs 3 ms apart were taken for a train")
	}
}

// Linux behaviour (cubictcp_state on TCP_CA_Loss, cubictcp_acked): an RTO
// starts the search over; and samples in the first second of a
// congestion-avoidance epoch are not taken as the minimum delay.
func TestHyStartResetByRTOAndQuietAfterEpoch(t *testing.T) {
	r := newHyRun(10)
	at := 100 * time.Millisecond
	r.ack(at, 100*time.Millisecond, 1000)
	r.c.hy.found = true
	r.c.OnRTO(at, 10000)
	if r.c.hy.found || r.c.hy.delayMin != 0 {
		t.Fatalf("after an RTO: found %v, delayMin %v; want the search reset", r.c.hy.found, r.c.hy.delayMin)
	}

	c := NewCubic(Config{MSS: 1000, InitialWindowSegments: 10})
	c.OnAckSample(time.Second, 50*time.Millisecond, 1000, 10000)
	c.OnLoss(time.Second, 10000)
	c.OnRecoveryEnd(2 * time.Second)
	c.OnAck(2*time.Second, 1000, 14000, 0) // starts the epoch
	c.OnAckSample(2*time.Second+500*time.Millisecond, 10*time.Millisecond, 2000, 10000)
	if c.hy.delayMin != 50*time.Millisecond {
		t.Fatalf("delayMin %v: a sample half a second into the epoch was taken", c.hy.delayMin)
	}
	c.OnAckSample(3*time.Second+time.Millisecond, 10*time.Millisecond, 3000, 10000)
	if c.hy.delayMin != 10*time.Millisecond {
		t.Fatalf("delayMin %v: a sample past the first second of the epoch was not taken", c.hy.delayMin)
	}
}
