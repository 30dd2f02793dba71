package netif

import (
	"encoding/binary"
	"errors"
	"math"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// testPacket returns a packet of sizeBytes (at least 8) carrying id.
func testPacket(id uint64, sizeBytes int) []byte {
	b := make([]byte, sizeBytes)
	binary.BigEndian.PutUint64(b, id)
	return b
}

func packetID(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// countingLink is a Link without timing, for the direct and instant modes:
// WritePackets records the ids written (when record is set), ReadPackets
// makes packets 0, 1, 2, ... and reports net.ErrClosed after limit of them
// (no limit when 0) or after Close.
type countingLink struct {
	mtu    int
	record bool
	limit  uint64

	mu      sync.Mutex
	written []uint64
	next    uint64
	closed  bool
}

func (c *countingLink) MTU() int { return c.mtu }

func (c *countingLink) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *countingLink) WritePackets(pkts [][]byte) (int, error) {
	if c.record {
		c.mu.Lock()
		for _, p := range pkts {
			c.written = append(c.written, packetID(p))
		}
		c.mu.Unlock()
	}
	return len(pkts), nil
}

func (c *countingLink) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for n < len(bufs) && !c.closed && (c.limit == 0 || c.next < c.limit) {
		binary.BigEndian.PutUint64(bufs[n], c.next)
		sizes[n] = 64
		c.next++
		n++
	}
	if n == 0 {
		return 0, net.ErrClosed
	}
	return n, nil
}

func mustImpair(t testing.TB, l Link, spec string) *ImpairedLink {
	t.Helper()
	s, err := ParseImpairSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	il, err := NewImpairedLink(l, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { il.Close() })
	return il
}

// writeIDs writes packets first..first+count-1 through l in batches of 64.
func writeIDs(t testing.TB, l Link, first, count uint64) {
	t.Helper()
	batch := make([][]byte, 0, 64)
	for id := first; id < first+count; id++ {
		batch = append(batch, testPacket(id, 64))
		if len(batch) == cap(batch) || id == first+count-1 {
			if n, err := l.WritePackets(batch); n != len(batch) || err != nil {
				t.Fatalf("WritePackets = %d, %v", n, err)
			}
			batch = batch[:0]
		}
	}
}

// readAllIDs reads l until it reports an error and returns the ids read.
func readAllIDs(l Link) ([]uint64, error) {
	bufs, sizes := make([][]byte, 16), make([]int, 16)
	for i := range bufs {
		bufs[i] = make([]byte, 1500)
	}
	var ids []uint64
	for {
		n, err := l.ReadPackets(bufs, sizes)
		for i := range n {
			ids = append(ids, packetID(bufs[i][:sizes[i]]))
		}
		if err != nil {
			return ids, err
		}
	}
}

// writtenOutbound writes n packets through spec's outbound path and returns
// the ids written to the link.
func writtenOutbound(t *testing.T, spec string, n uint64) ([]uint64, ImpairDirStats) {
	link := &countingLink{mtu: 1500, record: true}
	il := mustImpair(t, link, spec)
	writeIDs(t, il, 0, n)
	return link.written, il.Stats().Out
}

// missing returns the ids below n absent from got, which is in order.
func missing(got []uint64, n uint64) []uint64 {
	var miss []uint64
	next := uint64(0)
	for _, id := range got {
		for ; next < id; next++ {
			miss = append(miss, next)
		}
		if id == next {
			next++
		}
	}
	for ; next < n; next++ {
		miss = append(miss, next)
	}
	return miss
}

// withinBinomial fails unless got is within k standard deviations of a binomial
// count with n trials of probability p.
func withinBinomial(t *testing.T, what string, got uint64, n int, p, k float64) {
	t.Helper()
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	if d := math.Abs(float64(got) - mean); d > k*sd {
		t.Errorf("%s = %d, want %.0f ± %.0f (%g standard deviations)", what, got, mean, k*sd, k)
	}
}

