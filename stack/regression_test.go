package stack

import (
	"io"
	"testing"
	"time"

	"tunstack/policy"
)

// TestActiveOpenAdvertisesRealWindow checks that after the handshake the
// passive side's view of the dialer's window is no larger than the dialer's
// receive buffer. (Regression: the dialer's SYN once set RCV.ADV from
// RCV.NXT before IRS was known, so for about half of the ISNs its first ACK
// advertised 65535<<wscale bytes.)
func TestActiveOpenAdvertisesRealWindow(t *testing.T) {
	p := newPair(t, 0, 7)
	rcvBuf := policy.Linux().RcvBuf
	for i := range 8 {
		_, s := p.connect(t, 6000+i)
		if w := s.Info().SndWndBytes; w > rcvBuf {
			t.Errorf("conn %d: acceptor sees the dialer's window as %d bytes, more than its %d-byte receive buffer", i, w, rcvBuf)
		}
	}
}

// TestSegmentsFitTheMTU sends data both ways at once over a lossy pipe, so
// that data segments also carry SACK blocks, and checks that the link never
// refused a packet as larger than its MTU. (Regression: data segments that
// carried SACK blocks once exceeded the MTU; RFC 6691 counts options
// against the MSS.)
func TestSegmentsFitTheMTU(t *testing.T) {
	p := newPair(t, 0.05, 11)
	c, s := p.connect(t, 7)
	const size = 256 << 10
	go io.Copy(s, s) // echo
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, size))
		errc <- err
	}()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, size)); err != nil {
		t.Errorf("echo: %v", err)
	}
	if err := <-errc; err != nil {
		t.Errorf("write: %v", err)
	}
	for name, st := range map[string]IPStats{"dialer": p.a.IPStats(), "acceptor": p.b.IPStats()} {
		if st.LinkWriteErrors > 0 {
			t.Errorf("%s: the link refused %d packets (larger than the %d-byte MTU)", name, st.LinkWriteErrors, testMTU)
		}
	}
}

// TestFastRecoveryKeepsWorking sends 16 MiB over a 5%-loss pipe and checks
// that fast recovery still runs in the second half of the transfer.
// (Regression: D-SACKs of duplicates the network made once raised
// DupThresh for good, after which every loss waited for an RTO.)
func TestFastRecoveryKeepsWorking(t *testing.T) {
	p := newPair(t, 0.05, 42)
	c, s := p.connect(t, 5000)
	go io.Copy(io.Discard, c)
	const total, chunk = 16 << 20, 32 << 10
	buf := make([]byte, chunk)
	var mid uint64
	for sent := 0; sent < total; sent += chunk {
		if sent == total/2 {
			mid = s.Info().Counters.FastRecoveries
		}
		if _, err := s.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	end := s.Info().Counters
	if end.FastRecoveries == mid {
		t.Errorf("no fast recovery in the second 8 MiB (still %d) while %d duplicate ACKs arrived and %d RTOs fired: %+v",
			mid, end.DupAcksIn, end.Timeouts, end)
	}
}
