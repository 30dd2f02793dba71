package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Ports of the scenarios' listeners on the stack under test.
const (
	bulkPort = 5001
	rrPort   = 5002
	crrPort  = 5003
	idlePort = 5100 // the first of idle's listeners, one per idleConnsPerPort connections
)

// chunkBytes is the size of each Write and Read buffer of the bulk flows.
const chunkBytes = 128 << 10

// streamsPerWay is how many connections the streams scenario opens in each
// direction.
const streamsPerWay = 8

// Modes a bulk connection's first byte asks for.
const (
	modeDown = 'D' // the stack sends, the peer reads
	modeUp   = 'U' // the peer sends, the stack reads
)

func runBulkDown(r *runCtx) (Sample, error) { return bulkSample(r, 1, 0, 1e9) }
func runBulkUp(r *runCtx) (Sample, error)   { return bulkSample(r, 0, 1, 1e9) }
func runStreams(r *runCtx) (Sample, error) {
	return bulkSample(r, streamsPerWay, streamsPerWay, 1e9)
}
func runLossy(r *runCtx) (Sample, error) { return bulkSample(r, 1, 0, 1e6) }

// bulkSample runs down+up bulk connections and turns what the receivers
// counted into a Sample whose figure is bits per second over unit.
func bulkSample(r *runCtx, down, up int, bitsPerUnit float64) (Sample, error) {
	f, err := runFlows(r, down, up)
	if err != nil {
		return Sample{}, err
	}
	secs := f.win.elapsed.Seconds()
	moved := f.downBytes + f.upBytes
	if moved == 0 {
		return Sample{}, errors.New("no data moved during the window")
	}
	m := map[string]float64{
		"bytes":        float64(moved),
		"seconds":      secs,
		"gbps":         float64(moved) * 8 / secs / 1e9,
		"cpu_user_s":   f.win.cpu.user.Seconds(),
		"cpu_sys_s":    f.win.cpu.sys.Seconds(),
		"cpu_s_per_gb": f.win.cpu.total().Seconds() / (float64(moved) / 1e9),
		"retrans":      float64(f.win.retrans),
		"rto_timeouts": float64(f.timeouts),
		"link_drops":   float64(f.win.drops),
	}
	if f.impaired {
		m["link_lost_to_stack"] = float64(f.inLost)
		m["link_lost_from_stack"] = float64(f.outLost)
		m["queue_drops_to_stack"] = float64(f.inDropped)
		m["queue_drops_from_stack"] = float64(f.outDropped)
	}
	if down == 0 && up > 0 {
		for k, v := range ackMetrics(f.win.segs, f.upBytes) {
			m[k] = v
		}
	}
	if down > 0 && up > 0 {
		m["down_gbps"] = float64(f.downBytes) * 8 / secs / 1e9
		m["up_gbps"] = float64(f.upBytes) * 8 / secs / 1e9
	}
	return Sample{Value: float64(moved) * 8 / secs / bitsPerUnit, Metrics: m}, nil
}

// mib is a mebibyte, the unit of the ACK figure.
const mib = 1 << 20

// ackMetrics are the figures of the ACKs a receiving stack sent in a
// window during which its readers got receivedBytes: the count, per MiB
// received, and the data segments that arrived per ACK (2 for an ACK every
// second segment, 1 for an ACK per segment).
func ackMetrics(c segCounts, receivedBytes int64) map[string]float64 {
	m := map[string]float64{
		"pure_acks":    float64(c.pureAcksOut),
		"data_segs_in": float64(c.dataSegsIn),
	}
	if receivedBytes > 0 {
		m["acks_per_mib"] = float64(c.pureAcksOut) / (float64(receivedBytes) / mib)
	}
	if c.pureAcksOut > 0 {
		m["segs_per_ack"] = float64(c.dataSegsIn) / float64(c.pureAcksOut)
	}
	return m
}