func TestNewImpairedLinkRejectsAnInvalidSpec(t *testing.T) {
	for _, s := range []ImpairSpec{{LossPercent: -1}, {Jitter: time.Millisecond}, {QueuePackets: 3}} {
		if _, err := NewImpairedLink(&countingLink{mtu: 1500}, s); err == nil {
			t.Errorf("NewImpairedLink accepted %+v", s)
		}
	}
	if _, err := NewImpairedLink(nil, ImpairSpec{}); err == nil {
		t.Error("NewImpairedLink accepted a nil link")
	}
}

func TestImpairZeroSpecPassesStraightThroughWithoutGoroutinesOrAllocations(t *testing.T) {
	before := runtime.NumGoroutine()
	link := &countingLink{mtu: 1500}
	il := mustImpair(t, link, "seed=3,dir=in")
	if after := runtime.NumGoroutine(); after != before {
		t.Errorf("goroutines %d -> %d, want none started", before, after)
	}
	pkts := [][]byte{testPacket(1, 1500)}
	bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
	if a := testing.AllocsPerRun(100, func() { il.WritePackets(pkts) }); a != 0 {
		t.Errorf("WritePackets allocates %v per call, want 0", a)
	}
	if a := testing.AllocsPerRun(100, func() { il.ReadPackets(bufs, sizes) }); a != 0 {
		t.Errorf("ReadPackets allocates %v per call, want 0", a)
	}
	st := il.Stats()
	if st.Out.InPackets != 101 || st.Out.DeliveredPackets != 101 || st.In.DeliveredPackets != 101 {
		t.Errorf("Stats = %+v, want 101 in and delivered each way", st)
	}
}

func TestImpairLossRateIsWithinBoundsOver100kPackets(t *testing.T) {
	const n = 100_000
	written, st := writtenOutbound(t, "loss=1%,seed=42", n)
	withinBinomial(t, "lost", st.LostPackets, n, 0.01, 5)
	if st.InPackets != n || st.LostPackets+st.DeliveredPackets != n || uint64(len(written)) != st.DeliveredPackets {
		t.Errorf("Stats = %+v with %d written, want in = lost + delivered = %d", st, len(written), n)
	}
}

func TestImpairLossIsReproducibleFromTheSeed(t *testing.T) {
	const n = 20_000
	a, _ := writtenOutbound(t, "loss=1%,seed=42", n)
	b, _ := writtenOutbound(t, "loss=1%,seed=42", n)
	c, _ := writtenOutbound(t, "loss=1%,seed=43", n)
	if !slices.Equal(a, b) {
		t.Error("the same seed lost different packets")
	}
	if slices.Equal(a, c) {
		t.Error("seeds 42 and 43 lost the same packets")
	}
	// Mechanisms have their own streams: adding duplication or jitter-free
	// reordering does not move the losses.
	d, _ := writtenOutbound(t, "loss=1%,dup=3%,seed=42", n)
	if !slices.Equal(missing(a, n), missing(slices.Compact(d), n)) {
		t.Error("adding dup=3% changed which packets were lost")
	}
	// Directions have their own streams too.
	in := mustImpair(t, &countingLink{mtu: 1500, limit: n}, "loss=1%,seed=42")
	ids, err := readAllIDs(in)
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadPackets at the end = %v, want net.ErrClosed", err)
	}
	if slices.Equal(missing(ids, n), missing(a, n)) {
		t.Error("inbound lost the same packets as outbound: the directions share a stream")
	}
}

