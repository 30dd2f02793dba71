package demo

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// ServeEcho answers every connection accepted on ln with the bytes it
// sends, until it closes (RFC 862). Like the other Serve functions, it
// returns nil once ln is closed, after closing the connections it still has
// and waiting for their goroutines, and any other Accept error as it is.
func ServeEcho(ln net.Listener) error {
	return serve(ln, func(c net.Conn) {
		// RFC 862: "Once a connection is established any data received is sent back."
		_, _ = io.Copy(c, c)
	})
}

// ServeDiscard reads and throws away everything sent on each connection
// accepted on ln (RFC 863).
func ServeDiscard(ln net.Listener) error {
	return serve(ln, func(c net.Conn) {
		// RFC 863: "Any data received is thrown away. No response is sent."
		_, _ = io.Copy(io.Discard, c)
	})
}

// ServeChargen sends the RFC 864 character pattern on each connection
// accepted on ln until the client closes it, and ignores what it receives.
func ServeChargen(ln net.Listener) error {
	return serve(ln, func(c net.Conn) {
		// RFC 864: "Any data received is thrown away" — read it so the
		// client's sends never stall, and stop writing once it is gone.
		go func() {
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}()
		for {
			if _, err := c.Write(chargenCycle); err != nil {
				return
			}
		}
	})
}

// Chargen line shape, RFC 864's "one popular pattern": 72 characters taken
// from the 95 printable ASCII characters (' ' to '~'), each line starting
// one character later than the one before, then CR LF.
const (
	chargenFirst     = ' '
	chargenPrintable = 95
	chargenLineChars = 72
)

// chargenCycle is the full period of the pattern: 95 lines of 74 bytes.
var chargenCycle = func() []byte {
	b := make([]byte, 0, chargenPrintable*(chargenLineChars+2))
	for line := range chargenPrintable {
		b = append(b, ChargenLine(line)...)
	}
	return b
}()

// ChargenLine is line k (from 0) of the chargen pattern, CR LF included.
func ChargenLine(k int) []byte {
	b := make([]byte, 0, chargenLineChars+2)
	for i := range chargenLineChars {
		b = append(b, byte(chargenFirst+(k+i)%chargenPrintable))
	}
	return append(b, '\r', '\n')
}

// serve runs handle for each accepted connection in its own goroutine and
// closes the connection when handle returns.
func serve(ln net.Listener, handle func(net.Conn)) error {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	defer func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Running out of descriptors or memory passes; back off as
			// net/http does rather than give up the service.
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			handle(c)
		})
	}
}
