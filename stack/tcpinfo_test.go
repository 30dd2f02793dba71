package stack

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"tunstack/tcpcore"
)

// TCPInfo reads the engine's struct tcp_info under the stack's lock, at
// the stack's clock; the user timeout goes to the engine and back.
func TestConnTCPInfoAndUserTimeout(t *testing.T) {
	p := newPair(t, 0, 1)
	c, s := p.connect(t, 80)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	// The answer carries the ACK of "ping": once it is read, c has it.
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	ti := c.TCPInfo()
	if ti.State != 1 || ti.BytesAcked != 5 || ti.BytesReceived != 4 || ti.BytesSent != 4 || ti.DataSegsIn != 1 {
		t.Fatalf("client: state %d bytes_acked %d bytes_received %d bytes_sent %d data_segs_in %d",
			ti.State, ti.BytesAcked, ti.BytesReceived, ti.BytesSent, ti.DataSegsIn)
	}
	if ti.Options&tcpcore.TCPIOptTimestamps == 0 || ti.SndMSS == 0 || ti.RTT == 0 || len(ti.Bytes()) != tcpcore.TCPInfoSize {
		t.Fatalf("client: options %#x snd_mss %d rtt %d", ti.Options, ti.SndMSS, ti.RTT)
	}
	if si := s.TCPInfo(); si.BytesReceived != 4 || si.BytesSent != 4 || si.DataSegsOut != 1 {
		t.Fatalf("server: bytes_received %d bytes_sent %d data_segs_out %d", si.BytesReceived, si.BytesSent, si.DataSegsOut)
	}

	if err := c.SetUserTimeout(1500 * time.Millisecond); err != nil || c.UserTimeout() != 1500*time.Millisecond {
		t.Fatalf("SetUserTimeout: %v, now %v", err, c.UserTimeout())
	}
	if err := c.SetUserTimeout(-time.Second); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("negative user timeout: %v, want EINVAL", err)
	}
	c.Close()
	if err := c.SetUserTimeout(time.Second); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Close: %v, want net.ErrClosed", err)
	}
}
