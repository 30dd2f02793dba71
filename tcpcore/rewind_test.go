package tcpcore

import (
	"bytes"
	"testing"
	"time"
)

// TestReceiveRingRewindsWhenEmptied: once the application has read all
// there was, the next data is written from the start of the receive
// buffer (rcvRewind: memory the cache still holds), and reads back as
// sent; while data waits out of order beyond a hole, an emptied ring
// keeps its head, whose offset places that data, and the bytes read
// after the hole fills are still the bytes sent, in order.
func TestReceiveRingRewindsWhenEmptied(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	stream := make([]byte, 40000)
	for i := range stream {
		stream[i] = byte(i*13 + i/256)
	}
	send := func(off, n int) {
		t.Helper()
		p.send(tseg{flags: fA, seq: peerISN + 1 + Seq(off), ack: iss + 1, wnd: 65535, payload: stream[off : off+n]})
		p.advance(time.Millisecond)
		p.out = nil
	}
	readAll := func(want []byte) {
		t.Helper()
		got := make([]byte, len(stream))
		n, err := c.Read(p.now, got)
		if err != nil || !bytes.Equal(got[:n], want) {
			t.Fatalf("Read %d bytes (%v), want the %d sent in order", n, err, len(want))
		}
	}

	for off := 0; off < 6000; off += 1000 {
		send(off, 1000)
	}
	readAll(stream[:6000])
	if c.rcvBuf.head != 0 {
		t.Fatalf("after everything was read the head is at %d, want 0", c.rcvBuf.head)
	}
	send(6000, 1000)
	if a, _ := c.rcvBuf.spans(0, 1000); &a[0] != &c.rcvBuf.buf[0] {
		t.Fatal("data after an emptied ring was not written at the buffer's start")
	}
	readAll(stream[6000:7000])

	// A hole: 8000-9000 waits out of order while 7000-8000 is read.
	send(7000, 1000)
	send(8000+1000, 1000)
	readAll(stream[7000:8000])
	if c.oooEmpty() {
		t.Fatal("nothing parked out of order: the step tests nothing")
	}
	send(8000, 1000)
	readAll(stream[8000:10000])
}