func TestImpairBurstLossKeepsTheRateAndAveragesTheBurstLength(t *testing.T) {
	const n, loss = 300_000, 0.05
	for _, burst := range []float64{1, 4, 10} {
		written, st := writtenOutbound(t, "loss=5%,seed=9,burst="+formatFloat(burst), n)
		lost := missing(written, n)
		runs := 0
		for i, id := range lost {
			if i == 0 || lost[i-1] != id-1 {
				runs++
			}
		}
		meanRun := float64(len(lost)) / float64(runs)
		rate := float64(st.LostPackets) / n
		// Bursts are geometric with mean N, so their count K is about
		// n·loss/N and both the mean length and the loss rate have a
		// relative standard error of about 1/√K (the rate's a little more,
		// √2/√K, as burst count and lengths both vary). Allow 4 of them.
		k := n * loss / burst
		t.Logf("burst=%g: loss %.4f, %d bursts, mean length %.3f", burst, rate, runs, meanRun)
		if tol := 4 * math.Sqrt(2/k); math.Abs(rate-loss) > tol*loss {
			t.Errorf("burst=%g: loss rate %.4f, want %g ± %.1f%%", burst, rate, loss, 100*tol)
		}
		if tol := 4 / math.Sqrt(k); math.Abs(meanRun-burst) > tol*burst {
			t.Errorf("burst=%g: mean burst %.3f packets, want %g ± %.1f%%", burst, meanRun, burst, 100*tol)
		}
	}
}

func TestImpairDupSendsCopiesRightBehindTheOriginal(t *testing.T) {
	const n = 10_000
	written, st := writtenOutbound(t, "dup=10%,seed=5", n)
	withinBinomial(t, "duplicated", st.DuplicatedPackets, n, 0.1, 5)
	copies := uint64(0)
	for i := 1; i < len(written); i++ {
		if written[i] == written[i-1] {
			copies++
		}
	}
	if got := slices.Compact(slices.Clone(written)); len(got) != n || copies != st.DuplicatedPackets ||
		st.DeliveredPackets != n+copies {
		t.Errorf("%d distinct packets, %d adjacent copies, stats %+v; want %d distinct, every copy adjacent",
			len(got), copies, st, n)
	}

	// Inbound, copies come at the end of the batch or in the next read.
	il := mustImpair(t, &countingLink{mtu: 1500, limit: n}, "dup=10%,seed=5")
	ids, _ := readAllIDs(il)
	in := il.Stats().In
	slices.Sort(ids)
	if len(slices.Compact(ids)) != n || in.DeliveredPackets != n+in.DuplicatedPackets {
		t.Errorf("inbound: stats %+v, want all %d packets and every copy delivered", in, n)
	}
	withinBinomial(t, "inbound duplicated", in.DuplicatedPackets, n, 0.1, 5)
}

func TestImpairDirectionSelection(t *testing.T) {
	for _, tc := range []struct {
		dir             string
		outLost, inLost bool
		outMode, inMode pathMode
	}{
		{"in", false, true, pathDirect, pathInstant},
		{"out", true, false, pathInstant, pathDirect},
		{"both", true, true, pathInstant, pathInstant},
	} {
		il := mustImpair(t, &countingLink{mtu: 1500, limit: 100, record: true}, "loss=100%,dir="+tc.dir)
		writeIDs(t, il, 0, 100)
		readAllIDs(il)
		st := il.Stats()
		if (st.Out.LostPackets == 100) != tc.outLost || (st.In.LostPackets == 100) != tc.inLost {
			t.Errorf("dir=%s: lost out %d, in %d of 100", tc.dir, st.Out.LostPackets, st.In.LostPackets)
		}
		if il.out.mode != tc.outMode || il.in.mode != tc.inMode {
			t.Errorf("dir=%s: modes out %d, in %d; want %d, %d", tc.dir, il.out.mode, il.in.mode, tc.outMode, tc.inMode)
		}
	}
}

// arrival is one packet seen at the far end, at a time since the start.
type arrival struct {
	id uint64
	at time.Duration
}

// collector reads a link on its own goroutine until it closes, noting each
// packet's id and arrival time.
type collector struct {
	mu   sync.Mutex
	got  []arrival
	errc chan error
}

func collect(l Link, start time.Time) *collector {
	c := &collector{errc: make(chan error, 1)}
	go func() {
		bufs, sizes := make([][]byte, 64), make([]int, 64)
		for i := range bufs {
			bufs[i] = make([]byte, l.MTU())
		}
		for {
			n, err := l.ReadPackets(bufs, sizes)
			at := time.Since(start)
			c.mu.Lock()
			for i := range n {
				c.got = append(c.got, arrival{packetID(bufs[i][:sizes[i]]), at})
			}
			c.mu.Unlock()
			if err != nil {
				c.errc <- err
				return
			}
		}
	}()
	return c
}

