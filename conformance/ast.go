// Package conformance runs packetdrill scripts against a TCP stack. The
// parser accepts the format packetdrill defines; the runner is independent of
// the stack under test, which it reaches through the Target interface.
package conformance

import "time"

// Script is a parsed packetdrill script.
type Script struct {
	Path    string   // file the script came from
	Options []Option // leading --name=value lines, in order
	Events  []*Event
}

// Option is one --name[=value] line.
type Option struct {
	Line  int
	Name  string // without the leading dashes
	Value string // "" when no "=" was written
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
	// Unsupported names a packet kind the runner cannot build or check
	// (icmp, udp); the runner reports the line as an error.
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

// Syscall is `[...end] name(args) = result [ERRNO (text)]`.
type Syscall struct {
	// EndTime is the end of a blocking call ("...0.300"), in the same base
	// as the event's start time; HasEnd says it was written.
	EndTime time.Duration
	HasEnd  bool
	Name    string
	Args    []Expr
	Result  Expr
	Errno   string // "" when none written
	Note    string // the parenthesised text after the errno
}

// ExprKind classifies a syscall argument expression.
type ExprKind int

const (
	ExprInt      ExprKind = iota // 42, -1, 0x10
	ExprIdent                    // SOCK_STREAM
	ExprOr                       // A|B|C (Items)
	ExprEllipsis                 // ...
	ExprString                   // "text"
	ExprList                     // [a, b] (Items)
	ExprStruct                   // {a=1, b=2} (Fields) or {1, 2} (Items)
	ExprCall                     // htons(8080) (Name, Items)
)

// Expr is a syscall argument or result.
type Expr struct {
	Kind   ExprKind
	Int    int64
	Name   string // identifier, call name, string contents
	Items  []Expr
	Fields []Field
}

// Field is name=value inside braces.
type Field struct {
	Name  string
	Value Expr
}

// Shell is a backquoted command line.
type Shell struct {
	Command string
}

// CodeBlock is a %{ ... }% block (Python over TCP_INFO in packetdrill).
type CodeBlock struct {
	Code string
}