// flows is what runFlows measured in its window.
type flows struct {
	win                windowEnd
	downBytes, upBytes int64  // received in the window, per direction
	timeouts           uint64 // retransmission timer expirations of the stack under test
	// What the impaired link did during the window, if there is one.
	impaired                               bool
	inLost, inDropped, outLost, outDropped uint64
}

// runFlows opens down connections on which the stack sends and up
// connections on which the kernel peer sends, all from the peer to the
// stack's listener, lets them run through the warm-up, then counts the
// bytes their receivers read during the window. Everything is closed
// before it returns.
func runFlows(r *runCtx, down, up int) (flows, error) {
	ln, err := r.env.server.Listen(r.env.family.serverAddrPort(bulkPort), 128)
	if err != nil {
		return flows{}, fmt.Errorf("listen: %w", err)
	}
	var (
		downB, upB atomic.Int64
		wg         sync.WaitGroup
		mu         sync.Mutex
		peers      []net.Conn // the kernel peer's sockets
		servers    []net.Conn // the stack's side
	)
	track := func(list *[]net.Conn, c net.Conn) {
		mu.Lock()
		*list = append(*list, c)
		mu.Unlock()
	}
	n := down + up
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range n {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(&servers, c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mode [1]byte
				if _, err := io.ReadFull(c, mode[:]); err != nil {
					return
				}
				if mode[0] == modeDown {
					sendUntilError(c)
				} else {
					countUntilError(c, &upB)
				}
			}()
		}
	}()
	var setupErr error
	for i := range n {
		c, err := r.env.dial(r.ctx, bulkPort)
		if err != nil {
			setupErr = fmt.Errorf("connect %d: %w", i+1, err)
			break
		}
		track(&peers, c)
		mode := byte(modeUp)
		if i < down {
			mode = modeDown
		}
		if _, err := c.Write([]byte{mode}); err != nil {
			setupErr = fmt.Errorf("connection %d: %w", i+1, err)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if mode == modeDown {
				countUntilError(c, &downB)
			} else {
				sendUntilError(c)
			}
		}()
	}
	var f flows
	if setupErr == nil {
		setupErr = r.sleep(r.warmup)
	}
	if setupErr == nil {
		var il0, id0, ol0, od0 uint64
		if r.env.impaired != nil {
			il0, id0, ol0, od0 = r.env.impaired.impairCounts()
		}
		stackConns := func() []net.Conn {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(servers)
		}
		t0 := r.env.timeouts(stackConns())
		w := r.begin()
		d0, u0 := downB.Load(), upB.Load()
		setupErr = r.sleep(r.duration)
		f.downBytes, f.upBytes = downB.Load()-d0, upB.Load()-u0
		f.win = r.end(w)
		f.timeouts = r.env.timeouts(stackConns()) - t0
		if r.env.impaired != nil {
			il1, id1, ol1, od1 := r.env.impaired.impairCounts()
			f.impaired = true
			f.inLost, f.inDropped, f.outLost, f.outDropped = il1-il0, id1-id0, ol1-ol0, od1-od0
		}
	}
	ln.Close()
	// The peer's sockets first: the stack's side then sees a reset or EOF,
	// and its own Close has nothing left to wait for.
	mu.Lock()
	for _, c := range peers {
		c.Close()
	}
	for _, c := range servers {
		c.Close()
	}
	mu.Unlock()
	waitTimeout(&wg, 10*time.Second)
	return f, setupErr
}

// sendUntilError writes chunks until a write fails.
func sendUntilError(c net.Conn) {
	buf := make([]byte, chunkBytes)
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// countUntilError reads into a chunk until a read fails, adding every byte
// to total.
func countUntilError(c net.Conn, total *atomic.Int64) {
	buf := make([]byte, chunkBytes)
	for {
		n, err := c.Read(buf)
		total.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// waitTimeout waits for wg, at most d; goroutines still running then are
// ended by the environment's teardown.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
