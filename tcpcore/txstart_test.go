package tcpcore

import (
	"testing"
	"time"

	"tunstack/congestion"
)

// txStartRecorder passes everything to the connection's controller and
// records the transmission starts it is told of.
type txStartRecorder struct {
	congestion.Controller
	calls [][2]time.Duration // now, last send
}

func (r *txStartRecorder) OnTxStart(now, lastSend time.Duration) {
	r.calls = append(r.calls, [2]time.Duration{now, lastSend})
}

// Linux behaviour: tcp_event_data_sent raises CA_EVENT_TX_START for a data
// segment sent with nothing in flight, with lsndtime still the previous
// send; a segment sent behind one still outstanding does not.
func TestTxStartWhenNothingInFlight(t *testing.T) {
	p := newPeer(t, nil)
	c, iss := p.listenAndAcceptWith(plainSyn, SockOpts{Congestion: "cubic"})
	r := &txStartRecorder{Controller: c.ccw()}
	c.cc = r
	p.advance(100 * time.Millisecond)
	first := p.now
	c.Write(p.now, make([]byte, 2*1460))
	p.expect(fA, iss+1, peerISN+1)
	p.expect(fPA, iss+1+1460, peerISN+1)
	if len(r.calls) != 1 || r.calls[0][0] != time.Duration(first) {
		t.Fatalf("transmission starts %v, want one at %v", r.calls, time.Duration(first))
	}
	p.advance(100 * time.Millisecond)
	p.send(tseg{flags: fA, seq: peerISN + 1, ack: iss + 1 + 2920, wnd: 65535})
	p.advance(200 * time.Millisecond)
	c.Write(p.now, make([]byte, 1460))
	p.expect(fPA, iss+1+2920, peerISN+1)
	if len(r.calls) != 2 || r.calls[1] != [2]time.Duration{time.Duration(p.now), time.Duration(first)} {
		t.Fatalf("transmission starts %v, want a second at %v after the send at %v", r.calls, time.Duration(p.now), time.Duration(first))
	}
}
