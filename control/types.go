// Package control is the control socket of a running tunstack serve: a
// Unix socket, one per TUN device (SocketPath), on which tools such as
// `tunstack ss` ask the running stack for a snapshot of its sockets.
//
// The protocol is JSON lines: the client writes one Request per line, the
// server answers each with one Response line, in order, on the same
// connection. Every message carries the protocol Version. A server answers
// a request of a version it does not speak, or one it cannot parse, with a
// Response whose Error says so, and closes the connection; a client that
// sends nothing for RequestTimeout is disconnected. A later version adds
// operations and fields; a field a client does not know is ignored, so
// only a change in the meaning of an existing one needs a new Version.
package control

import (
	"fmt"
	"net/netip"
	"time"

	"tunstack/stack"
	"tunstack/tcpcore"
)

// Version is the protocol version this package speaks.
const Version = 1

// The operations of Version 1.
const (
	// OpSockets asks for every TCP socket of the stack (Response.Sockets).
	OpSockets = "sockets"
)

// Request is one line from the client.
type Request struct {
	Version int    `json:"version"`
	Op      string `json:"op"`
}

// Response is the server's answer to one Request.
type Response struct {
	Version int `json:"version"`
	// Error, when set, says why the request failed, in a sentence for a
	// person; nothing else is set then.
	Error string `json:"error,omitempty"`
	// Stack names the stack that answered: "tunstack" or "gvisor".
	Stack string `json:"stack,omitempty"`
	// Sockets answers OpSockets.
	Sockets []Socket `json:"sockets,omitempty"`
}

// Socket is stack.SocketInfo on the wire.
type Socket struct {
	// State is the RFC 9293 state as tcpcore.State names it
	// ("ESTABLISHED", "LISTEN", ...).
	State      string         `json:"state"`
	Local      netip.AddrPort `json:"local"`
	Remote     netip.AddrPort `json:"remote"`
	RecvQ      int            `json:"recv_q"`
	SendQ      int            `json:"send_q"`
	SynQueue   int            `json:"syn_queue,omitempty"`
	Congestion string         `json:"congestion,omitempty"`
	// TCPInfo is Linux's struct tcp_info field by field, in its units
	// (tcpcore.TCPInfo); absent where the socket has none.
	TCPInfo *tcpcore.TCPInfo `json:"tcp_info,omitempty"`
	// Timer is the pending timer as ss names it ("on", "persist",
	// "keepalive", "timewait", "off"), TimerLeftNS the nanoseconds until
	// it fires.
	Timer       string `json:"timer,omitempty"`
	TimerLeftNS int64  `json:"timer_left_ns,omitempty"`
	ShutRead    bool   `json:"shut_read,omitempty"`
	ShutWrite   bool   `json:"shut_write,omitempty"`
	// Unknown lists the fields the stack could not report, by the names
	// in unknownNames.
	Unknown []string `json:"unknown,omitempty"`
}

// unknownNames name the stack.Unknown bits on the wire.
var unknownNames = []struct {
	bit  stack.Unknown
	name string
}{
	{stack.UnknownRecvQ, "recv_q"},
	{stack.UnknownSendQ, "send_q"},
	{stack.UnknownSynQueue, "syn_queue"},
	{stack.UnknownTimer, "timer"},
	{stack.UnknownShutdown, "shutdown"},
	{stack.UnknownReordering, "reordering"},
}

// FromStack converts a snapshot for the wire.
func FromStack(si stack.SocketInfo) Socket {
	s := Socket{
		State: si.State.String(), Local: si.Local, Remote: si.Remote,
		RecvQ: si.RecvQ, SendQ: si.SendQ, SynQueue: si.SynQueue,
		Congestion: si.Congestion, TCPInfo: si.TCPInfo,
		ShutRead: si.ShutRead, ShutWrite: si.ShutWrite,
	}
	if si.Timer != tcpcore.TimerOff {
		s.Timer, s.TimerLeftNS = si.Timer.String(), int64(si.TimerLeft)
	}
	for _, u := range unknownNames {
		if si.Unknown&u.bit != 0 {
			s.Unknown = append(s.Unknown, u.name)
		}
	}
	return s
}

// ToStack converts a socket from the wire back. Names it does not know
// (a state, a timer) are an error; unknown-field names it does not know
// are ignored, as a later version may add some.
func (s Socket) ToStack() (stack.SocketInfo, error) {
	si := stack.SocketInfo{
		Local: s.Local, Remote: s.Remote,
		RecvQ: s.RecvQ, SendQ: s.SendQ, SynQueue: s.SynQueue,
		Congestion: s.Congestion, TCPInfo: s.TCPInfo,
		TimerLeft: time.Duration(s.TimerLeftNS),
		ShutRead:  s.ShutRead, ShutWrite: s.ShutWrite,
	}
	st, ok := parseState(s.State)
	if !ok {
		return si, fmt.Errorf("control: unknown socket state %q", s.State)
	}
	si.State = st
	if s.Timer != "" {
		t, ok := parseTimer(s.Timer)
		if !ok {
			return si, fmt.Errorf("control: unknown timer %q", s.Timer)
		}
		si.Timer = t
	}
	for _, name := range s.Unknown {
		for _, u := range unknownNames {
			if u.name == name {
				si.Unknown |= u.bit
			}
		}
	}
	return si, nil
}

func parseState(name string) (tcpcore.State, bool) {
	for st := tcpcore.Closed; st <= tcpcore.TimeWait; st++ {
		if st.String() == name {
			return st, true
		}
	}
	return 0, false
}

func parseTimer(name string) (tcpcore.DiagTimer, bool) {
	for t := tcpcore.TimerOff; t <= tcpcore.TimerPersist; t++ {
		if t.String() == name {
			return t, true
		}
	}
	return 0, false
}
