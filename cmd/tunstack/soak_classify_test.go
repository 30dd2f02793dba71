package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// ss -tniH state all src ADDR's lines for one socket: the state and the
// queues, then tcp_info with lastrcv in milliseconds.
func TestParseClientSocket(t *testing.T) {
	out := "ESTAB 4096 0 198.18.0.1:40000 198.18.0.2:80\n\t cubic wscale:7,7 rto:204 rtt:1.2/0.5 mss:1448 lastsnd:61000 lastrcv:59012 lastack:59012\n"
	got, ok := parseClientSocket(out)
	want := clientSocket{State: "ESTAB", RecvQ: 4096, SendQ: 0, LastRcv: 59012 * time.Millisecond}
	if !ok || got != want {
		t.Fatalf("got %+v, %v; want %+v", got, ok, want)
	}
	if _, ok := parseClientSocket(""); ok {
		t.Fatal("no socket read as one")
	}
	got, ok = parseClientSocket("CLOSE-WAIT 0 12 198.18.0.1:40000 198.18.0.2:80\n")
	if want := (clientSocket{State: "CLOSE-WAIT", SendQ: 12, LastRcv: -1}); !ok || got != want {
		t.Fatalf("got %+v, %v; want %+v", got, ok, want)
	}
}

func TestClassifyFailure(t *testing.T) {
	timeout := fmt.Errorf("read tcp4 198.18.0.1:40000->198.18.0.2:80: %w", os.ErrDeadlineExceeded)
	unread := clientSocket{State: "ESTAB", RecvQ: 1000, LastRcv: 50 * time.Second}
	cases := []struct {
		name        string
		err         error
		open, req   time.Duration
		sock        clientSocket
		ok          bool
		wantClass   string
		wantInCause string
	}{
		{"deadline with bytes unread for long", timeout, time.Minute, time.Minute, unread, true, "download: " + failStarved, "Recv-Q 1000"},
		{"deadline with bytes that just arrived", timeout, time.Minute, time.Minute, clientSocket{State: "ESTAB", RecvQ: 1000, LastRcv: 10 * time.Millisecond}, true, "download: " + failStall, "Recv-Q 1000"},
		{"deadline with nothing unread", timeout, time.Minute, time.Minute, clientSocket{State: "ESTAB", LastRcv: 60 * time.Second}, true, "download: " + failStall, "Recv-Q 0"},
		{"deadline, socket not found", timeout, time.Minute, time.Minute, clientSocket{}, false, "download: " + failStall, "gone"},
		{"EOF at serve's header timeout", io.ErrUnexpectedEOF, 31 * time.Second, time.Second, clientSocket{State: "CLOSE-WAIT"}, true, "download: " + failHeaderClose, "31s after the connection opened"},
		{"EOF before it", io.ErrUnexpectedEOF, 5 * time.Second, time.Second, clientSocket{State: "CLOSE-WAIT"}, true, "download", "unexpected EOF"},
		{"a reset", errors.New("connection reset by peer"), time.Minute, time.Minute, unread, true, "download", "reset"},
	}
	for _, c := range cases {
		class, cause := classifyFailure("download", c.err, c.open, c.req, c.sock, c.ok)
		if class != c.wantClass || !strings.Contains(cause.Error(), c.wantInCause) || !errors.Is(cause, c.err) {
			t.Errorf("%s: %q, %v; want %q with %q, wrapping %v", c.name, class, cause, c.wantClass, c.wantInCause, c.err)
		}
	}
}
