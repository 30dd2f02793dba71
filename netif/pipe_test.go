package netif

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"testing/synctest"
)

func numbered(i int, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, uint32(i))
	return b
}

func readBufs(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

func TestPipeDeliversPacketsInOrderInBothDirections(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	for _, dir := range []struct {
		name     string
		from, to *PipeEnd
	}{{"a to b", a, b}, {"b to a", b, a}} {
		var pkts [][]byte
		for i := range 10 {
			pkts = append(pkts, numbered(i, 20+i))
		}
		if n, err := dir.from.WritePackets(pkts); n != 10 || err != nil {
			t.Fatalf("%s: WritePackets = %d, %v", dir.name, n, err)
		}
		bufs, sizes := readBufs(16, 1500)
		n, err := dir.to.ReadPackets(bufs, sizes)
		if err != nil || n != 10 {
			t.Fatalf("%s: ReadPackets = %d, %v; want 10 packets", dir.name, n, err)
		}
		for i := range n {
			if !bytes.Equal(bufs[i][:sizes[i]], pkts[i]) {
				t.Errorf("%s: packet %d = %x, want %x", dir.name, i, bufs[i][:sizes[i]], pkts[i])
			}
		}
	}
}

func TestPipeReadReturnsOnlyAsManyPacketsAsFit(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	a.WritePackets([][]byte{numbered(0, 8), numbered(1, 8), numbered(2, 8)})
	bufs, sizes := readBufs(2, 100)
	if n, err := b.ReadPackets(bufs, sizes); n != 2 || err != nil {
		t.Fatalf("first ReadPackets = %d, %v; want 2", n, err)
	}
	if n, err := b.ReadPackets(bufs, sizes); n != 1 || err != nil || binary.BigEndian.Uint32(bufs[0]) != 2 {
		t.Fatalf("second ReadPackets = %d, %v, packet %d; want packet 2 alone", n, err, binary.BigEndian.Uint32(bufs[0]))
	}
}

func TestPipeShortReadBufferIsAnErrorAndKeepsThePacket(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	a.WritePackets([][]byte{numbered(7, 100)})
	small, sizes := readBufs(1, 50)
	if _, err := b.ReadPackets(small, sizes); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("ReadPackets into a 50-byte buffer: err = %v, want io.ErrShortBuffer", err)
	}
	big, sizes := readBufs(1, 1500)
	if n, err := b.ReadPackets(big, sizes); n != 1 || err != nil || sizes[0] != 100 {
		t.Fatalf("ReadPackets after short buffer = %d, %v, size %d; want the 100-byte packet", n, err, sizes[0])
	}
}

func TestPipeRejectsPacketLargerThanMTU(t *testing.T) {
	a, b := NewPipe(100)
	defer a.Close()
	n, err := a.WritePackets([][]byte{numbered(0, 100), numbered(1, 101)})
	if n != 1 || !errors.Is(err, ErrPacketTooBig) {
		t.Fatalf("WritePackets = %d, %v; want 1, ErrPacketTooBig", n, err)
	}
	bufs, sizes := readBufs(4, 200)
	if n, err := b.ReadPackets(bufs, sizes); n != 1 || err != nil {
		t.Fatalf("ReadPackets = %d, %v; want the one packet within MTU", n, err)
	}
}

func TestPipeOverflowDropsAndCountsWhenQueueIsFull(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	const extra = 5
	for i := range PipeQueuePackets + extra {
		if _, err := a.WritePackets([][]byte{numbered(i, 4)}); err != nil {
			t.Fatal(err)
		}
	}
	st := a.Stats()
	if st.OverflowPackets != extra || st.WrittenPackets != PipeQueuePackets+extra {
		t.Fatalf("stats = %+v; want %d overflow of %d written", st, extra, PipeQueuePackets+extra)
	}
	bufs, sizes := readBufs(PipeQueuePackets+extra, 4)
	n, _ := b.ReadPackets(bufs, sizes)
	if n != PipeQueuePackets {
		t.Fatalf("read %d packets, want the %d that fit the queue", n, PipeQueuePackets)
	}
	// The queue keeps the oldest packets: the overflow is the tail.
	if last := binary.BigEndian.Uint32(bufs[n-1]); last != PipeQueuePackets-1 {
		t.Fatalf("last packet read = %d, want %d", last, PipeQueuePackets-1)
	}
	if got := a.Stats().ReadPackets; got != PipeQueuePackets {
		t.Fatalf("ReadPackets counter = %d, want %d", got, PipeQueuePackets)
	}
}

// lossPattern writes n packets through a fresh pipe with the given loss and
// returns which ones arrived.
func lossPattern(t *testing.T, p float64, seed uint64, n int) []bool {
	t.Helper()
	a, b := NewPipe(1500)
	defer a.Close()
	a.SetLoss(p, seed)
	arrived := make([]bool, n)
	bufs, sizes := readBufs(1, 1500)
	for i := range n {
		lostBefore := a.Stats().LostPackets
		a.WritePackets([][]byte{numbered(i, 4)})
		if a.Stats().LostPackets > lostBefore {
			continue
		}
		if _, err := b.ReadPackets(bufs, sizes); err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint32(bufs[0]); got != uint32(i) {
			t.Fatalf("read packet %d, want %d", got, i)
		}
		arrived[i] = true
	}
	return arrived
}