func (c *collector) arrivals() []arrival {
	synctest.Wait() // let the collector take what has been released
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func (c *collector) ids() []uint64 {
	var ids []uint64
	for _, a := range c.arrivals() {
		ids = append(ids, a.id)
	}
	return ids
}

// impairedPipe impairs one end of a pipe and returns the link to send on
// and a collector of what comes out in direction out (written through the
// impaired end) or in (written by the peer, read through the impaired end).
// Call it inside a synctest bubble.
func impairedPipe(t *testing.T, spec string, out bool) (*ImpairedLink, Link, *collector) {
	a, b := NewPipe(1500)
	il := mustImpair(t, a, spec)
	start := time.Now()
	if out {
		return il, il, collect(b, start)
	}
	return il, b, collect(il, start)
}

func directions() map[string]bool { return map[string]bool{"out": true, "in": false} }

func TestImpairDelayIsExact(t *testing.T) {
	for name, out := range directions() {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				il, send, c := impairedPipe(t, "delay=20ms", out)
				writeIDs(t, send, 0, 1)
				time.Sleep(5 * time.Millisecond)
				writeIDs(t, send, 1, 2)
				time.Sleep(time.Second)
				want := []arrival{{0, 20 * time.Millisecond}, {1, 25 * time.Millisecond}, {2, 25 * time.Millisecond}}
				if got := c.arrivals(); !slices.Equal(got, want) {
					t.Errorf("arrivals %v, want %v", got, want)
				}
				st := il.Stats()
				d := st.Out
				if !out {
					d = st.In
				}
				if d.DelayedPackets != 3 || d.DeliveredPackets != 3 || d.InPackets != 3 {
					t.Errorf("stats %+v, want 3 in, delayed and delivered", d)
				}
			})
		})
	}
}

func TestImpairJitterStaysWithinRangeAndKeepsOrder(t *testing.T) {
	run := func(t *testing.T) []arrival {
		_, send, c := impairedPipe(t, "delay=20ms,jitter=5ms,seed=11", true)
		for id := range uint64(500) {
			writeIDs(t, send, id, 1)
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Second)
		return c.arrivals()
	}
	synctest.Test(t, func(t *testing.T) {
		got := run(t)
		if len(got) != 500 {
			t.Fatalf("%d arrivals, want 500", len(got))
		}
		distinct := map[time.Duration]bool{}
		for i, a := range got {
			delay := a.at - time.Duration(a.id)*time.Millisecond
			distinct[delay] = true
			if a.id != uint64(i) || delay < 15*time.Millisecond || delay > 25*time.Millisecond {
				t.Fatalf("arrival %d: packet %d after %v, want packet %d after 15ms to 25ms", i, a.id, delay, i)
			}
		}
		if len(distinct) < 100 {
			t.Errorf("only %d distinct delays in 500 packets: jitter is not spreading them", len(distinct))
		}
		if again := run(t); !slices.Equal(got, again) {
			t.Error("the same seed gave different arrival times")
		}
	})
}

func TestImpairReorderDisplacesAPacketByOnePosition(t *testing.T) {
	for name, out := range directions() {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 2000
				il, send, c := impairedPipe(t, "reorder=10%,seed=3", out)
				for id := range uint64(n) {
					writeIDs(t, send, id, 1)
					time.Sleep(time.Millisecond)
				}
				time.Sleep(time.Second)
				got := c.ids()
				swaps := uint64(0)
				for i := 0; i < len(got); i++ {
					switch {
					case got[i] == uint64(i):
					case i+1 < len(got) && got[i] == uint64(i+1) && got[i+1] == uint64(i):
						swaps++
						i++
					default:
						t.Fatalf("position %d holds packet %d: not a displacement by one (%v)", i, got[i], got[max(0, i-3):min(len(got), i+3)])
					}
				}
				st := il.Stats()
				d := st.Out
				if !out {
					d = st.In
				}
				if len(got) != n || d.ReorderedPackets != swaps {
					t.Errorf("%d packets, %d swaps, stats %+v; want %d packets, reordered = swaps", len(got), swaps, d, n)
				}
				// A packet chosen while another is held is not held, so
				// slightly fewer than 10% are displaced.
				if frac := float64(swaps) / n; frac < 0.07 || frac > 0.11 {
					t.Errorf("%.3f of packets reordered, want about 0.09", frac)
				}
			})
		})
	}
}

