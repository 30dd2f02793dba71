package congestion

import "time"

// HyStart: CUBIC's hybrid slow start as Linux runs it by default
// (tcp_cubic's hystart_update with HYSTART_ACK_TRAIN and HYSTART_DELAY):
// slow start ends (ssthresh = cwnd) before the first loss once a round
// trip shows the queue building. RFC 9406 (HyStart++) uses the same delay
// test, but continues in a conservative slow start where Linux leaves slow
// start at once; this follows Linux.

const (
	// hystartLowWindow: no test below 16 segments of cwnd.
	hystartLowWindow = 16
	// hystartMinSamples: a round's first 8 delay samples only find its
	// smallest; the test runs from the ninth.
	hystartMinSamples = 8
	// The delay test's margin over the minimum RTT: an eighth of it,
	// clamped to [4 ms, 16 ms].
	hystartDelayMin = 4 * time.Millisecond
	hystartDelayMax = 16 * time.Millisecond
	// hystartAckDelta: ACKs at most 2 ms apart form a train.
	hystartAckDelta = 2 * time.Millisecond
	// hystartGSOMaxSize is the largest GSO packet (Linux's
	// GSO_LEGACY_MAX_SIZE), from which the ACK train's allowance for
	// aggregation is computed.
	hystartGSOMaxSize = 65536
	// hystartQuietAfterEpoch: delay samples in the first second of a
	// congestion-avoidance epoch (right after recovery) are ignored.
	hystartQuietAfterEpoch = time.Second
)

// hystart is the state of the search for slow start's exit point.
type hystart struct {
	found bool // the exit point was found: no more tests until an RTO
	// A round ends when SND.UNA passes endSeq (SND.NXT at its start);
	// started is false until the first round begins. (The flags are
	// together so that they leave no padding.)
	started bool
	endSeq  uint32
	// delayMin is the smallest delay sample seen, 0 before any.
	delayMin   time.Duration
	roundStart time.Duration
	lastAck    time.Duration // the last ACK of the current train
	currRTT    time.Duration // the round's smallest delay sample, 0 before any
	sampleCnt  int
}

// OnAckSample is Linux's cubictcp_acked: it keeps the minimum delay and,
// in slow start, runs HyStart's tests if Config.HyStart (AckSampler).
func (c *Cubic) OnAckSample(now, rtt time.Duration, sndUna, sndNxt uint32) {
	if rtt <= 0 {
		return // no sample: Karn's rule
	}
	if age, ok := c.epochAge(now); ok && age < hystartQuietAfterEpoch {
		// Linux behaviour: discard delay samples right after recovery.
		return
	}
	// Linux counts delays in microseconds, at least 1.
	delay := max(rtt.Truncate(time.Microsecond), time.Microsecond)
	h := &c.hy
	if h.delayMin == 0 || delay < h.delayMin {
		h.delayMin = delay
	}
	if c.iw.HyStart && !h.found && c.CongestionWindow() < c.ssthreshBytes {
		c.hystartUpdate(now, delay, sndUna, sndNxt)
	}
}

// hystartUpdate is Linux's hystart_update for one delay sample.
func (c *Cubic) hystartUpdate(now, delay time.Duration, sndUna, sndNxt uint32) {
	h := &c.hy
	if !h.started || int32(sndUna-h.endSeq) > 0 {
		// A new round trip: SND.UNA passed what was sent when the last
		// one began.
		h.started, h.endSeq = true, sndNxt
		h.roundStart, h.lastAck = now, now
		h.currRTT, h.sampleCnt = 0, 0
	}
	if c.CongestionWindow()/c.iw.MSS < hystartLowWindow {
		return
	}
	// ACK train: while ACKs keep coming at most 2 ms apart, a train longer
	// than half the minimum RTT (plus an allowance for aggregation) means
	// the pipe is full. Half, because nothing here paces the sender
	// (Linux halves the threshold for SK_PACING_NONE).
	if now-h.lastAck <= hystartAckDelta {
		h.lastAck = now
		threshold := (h.delayMin + c.hystartAckDelay()) / time.Microsecond >> 1 * time.Microsecond
		if now-h.roundStart > threshold {
			c.hystartExit()
		}
	}
	// Delay: once a round has had its first eight samples, a smallest
	// delay above the minimum by more than delayMin/8 (clamped to 4..16
	// ms) means a queue is building.
	if h.currRTT == 0 || delay < h.currRTT {
		h.currRTT = delay
	}
	if h.sampleCnt < hystartMinSamples {
		h.sampleCnt++
		return
	}
	margin := min(max(h.delayMin/time.Microsecond>>3*time.Microsecond, hystartDelayMin), hystartDelayMax)
	if h.currRTT > h.delayMin+margin {
		c.hystartExit()
	}
}

// hystartExit ends slow start where it is: ssthresh = cwnd.
func (c *Cubic) hystartExit() {
	c.hy.found = true
	c.ssthreshBytes = c.CongestionWindow()
}

// hystartAckDelay is Linux's hystart_ack_delay: the time four of the
// largest GSO packets take at the pacing rate, at most 1 ms. The pacing
// rate is Linux's (tcp_update_pacing_rate): cwnd per smoothed RTT, times
// 2 while cwnd is below half ssthresh, else 1.2; 0 before an RTT sample.
func (c *Cubic) hystartAckDelay() time.Duration {
	if c.srtt <= 0 {
		return 0
	}
	ratio := 1.2
	if c.CongestionWindow() < c.ssthreshBytes/2 {
		ratio = 2
	}
	rate := float64(c.CongestionWindow()) * ratio / c.srtt.Seconds() // bytes per second
	d := time.Duration(4 * hystartGSOMaxSize / rate * float64(time.Second))
	return min(d, time.Millisecond).Truncate(time.Microsecond)
}
