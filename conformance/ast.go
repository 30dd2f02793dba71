// Package conformance runs packetdrill scripts against a TCP stack. The
// parser accepts the format packetdrill defines; the runner is independent of
// the stack under test, which it reaches through the Target interface.
package conformance

import "time"

// Script is a parsed packetdrill script. Its shape is packetdrill's:
// option lines, then an optional shell command without a time (the init
// command), then one or more events, each with a time, then an optional
// shell command without a time (the cleanup command).
type Script struct {
	Path    string   // file the script came from
	Options []Option // the --name[=value] lines at the top, in order
	// Config is what the run is configured with: the defaults, then the
	// script's options, then the command line's (which win).
	Config  Config
	Init    *Shell // run before time 0; nil when the script has none
	Events  []*Event
	Cleanup *Shell // run after the last event, pass or fail; nil when none
}

// Option is one --name[=value], in a script or on the command line.
type Option struct {
	Line     int    // 0 on the command line
	Name     string // without the leading dashes
	Value    string // as packetdrill keeps it: a string's quotes removed
	HasValue bool   // "=" and a value were written
}

// TimeKind says how an event's time was written.
type TimeKind int

const (
	TimeAbsolute TimeKind = iota // 0.100
	TimeRelative                 // +0.1: relative to the previous event
	TimeAny                      // *
)

// EventTime is the when of an event.
type EventTime struct {
	Kind  TimeKind
	Start time.Duration
	// End is the upper bound of a range "a~b"; HasRange says one was written.
	// Both ends share Kind (packetdrill writes "+1~+2" or "1~2").
	End      time.Duration
	HasRange bool
}

// Event is one line of the script (some actions span lines).
type Event struct {
	Line int
	Time EventTime
	// Exactly one of the action fields is set.
	Packet  *Packet
	Syscall *Syscall
	Shell   *Shell
	Code    *CodeBlock
}

// Direction of a packet relative to the stack under test.
type Direction int

const (
	Inbound  Direction = iota // "<": injected into the stack
	Outbound                  // ">": expected from the stack
)

// Packet is a TCP packet line.
type Packet struct {
	Dir     Direction
	IP      IPInfo // (tos 0x10), [ect0], (ttl 64) ... before the flags
	Flags   uint8  // wire flag bits (wire.FlagSYN ...)
	FlagStr string // as written, for messages
	Start   uint32 // relative sequence number of the first byte
	End     uint32
	Len     int // payload length
	HasAck  bool
	Ack     uint32
	HasWin  bool
	Win     uint16
	HasUrg  bool
	Urg     uint16
	// Options: OptionsAny is "<...>" (do not check); otherwise Opts lists the
	// options in wire order (empty when none were written).
	OptionsAny bool
	Opts       []TCPOpt
	// Unsupported names, as a plural noun, what the line holds that the
	// runner cannot build or check ("udp packets", "TCP Fast Open
	// options"); the runner fails the line with it.
	Unsupported string
}

// TCPOptKind names a TCP option in a script.
type TCPOptKind int

const (
	OptKindNOP TCPOptKind = iota
	OptKindEOL
	OptKindMSS
	OptKindWScale
	OptKindSACKOK
	OptKindSACK
	OptKindTS
)

// TCPOpt is one option as written.
type TCPOpt struct {
	Kind   TCPOptKind
	Value  uint32      // mss, wscale
	TSVal  uint32      // TS
	TSEcr  uint32      // TS
	Blocks [][2]uint32 // sack a:b
}

// Syscall is `[...end] name(args) = result [ERRNO (text)] [(note)]`.
type Syscall struct {
	// EndTime is the end of a blocking call ("...0.300"), in the same base
	// as the event's start time; HasEnd says it was written.
	EndTime time.Duration
	HasEnd  bool
	Name    string
	Args    []Expr
	Result  Expr
	Errno   string // "" when none written
	// ErrnoText is the parenthesised text an errno must be followed by
	// ("Connection refused"); Note is the optional one after that, or
	// after the result when there is no errno ("flags O_RDWR O_NONBLOCK").
	// Both are words only, as packetdrill's grammar has them.
	ErrnoText string
	Note      string
}

// ExprKind classifies a syscall argument expression.
type ExprKind int

const (
	ExprInt      ExprKind = iota // 42, -1, 0x10
	ExprIdent                    // SOCK_STREAM
	ExprOr                       // A|B|C: the binary | operator (Items; a chain is kept flat, | being associative)
	ExprEllipsis                 // ...
	ExprString                   // "text" (Name holds the bytes, escapes decoded; adjacent strings are joined)
	ExprList                     // [a, b] (Items)
	ExprStruct                   // {a=1, b=2} (Fields) or {1, 2} (Items), and the keyword forms ({fd=3, events=POLLIN}, ...)
	ExprCall                     // inet_addr("192.0.2.1"), and htons(8080) inside a sockaddr (Name, Items)
	ExprAssign                   // name=value outside braces (Name, Items[0]); inside braces it is a Field
)

// Expr is a syscall argument or result.
type Expr struct {
	Kind   ExprKind
	Int    int64
	Name   string // identifier, call name, string contents
	Items  []Expr
	Fields []Field
	// Prefix marks a string written "text"...: text is a prefix of the
	// value, not all of it.
	Prefix bool
}

// Field is name=value inside braces.
type Field struct {
	Name  string
	Value Expr
}

// Shell is a backquoted command line, run with /bin/sh -c.
type Shell struct {
	Command string // as written between the backquotes
	Line    int
}

// CodeBlock is a %{ ... }% block (Python over TCP_INFO in packetdrill).
type CodeBlock struct {
	Code string
}
