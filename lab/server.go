package lab

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The server is the side under test: our stack, gVisor, or the Linux
// kernel, each listening on 198.18.0.2. The experiments drive all three
// through these small interfaces, so the same code makes the same calls at
// the same moments whatever is underneath.

// server is one stack under test, set up on its side of the wire.
type server interface {
	// listen opens a listener on port with the given backlog, as listen(2).
	listen(port uint16, backlog int) (listener, error)
	// counters returns the stack's listen-queue counters, under the names
	// nstat uses where there is one.
	counters() []Counter
}

// listener is a listening socket. accept takes one connection off the
// accept queue, waiting at most timeout; it is the only thing that does.
type listener interface {
	accept(timeout time.Duration) (serverConn, error)
	// queue is what `ss -lnt` would show for the listener.
	queue() Queue
	close() error
}

// serverConn is an accepted connection.
type serverConn interface {
	remotePort() uint16
	// read waits at most timeout for data, EOF or an error.
	read(p []byte, timeout time.Duration) (int, error)
	// write writes all of p, waiting at most timeout for room in the send
	// buffer; it returns how much was written.
	write(p []byte, timeout time.Duration) (int, error)
	// setNoDelay turns Nagle's algorithm off (true) or on (TCP_NODELAY).
	setNoDelay(on bool) error
	close() error
}

// errTimeout is what accept and read return when nothing came in time.
var errTimeout = errors.New("timed out")

// Queue is a listener's queues: AcceptQueue is ss's Recv-Q, Backlog its
// Send-Q. SynQueue is -1 where the stack does not expose it.
type Queue struct {
	AcceptQueue int
	Backlog     int
	SynQueue    int
}

func (q Queue) String() string {
	s := fmt.Sprintf("Recv-Q %d, Send-Q %d", q.AcceptQueue, q.Backlog)
	if q.SynQueue >= 0 {
		s += fmt.Sprintf(", SYN queue %d", q.SynQueue)
	}
	return s
}

// Counter is one named counter of a stack.
type Counter struct {
	Name  string
	Value uint64
}

// formatCounters writes the non-zero counters on one line.
func formatCounters(cs []Counter) string {
	var parts []string
	for _, c := range cs {
		if c.Value != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c.Name, c.Value))
		}
	}
	if len(parts) == 0 {
		return "all zero"
	}
	return strings.Join(parts, ", ")
}

// counterValue finds a counter by name (0 if absent).
func counterValue(cs []Counter, name string) uint64 {
	for _, c := range cs {
		if c.Name == name {
			return c.Value
		}
	}
	return 0
}
