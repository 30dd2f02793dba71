package stack

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"tunstack/lab/netns"
	"tunstack/netif"
)

// writerWatch is an offload TUN that notes, for every batch the stack
// writes, the largest chunk in it (in segments) and whether the stack's
// bulk writer (flushLoop) wrote it.
type writerWatch struct {
	*netif.TUN
	mu      sync.Mutex
	batches []watchedBatch
}

type watchedBatch struct {
	segs      int  // the largest packet's segments
	byFlusher bool // written from flushLoop's goroutine
}

func (w *writerWatch) WriteDescs(pkts [][]byte, descs []netif.Desc) (int, error) {
	segs := 0
	for i, p := range pkts {
		s, _ := descs[i].Unpacked(p)
		segs = max(segs, s)
	}
	buf := make([]byte, 64<<10)
	trace := string(buf[:runtime.Stack(buf, false)])
	w.mu.Lock()
	w.batches = append(w.batches, watchedBatch{segs, strings.Contains(trace, "stack.(*Stack).flushLoop")})
	w.mu.Unlock()
	return w.TUN.WriteDescs(pkts, descs)
}

// take returns the batches noted since the last call.
func (w *writerWatch) take() []watchedBatch {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.batches
	w.batches = nil
	return b
}

// TestBulkBatchesAreWrittenByTheBulkWriter runs the stack on an offload
// TUN in a namespace of its own, with a kernel client. A bulk download
// (8 MiB the stack sends) leaves in GSO packets of at least
// handOffSegments segments, and every batch holding one is written by the
// stack's bulk writer (flushLoop), not by the goroutine that made it
// (the application's Write, or the link reader taking in an ACK), which
// goes back to its work; every byte arrives in order. Then 200 one-byte
// request/response exchanges are written by the goroutines that made
// them: none reaches the bulk writer.
func TestBulkBatchesAreWrittenByTheBulkWriter(t *testing.T) {
	netns.RequireRoot(t)
	ns, err := netns.New("flush")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	var tun *netif.TUN
	if err := ns.Do(func() (err error) {
		tun, err = netif.OpenTUN(netif.TUNConfig{Name: "flush0", Offload: true, MTU: 1500,
			HostAddr: netip.MustParsePrefix("198.18.0.1/24")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !tun.Offload() {
		tun.Close()
		t.Fatal("the kernel refused IFF_VNET_HDR: this test needs offload")
	}
	w := &writerWatch{TUN: tun}
	s, err := New(w, Config{Addr: netip.MustParseAddr("198.18.0.2")})
	if err != nil {
		tun.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ln, err := s.Listen("198.18.0.2:5001", 8)
	if err != nil {
		t.Fatal(err)
	}
	const size = 8 << 20
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*131 + i>>12)
	}
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		if _, err := c.Write(want); err != nil {
			served <- err
			return
		}
		// Then echo one byte at a time until the client closes.
		b := make([]byte, 1)
		for {
			if _, err := io.ReadFull(c, b); err != nil {
				served <- nil
				return
			}
			if _, err := c.Write(b); err != nil {
				served <- err
				return
			}
		}
	}()
	var conn net.Conn
	if err := ns.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", "198.18.0.2:5001", 10*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute)) // fail rather than hang

	got := make([]byte, size)
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("reading the download: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the download differs from what the stack sent")
	}
	bulkBatches := 0
	for _, b := range w.take() {
		if b.segs >= handOffSegments {
			bulkBatches++
			if !b.byFlusher {
				t.Fatalf("a batch holding a chunk of %d segments was written by the goroutine that made it, not the bulk writer", b.segs)
			}
		}
	}
	if bulkBatches == 0 {
		t.Fatalf("no batch held a chunk of %d segments or more: the download did not reach the bulk writer", handOffSegments)
	}

	b := []byte{0}
	for i := range 200 {
		b[0] = byte(i)
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, b); err != nil || b[0] != byte(i) {
			t.Fatalf("exchange %d: read %v, %v", i, b, err)
		}
	}
	conn.Close()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	small := w.take()
	if len(small) < 200 {
		t.Fatalf("the exchanges wrote %d batches, want one at least per reply", len(small))
	}
	for _, b := range small {
		if b.byFlusher {
			t.Fatalf("the bulk writer wrote a batch of the one-byte exchanges (largest chunk %d segments)", b.segs)
		}
	}
	t.Logf("download: %d batches with a chunk of %d+ segments, all by the bulk writer; exchanges: %d batches, none by it", bulkBatches, handOffSegments, len(small))
}