func TestImpairReorderWithoutSuccessorReleasesAfterMaxHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		il, send, c := impairedPipe(t, "reorder=100%,delay=1ms", true)
		writeIDs(t, send, 0, 1)
		time.Sleep(time.Second)
		want := []arrival{{0, time.Millisecond + impairReorderMaxHold}}
		if got := c.arrivals(); !slices.Equal(got, want) {
			t.Errorf("arrivals %v, want %v", got, want)
		}
		if st := il.Stats().Out; st.ReorderedPackets != 0 || st.DelayedPackets != 1 {
			t.Errorf("stats %+v, want 1 delayed and none reordered", st)
		}
	})
}

func TestImpairRateOf1MbitDelivers100PacketsOf1250BytesPerSecond(t *testing.T) {
	for name, out := range directions() {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, send, c := impairedPipe(t, "rate=1mbit,queue=1000", out)
				batch := make([][]byte, 300)
				for i := range batch {
					batch[i] = testPacket(uint64(i), 1250)
				}
				if n, err := send.WritePackets(batch); n != 300 || err != nil {
					t.Fatalf("WritePackets = %d, %v", n, err)
				}
				time.Sleep(time.Second)
				got := c.arrivals()
				if len(got) != 100 {
					t.Fatalf("%d packets in the first second, want 100", len(got))
				}
				for i, a := range got {
					// 1250 bytes are 10000 bits: 10 ms each at 1 Mbit/s.
					if want := (arrival{uint64(i), time.Duration(i+1) * 10 * time.Millisecond}); a != want {
						t.Fatalf("arrival %d = %v, want %v", i, a, want)
					}
				}
			})
		})
	}
}

func TestImpairRateQueueTailDropsOnOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		il, send, c := impairedPipe(t, "rate=1mbit,queue=10", true)
		batch := make([][]byte, 30)
		for i := range batch {
			batch[i] = testPacket(uint64(i), 1250)
		}
		send.WritePackets(batch)
		time.Sleep(time.Second)
		// Drained, the queue takes a burst of 10 again.
		send.WritePackets(batch[20:])
		time.Sleep(time.Second)
		want := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29}
		if got := c.ids(); !slices.Equal(got, want) {
			t.Errorf("delivered %v, want %v", got, want)
		}
		st := il.Stats().Out
		if st.QueueDropPackets != 20 || st.MaxQueuePackets != 10 || st.DeliveredPackets != 20 || st.InPackets != 40 {
			t.Errorf("stats %+v, want 40 in, 20 delivered, 20 queue drops, max queue 10", st)
		}
	})
}

func TestImpairAccountsForEveryPacketAndReplaysFromTheSeed(t *testing.T) {
	const spec = "loss=5%,burst=2,dup=5%,reorder=5%,delay=10ms,jitter=3ms,rate=10mbit,queue=20,seed=77"
	run := func(t *testing.T) ([]arrival, ImpairDirStats) {
		il, send, c := impairedPipe(t, spec, true)
		for burst := range uint64(100) {
			writeIDs(t, send, burst*30, 30)
			time.Sleep(7 * time.Millisecond)
		}
		time.Sleep(time.Second)
		return c.arrivals(), il.Stats().Out
	}
	synctest.Test(t, func(t *testing.T) {
		got, st := run(t)
		if st.InPackets != 3000 || st.InPackets+st.DuplicatedPackets != st.DeliveredPackets+st.LostPackets+st.QueueDropPackets ||
			uint64(len(got)) != st.DeliveredPackets {
			t.Errorf("stats %+v with %d arrivals: in + duplicated != delivered + lost + queue drops", st, len(got))
		}
		if st.LostPackets == 0 || st.DuplicatedPackets == 0 || st.ReorderedPackets == 0 || st.QueueDropPackets == 0 || st.MaxQueuePackets != 20 {
			t.Errorf("stats %+v: want every mechanism to have acted", st)
		}
		again, st2 := run(t)
		if !slices.Equal(got, again) || st != st2 {
			t.Error("the same seed gave a different run")
		}
	})
}

