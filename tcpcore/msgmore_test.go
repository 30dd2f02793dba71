package tcpcore

import (
	"testing"
	"time"
)

// Linux behaviour (send(2) MSG_MORE): the partial segment a MSG_MORE write
// leaves is held; the next write without MSG_MORE sends everything queued
// as one segment.
func TestWriteMoreHoldsTailUntilNextWrite(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	if n, err := c.WriteMore(p.now, []byte("head-")); n != 5 || err != nil {
		t.Fatalf("WriteMore = %d, %v", n, err)
	}
	p.expectNone()
	c.Write(p.now, []byte("tail"))
	s := p.expect(fPA, iss+1, peerISN+1)
	if string(s.payload) != "head-tail" {
		t.Fatalf("sent %q, want the coalesced \"head-tail\"", s.payload)
	}
	p.expectNone()
}

// Full segments of a MSG_MORE write go at once; only the partial tail
// waits, and (as under TCP_CORK) for at most CorkLimit.
func TestWriteMoreSendsFullSegmentsAndBoundsTheHold(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	mss := c.MSS()
	c.WriteMore(p.now, make([]byte, mss+10))
	s := p.expect(fA, iss+1, peerISN+1)
	if len(s.payload) != mss {
		t.Fatalf("first segment %d bytes, want a full %d", len(s.payload), mss)
	}
	p.expectNone()
	start := p.now
	p.advance(time.Second)
	s = p.expect(fPA, iss.Add(1+mss), peerISN+1)
	if len(s.payload) != 10 || s.at.Sub(start) != p.e.prof.CorkLimit {
		t.Fatalf("tail of %d bytes after %v, want 10 after %v", len(s.payload), s.at.Sub(start), p.e.prof.CorkLimit)
	}
}

// MSG_MORE holds only the write it is on: an ACK that arrives while the
// tail waits lets it go under the usual rules (Nagle: nothing small is
// unacknowledged).
func TestWriteMoreIsNotASocketState(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAccept(plainSyn)
	c.Write(p.now, []byte("x"))
	p.expect(fPA, iss+1, peerISN+1)
	c.WriteMore(p.now, []byte("yz"))
	p.expectNone() // Nagle and MSG_MORE both hold it
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 2, wnd: 65535})
	s := p.expect(fPA, iss+2, peerISN+1)
	if string(s.payload) != "yz" {
		t.Fatalf("sent %q after the ACK, want \"yz\"", s.payload)
	}
}