func TestPipeLossIsDeterministicForASeed(t *testing.T) {
	const n = 2000
	first := lossPattern(t, 0.1, 42, n)
	again := lossPattern(t, 0.1, 42, n)
	other := lossPattern(t, 0.1, 43, n)
	lost, differs := 0, false
	for i := range n {
		if first[i] != again[i] {
			t.Fatalf("packet %d: seed 42 gave different decisions on two runs", i)
		}
		if first[i] != other[i] {
			differs = true
		}
		if !first[i] {
			lost++
		}
	}
	if !differs {
		t.Error("seeds 42 and 43 made identical decisions for 2000 packets")
	}
	// 10% of 2000 is 200; the binomial standard deviation is about 13.
	if lost < 140 || lost > 260 {
		t.Errorf("lost %d of %d at p=0.1, want about 200", lost, n)
	}
}

func TestPipeSetDropDropsOnlySelectedPackets(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	a.SetDrop(func(pkt []byte) bool { return binary.BigEndian.Uint32(pkt) == 2 })
	for i := range 4 {
		a.WritePackets([][]byte{numbered(i, 4)})
	}
	bufs, sizes := readBufs(8, 4)
	n, _ := b.ReadPackets(bufs, sizes)
	var got []uint32
	for i := range n {
		got = append(got, binary.BigEndian.Uint32(bufs[i]))
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 3 {
		t.Fatalf("received %v, want [0 1 3]", got)
	}
	if st := a.Stats(); st.FilteredPackets != 1 {
		t.Fatalf("FilteredPackets = %d, want 1", st.FilteredPackets)
	}
	// SetDrop only applies to the end it was set on.
	b.WritePackets([][]byte{numbered(2, 4)})
	if n, _ := a.ReadPackets(bufs, sizes); n != 1 {
		t.Fatalf("packet from b was dropped by a's filter")
	}
}

func TestPipeCloseUnblocksReadersOnBothEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPipe(1500)
		errs := make(chan error, 2)
		for _, e := range []*PipeEnd{a, b} {
			go func() {
				bufs, sizes := readBufs(1, 1500)
				_, err := e.ReadPackets(bufs, sizes)
				errs <- err
			}()
		}
		synctest.Wait() // both readers are now blocked in ReadPackets
		if len(errs) != 0 {
			t.Fatal("a reader returned before Close")
		}
		a.Close()
		for range 2 {
			if err := <-errs; !errors.Is(err, net.ErrClosed) {
				t.Errorf("blocked ReadPackets after Close = %v, want net.ErrClosed", err)
			}
		}
		if _, err := b.WritePackets([][]byte{{1}}); !errors.Is(err, net.ErrClosed) {
			t.Errorf("WritePackets after Close = %v, want net.ErrClosed", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close = %v, want nil", err)
		}
	})
}

func TestPipeConcurrentWriterAndReaderKeepOrder(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	const total = 20000
	done := make(chan error, 1)
	go func() {
		bufs, sizes := readBufs(32, 1500)
		next := uint32(0)
		for next < total {
			n, err := b.ReadPackets(bufs, sizes)
			if err != nil {
				done <- err
				return
			}
			for i := 0; i < n && next < total; i++ {
				got := binary.BigEndian.Uint32(bufs[i])
				if got < next {
					done <- fmt.Errorf("packet %d after %d: reordered", got, next-1)
					return
				}
				next = got + 1
			}
		}
		done <- nil
	}()
	batch := make([][]byte, 8)
	for i := 0; i < total; i += len(batch) {
		for j := range batch {
			batch[j] = numbered(i+j, 64)
		}
		a.WritePackets(batch)
	}
	// Overflow may drop packets from the middle, so the writer's last
	// packet is the one the reader waits for; resend it until it arrives.
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			st := a.Stats()
			if st.ReadPackets+st.OverflowPackets < total {
				t.Fatalf("stats %+v do not account for %d packets", st, total)
			}
			return
		default:
			a.WritePackets([][]byte{numbered(total-1, 64)})
		}
	}
}

func TestPipeSteadyStateDoesNotAllocate(t *testing.T) {
	a, b := NewPipe(1500)
	defer a.Close()
	pkts := [][]byte{make([]byte, 1400), make([]byte, 60)}
	bufs, sizes := readBufs(4, 1500)
	allocs := testing.AllocsPerRun(1000, func() {
		a.WritePackets(pkts)
		b.ReadPackets(bufs, sizes)
	})
	if allocs != 0 {
		t.Fatalf("write+read of two packets allocates %.1f times, want 0", allocs)
	}
}