func TestImpairRefusesPacketsOverTheMTU(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, send, _ := impairedPipe(t, "delay=1ms", true)
		if n, err := send.WritePackets([][]byte{testPacket(0, 100), testPacket(1, 1501)}); n != 1 || !errors.Is(err, ErrPacketTooBig) {
			t.Errorf("WritePackets = %d, %v; want 1, ErrPacketTooBig", n, err)
		}
	})
}

func TestImpairCloseUnblocksReadersAndStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	a, b := NewPipe(1500)
	il := mustImpair(t, a, "delay=50ms,jitter=10ms,rate=10mbit,reorder=5%")
	readErr := make(chan error)
	go func() {
		_, err := readAllIDs(il)
		readErr <- err
	}()
	writeIDs(t, il, 0, 100)
	writeIDs(t, b, 0, 100)
	if err := il.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked ReadPackets returned %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadPackets still blocked after Close")
	}
	if _, err := il.WritePackets([][]byte{testPacket(0, 64)}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WritePackets after Close = %v, want net.ErrClosed", err)
	}
	if err := il.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	// Close waited for its goroutines; the reader above may still be on
	// its way out.
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestImpairCloseInsideABubbleLeavesNoGoroutine(t *testing.T) {
	// synctest.Test fails if any goroutine of the bubble is left blocked.
	synctest.Test(t, func(t *testing.T) {
		a, _ := NewPipe(1500)
		s, _ := ParseImpairSpec("delay=1s,rate=1mbit")
		il, err := NewImpairedLink(a, s)
		if err != nil {
			t.Fatal(err)
		}
		writeIDs(t, il, 0, 10)
		il.Close()
	})
}

func benchmarkImpairWrite(b *testing.B, spec string) {
	il := mustImpair(b, &countingLink{mtu: 1500}, spec)
	pkts := [][]byte{testPacket(1, 1500)}
	b.ReportAllocs()
	b.SetBytes(1500)
	for b.Loop() {
		il.WritePackets(pkts)
	}
}

func benchmarkImpairRead(b *testing.B, spec string) {
	il := mustImpair(b, &countingLink{mtu: 1500}, spec)
	bufs, sizes := make([][]byte, 16), make([]int, 16)
	for i := range bufs {
		bufs[i] = make([]byte, 1500)
	}
	b.ReportAllocs()
	for b.Loop() {
		il.ReadPackets(bufs, sizes)
	}
}

func BenchmarkImpairPassThroughWrite(b *testing.B) { benchmarkImpairWrite(b, "") }
func BenchmarkImpairPassThroughRead(b *testing.B)  { benchmarkImpairRead(b, "") }
func BenchmarkImpairLossOnlyWrite(b *testing.B)    { benchmarkImpairWrite(b, "loss=1%,seed=1") }
func BenchmarkImpairLossOnlyRead(b *testing.B)     { benchmarkImpairRead(b, "loss=1%,seed=1") }
func BenchmarkImpairBurstLossWrite(b *testing.B)   { benchmarkImpairWrite(b, "loss=1%,burst=3,seed=1") }

// BenchmarkImpairScheduledWrite measures the scheduled path (copy, heap,
// scheduler goroutine) at a rate high enough that nothing is dropped.
func BenchmarkImpairScheduledWrite(b *testing.B) {
	benchmarkImpairWrite(b, "rate=100gbit,queue=100000,dir=out")
}
