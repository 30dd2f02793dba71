// Package stack runs a TCP engine on a link with the real clock and offers
// it to Go programs as net.Listener and net.Conn.
package stack

import (
	"context"
	"net"
)

// Network is what every stack in this project offers a Go program: ours
// (stack.Stack) and gVisor's (gvisorstack.Stack) alike, so the demo site,
// labs and benchmarks run unchanged on either.
type Network interface {
	// Listen opens a TCP listener on address ("198.18.0.2:80",
	// "[fd00::2]:80", "[::]:80", ":80") with the given backlog.
	Listen(address string, backlog int) (net.Listener, error)
	// Dial opens a TCP connection; network is "tcp", "tcp4" or "tcp6".
	Dial(ctx context.Context, network, address string) (net.Conn, error)
	// Close stops the stack: connections are aborted, listeners closed.
	Close() error
}
