package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Phases of a request/response run, read by the peer's loop.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// runRR measures 1-byte request/response transactions on one connection.
func runRR(r *runCtx) (Sample, error) {
	ln, err := r.env.server.Listen(r.env.family.serverAddrPort(rrPort), 16)
	if err != nil {
		return Sample{}, fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	srvConn := make(chan net.Conn, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			close(srvConn)
			return
		}
		srvConn <- c
		echoBytes(c)
	}()
	c, err := r.env.dial(r.ctx, rrPort)
	if err != nil {
		return Sample{}, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		c.Close()
		if sc, ok := <-srvConn; ok {
			sc.Close()
		}
		waitTimeout(&wg, 10*time.Second)
	}()

	var phase atomic.Int32
	first := newFirstOp()
	lat := make([]float64, 0, 1<<20) // microseconds, window only
	loopErr := make(chan error, 1)
	go func() {
		defer first.done() // a loop that ended reports its error at once
		b := []byte{'q'}
		for phase.Load() != phaseStop {
			t0 := time.Now()
			in := phase.Load() == phaseMeasure
			if _, err := c.Write(b); err != nil {
				loopErr <- err
				return
			}
			if _, err := io.ReadFull(c, b); err != nil {
				loopErr <- err
				return
			}
			if in && phase.Load() == phaseMeasure {
				lat = append(lat, float64(time.Since(t0).Nanoseconds())/1e3)
				first.done()
			}
		}
		loopErr <- nil
	}()
	if err := r.sleep(r.warmup); err != nil {
		return Sample{}, err
	}
	w := r.begin()
	phase.Store(phaseMeasure)
	err = r.sleep(r.duration)
	if err == nil {
		err = first.wait(r, 10*time.Second)
	}
	phase.Store(phaseStop)
	we := r.end(w)
	if err != nil {
		return Sample{}, err
	}
	select {
	case err = <-loopErr:
	case <-time.After(10 * time.Second):
		err = errors.New("a transaction took more than 10 s")
	}
	if err != nil {
		return Sample{}, fmt.Errorf("transaction: %w", err)
	}
	return latencySample(lat, we, "tps", "cpu_us_per_tx"), nil
}

// firstOp lets a measurement window stay open until its first operation
// has completed. A window that closes before then measures nothing, not a
// rate: on a slow or loaded machine (the race detector, a shared CI) one
// connection or transaction can take longer than a short window, and the
// rate is then the one operation over the longer window it took.
type firstOp struct {
	once sync.Once
	ch   chan struct{}
}

func newFirstOp() *firstOp { return &firstOp{ch: make(chan struct{})} }

// done marks an operation completed inside the window, or the end of the
// loop that runs them (whose error the caller then reads).
func (f *firstOp) done() { f.once.Do(func() { close(f.ch) }) }

// wait returns once an operation has completed in the window, or an error
// after limit or when the run is cancelled.
func (f *firstOp) wait(r *runCtx, limit time.Duration) error {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-f.ch:
		return nil
	case <-t.C:
		return fmt.Errorf("no operation completed within %v of the window's end", limit)
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}

// echoBytes answers every byte read with one byte, until an error.
func echoBytes(c net.Conn) {
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil {
			return
		}
		if _, err := c.Write(b); err != nil {
			return
		}
	}
}

// latencySample turns the latencies of the operations completed in a
// window into a Sample: operations per second (named rateName), p50, p99
// and mean in microseconds, CPU per operation.
func latencySample(lat []float64, we windowEnd, rateName, cpuName string) Sample {
	rate := float64(len(lat)) / we.elapsed.Seconds()
	m := map[string]float64{
		rateName:     rate,
		"ops":        float64(len(lat)),
		"seconds":    we.elapsed.Seconds(),
		"cpu_user_s": we.cpu.user.Seconds(),
		"cpu_sys_s":  we.cpu.sys.Seconds(),
		"retrans":    float64(we.retrans),
		"link_drops": float64(we.drops),
	}
	if len(lat) > 0 {
		ps := Percentiles(lat, 50, 99)
		m["p50_us"], m["p99_us"] = ps[0], ps[1]
		sum := 0.0
		for _, v := range lat {
			sum += v
		}
		m["mean_us"] = sum / float64(len(lat))
		m[cpuName] = float64(we.cpu.total().Microseconds()) / float64(len(lat))
	}
	return Sample{Value: rate, Metrics: m}
}

// runCRR measures connect, 1-byte request, 1-byte response, close, one
// connection at a time. The peer closes first, so TIME-WAIT stays on the
// kernel peer's side for every stack.
func runCRR(r *runCtx) (Sample, error) {
	ln, err := r.env.server.Listen(r.env.family.serverAddrPort(crrPort), 128)
	if err != nil {
		return Sample{}, fmt.Errorf("listen: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				b := make([]byte, 1)
				if _, err := io.ReadFull(c, b); err != nil {
					return
				}
				if _, err := c.Write(b); err != nil {
					return
				}
				io.Copy(io.Discard, c) // until the peer's FIN
			}()
		}
	}()
	defer func() {
		ln.Close()
		waitTimeout(&wg, 10*time.Second)
	}()

	var phase atomic.Int32
	first := newFirstOp()
	lat := make([]float64, 0, 1<<18)
	var failures atomic.Int64
	loopErr := make(chan error, 1)
	go func() {
		defer first.done() // a loop that ended reports its error at once
		// The sockets are made in the peer's namespace ahead of need
		// (nsDialer) and connected from this goroutine, which is not
		// locked to a thread: a loop locked to a thread in the namespace
		// made the runtime hand its P off at every blocking call
		// (connect, read) and wake that one thread again when the call
		// could go on, a cost of the benchmark's namespaces and not of a
		// client, which on a loaded machine added about 60 us (tunstack)
		// to 90 us (gVisor) to relay-crr's median connection.
		nd := newNSDialer(r.env.peer)
		defer nd.close()
		loopErr <- func() error {
			b := []byte{'q'}
			for phase.Load() != phaseStop {
				t0 := time.Now()
				in := phase.Load() == phaseMeasure
				if err := crrOnce(r.ctx, nd, r.env.family, b); err != nil {
					if r.ctx.Err() != nil {
						return r.ctx.Err()
					}
					if failures.Add(1) > 100 {
						return fmt.Errorf("more than 100 failed connections, the last: %w", err)
					}
					continue
				}
				if in && phase.Load() == phaseMeasure {
					lat = append(lat, float64(time.Since(t0).Nanoseconds())/1e3)
					first.done()
				}
			}
			return nil
		}()
	}()
	if err := r.sleep(r.warmup); err != nil {
		return Sample{}, err
	}
	w := r.begin()
	phase.Store(phaseMeasure)
	err = r.sleep(r.duration)
	if err == nil {
		err = first.wait(r, 15*time.Second)
	}
	phase.Store(phaseStop)
	we := r.end(w)
	if err != nil {
		return Sample{}, err
	}
	select {
	case err = <-loopErr:
	case <-time.After(15 * time.Second):
		err = errors.New("a connection took more than 15 s")
	}
	if err != nil {
		return Sample{}, err
	}
	s := latencySample(lat, we, "cps", "cpu_us_per_conn")
	s.Metrics["failed"] = float64(failures.Load())
	return s, nil
}

// crrOnce is one connect-request-response-close from nd's namespace.
func crrOnce(ctx context.Context, nd *nsDialer, fam family, b []byte) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := nd.dial(dctx, fam.network(), fam.serverAddrPort(crrPort))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	return nil
}
