package conformance

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"tunstack/policy"
	"tunstack/wire"
)

// Target is a TCP stack under test, as the runner sees it. Times are the
// target's own clock (real or virtual), counted from when the target was
// created. The runner calls a Target from one goroutine; only the channels
// returned by Syscall are read concurrently.
type Target interface {
	// Name is the stack's name ("linux", "tunstack", "gvisor").
	Name() string

	// Now is the current time on the target's clock.
	Now() time.Duration

	// Inject hands the stack one IPv4 or IPv6 packet (header, TCP segment, payload,
	// checksums filled in) as if it had arrived from the network.
	Inject(pkt []byte) error

	// Outbound returns the next IPv4 or IPv6 packet the stack has sent and the time
	// it was sent, waiting until the target clock reaches deadline. When the
	// deadline passes first it returns ok == false. This is also how time
	// moves: a virtual-time target advances its clock to the earlier of the
	// deadline and the moment the stack sends something, running the stack's
	// timers on the way; a real-time target sleeps. The slice is the
	// caller's to keep.
	Outbound(deadline time.Duration) (pkt []byte, at time.Duration, ok bool, err error)

	// Syscall starts a system call and returns a channel that delivers its
	// result exactly once. A call may stay blocked while the runner injects
	// later packets and advances time (accept before the handshake, a read
	// before the data); a virtual-time target completes it during a later
	// Inject or Outbound. Descriptors in the call are the script's numbers;
	// the target maps them to its own.
	Syscall(call *Call) <-chan CallResult

	// Shell runs a script's shell line with dir as the working directory.
	// A target that has no system to run it in returns ErrNoShell; the
	// runner has already applied the line's sysctls to the profile it
	// created the target with.
	Shell(command, dir string) error

	// Close releases everything the target holds (sockets, devices,
	// namespaces). Calls still blocked return.
	Close() error
}

// A Target whose clock is the wall clock may also implement
//
//	RealTime() bool
//
// returning true; the runner then waits for system calls by blocking on
// their channel instead of stepping time in small slices (its packets keep
// their times meanwhile).

// inboundTCP is pkt, handed to Inject, as an IPv4 or IPv6 packet; it
// must carry TCP, the only protocol the in-process targets take.
func inboundTCP(pkt []byte) (ipHdr, wire.TCP, error) {
	ip, t, ok := ipTCP(pkt)
	if !ok {
		return ipHdr{}, nil, fmt.Errorf("inject: not an IPv4 or IPv6 packet carrying a TCP segment")
	}
	return ip, t, nil
}

// ErrNoShell is returned by targets that do not run shell lines.
var ErrNoShell = errors.New("target does not run shell commands")

// ErrNotAvailable reports a target that cannot run here (not root, no TUN).
// The runner reports SKIP with the message.
var ErrNotAvailable = errors.New("target not available")

// Call is one system call line, as written, for a target to run.
type Call struct {
	Name string
	Args []Expr
	// WantFD is the descriptor the script expects socket or accept to
	// return (-1 otherwise); the target uses it as the script's name for
	// the new socket.
	WantFD int
	Line   int
}

// CallResult is what a system call returned.
type CallResult struct {
	Ret   int64
	Errno string // Linux name ("ECONNREFUSED"); "" on success
	// OutInt holds, by argument index, the integer an output pointer
	// argument received (getsockopt's [value]).
	OutInt map[int]int64
	// Revents holds poll's revents, one per entry of its array.
	Revents []int16
	// Out holds the other outputs (epoll_wait's events, recvmsg's
	// msg_flags).
	Out CallOut
	// At is the target time when the call returned.
	At time.Duration
	// Err means the target could not run the call at all (unsupported
	// call or argument); the runner fails the line with it.
	Err error
}

// TargetConfig is what a target is created with.
type TargetConfig struct {
	Profile  *policy.Profile // the --profile plus the script's sysctls
	LocalIP  netip.Addr      // the stack's address on the wire (192.168.0.1, or IPv6)
	RemoteIP netip.Addr      // the scripted peer on the wire (192.0.2.1, or IPv6)
	// LocalPrefixLen and RemotePrefix are the local address's network
	// and the one routed to the peer (the linux target's TUN has them).
	LocalPrefixLen int
	RemotePrefix   netip.Prefix
	// BindIP and ConnectIP are what bind(..., ...) and connect(..., ...)
	// name, in sockets of AF_INET6 when SocketFamily6 (a socket() whose
	// domain is "..."): the wire addresses, or for ipv4-mapped-ipv6 the
	// IPv4 ones mapped into IPv6.
	BindIP, ConnectIP netip.Addr
	SocketFamily6     bool
	BindPort          uint16 // bind(..., ...) uses this port
	ConnectPort       uint16 // connect(..., ...) goes to ConnectIP:ConnectPort
	MTU               int    // link MTU (1500)
	ScriptDir         string // for shell lines
	// NoTSO makes the target hand the runner one packet per segment. By
	// default a target hands it what packetdrill's TUN, which offers TSO,
	// carries: each TSO packet whole, a burst's segments merged behind one
	// header (burst.go says how the in-process targets decide).
	NoTSO bool
}

// TargetFactory creates a target for one script run.
type TargetFactory func(cfg TargetConfig) (Target, error)

var targets = map[string]TargetFactory{}

// RegisterTarget makes a stack available to the runner under name.
func RegisterTarget(name string, f TargetFactory) { targets[name] = f }

// TargetNames lists the registered targets.
func TargetNames() []string {
	var n []string
	for k := range targets {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// LookupTarget returns the factory for name, or an error that says the stack
// is not available in drill yet.
func LookupTarget(name string) (TargetFactory, error) {
	f, ok := targets[name]
	if !ok {
		return nil, fmt.Errorf("drill has no stack %q; use one of %s", name, strings.Join(TargetNames(), ", "))
	}
	return f, nil
}
