package tcpcore

import (
	"testing"
)

// The tests of this file each check one rule where the engine does what
// Linux does, named after the rule.

// Linux behaviour: a SYN with FIN set reaching a listener is dropped
// without a SYN-ACK or an RST; a plain SYN afterwards opens normally.
func TestSynFinToListenerDropped(t *testing.T) {
	p := newPeer(t, nil)
	l, err := p.e.Listen(p.now, local, 16, SockOpts{})
	if err != nil {
		t.Fatal(err)
	}
	p.send(tseg{flags: fS | fF, seq: peerISN, wnd: 65535, opts: plainSyn})
	p.expectNone()
	if p.e.ConnCount() != 0 || l.Stats().SynQueue != 0 {
		t.Fatalf("SYN+FIN left %d connections, SYN queue %d; want none", p.e.ConnCount(), l.Stats().SynQueue)
	}
	p.send(tseg{flags: fS, seq: peerISN, wnd: 65535, opts: plainSyn})
	if sa := p.next(); sa.flags != fSA || sa.ack != peerISN+1 {
		t.Fatalf("plain SYN answered with %v, want a SYN-ACK of %d", sa, peerISN+1)
	}
}
