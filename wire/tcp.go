package wire

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// TCP header flags (RFC 9293 §3.1, RFC 3168 for ECE/CWR).
const (
	FlagFIN uint8 = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

// TCPHeaderLen is the length of a TCP header without options.
const TCPHeaderLen = 20

// TCPMaxOptionLen is the most option space a header can carry.
const TCPMaxOptionLen = 40

// TCP option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018).
const (
	OptEOL           = 0
	OptNOP           = 1
	OptMSS           = 2
	OptWindowScale   = 3
	OptSACKPermitted = 4
	OptSACK          = 5
	OptTimestamps    = 8
)

// TCP is a view over a TCP segment (header, options, payload).
type TCP []byte

// ErrBadTCPHeader reports a segment too short for its data offset.
var ErrBadTCPHeader = errors.New("wire: bad TCP header")

// Valid checks that the data offset is sane for the slice.
func (t TCP) Valid() error {
	if len(t) < TCPHeaderLen {
		return ErrBadTCPHeader
	}
	off := t.DataOffset()
	if off < TCPHeaderLen || off > len(t) {
		return ErrBadTCPHeader
	}
	return nil
}

func (t TCP) SrcPort() uint16      { return binary.BigEndian.Uint16(t[0:]) }
func (t TCP) DstPort() uint16      { return binary.BigEndian.Uint16(t[2:]) }
func (t TCP) Seq() uint32          { return binary.BigEndian.Uint32(t[4:]) }
func (t TCP) Ack() uint32          { return binary.BigEndian.Uint32(t[8:]) }
func (t TCP) DataOffset() int      { return int(t[12]>>4) * 4 }
func (t TCP) Flags() uint8         { return t[13] }
func (t TCP) Window() uint16       { return binary.BigEndian.Uint16(t[14:]) }
func (t TCP) Checksum() uint16     { return binary.BigEndian.Uint16(t[16:]) }
func (t TCP) Urgent() uint16       { return binary.BigEndian.Uint16(t[18:]) }
func (t TCP) Options() []byte      { return t[TCPHeaderLen:t.DataOffset()] }
func (t TCP) Payload() []byte      { return t[t.DataOffset():] }
func (t TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(t[16:], v) }

// ChecksumValid verifies the segment checksum with the IPv4 pseudo-header.
func (t TCP) ChecksumValid(src, dst [4]byte) bool {
	return Fold(Checksum(t, PseudoHeaderSum(src, dst, ProtoTCP, len(t)))) == 0
}

// ComputeChecksum fills in the checksum field for the IPv4 pseudo-header.
func (t TCP) ComputeChecksum(src, dst [4]byte) {
	t[16], t[17] = 0, 0
	t.SetChecksum(Fold(Checksum(t, PseudoHeaderSum(src, dst, ProtoTCP, len(t)))))
}

// ChecksumValid6 verifies the segment checksum with the IPv6
// pseudo-header (RFC 8200 §8.1).
func (t TCP) ChecksumValid6(src, dst [16]byte) bool {
	return t.ChecksumValidSum(PseudoHeaderSum6(src, dst, ProtoTCP, len(t)))
}

// ComputeChecksum6 fills in the checksum field for the IPv6 pseudo-header
// (RFC 8200 §8.1).
func (t TCP) ComputeChecksum6(src, dst [16]byte) {
	t.ComputeChecksumSum(PseudoHeaderSum6(src, dst, ProtoTCP, len(t)))
}

// ChecksumValidAddr verifies the segment checksum with the pseudo-header
// of the addresses' family (PseudoHeaderSumAddr).
func (t TCP) ChecksumValidAddr(src, dst netip.Addr) bool {
	return t.ChecksumValidSum(PseudoHeaderSumAddr(src, dst, ProtoTCP, len(t)))
}

// ComputeChecksumAddr fills in the checksum field for the pseudo-header of
// the addresses' family (PseudoHeaderSumAddr).
func (t TCP) ComputeChecksumAddr(src, dst netip.Addr) {
	t.ComputeChecksumSum(PseudoHeaderSumAddr(src, dst, ProtoTCP, len(t)))
}

// ChecksumValidSum verifies the segment checksum given its pseudo-header's
// contribution (PseudoHeaderSum, PseudoHeaderSum6, IPUpper.PseudoHeaderSum).
func (t TCP) ChecksumValidSum(pseudo uint32) bool {
	return Fold(Checksum(t, pseudo)) == 0
}

// ComputeChecksumSum fills in the checksum field given the pseudo-header's
// contribution.
func (t TCP) ComputeChecksumSum(pseudo uint32) {
	t[16], t[17] = 0, 0
	t.SetChecksum(Fold(Checksum(t, pseudo)))
}

// TCPFields are the fixed-header values PutTCPHeader writes.
type TCPFields struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16
	Urgent           uint16
}

// PutTCPHeader writes the fixed header into b[:20] with a data offset that
// covers optLen bytes of options (a multiple of 4). The checksum is zeroed.
func PutTCPHeader(b []byte, f TCPFields, optLen int) {
	_ = b[TCPHeaderLen-1]
	binary.BigEndian.PutUint16(b[0:], f.SrcPort)
	binary.BigEndian.PutUint16(b[2:], f.DstPort)
	binary.BigEndian.PutUint32(b[4:], f.Seq)
	binary.BigEndian.PutUint32(b[8:], f.Ack)
	b[12] = uint8((TCPHeaderLen+optLen)/4) << 4
	b[13] = f.Flags
	binary.BigEndian.PutUint16(b[14:], f.Window)
	b[16], b[17] = 0, 0
	binary.BigEndian.PutUint16(b[18:], f.Urgent)
}

// SACKBlock is one SACK block: [Left, Right) in sequence space (RFC 2018 §3).
type SACKBlock struct{ Left, Right uint32 }

// MaxSACKBlocks is the most blocks that fit in the option space.
const MaxSACKBlocks = 4

// TCPOptions is the decoded form of the options this stack understands.
// Unknown options are skipped, as RFC 9293 §3.2 requires.
type TCPOptions struct {
	MSS           uint16
	HasMSS        bool
	WScale        uint8
	HasWScale     bool
	SACKPermitted bool
	HasTS         bool
	TSVal, TSEcr  uint32
	NumSACK       int
	SACK          [MaxSACKBlocks]SACKBlock
}

// ErrBadOption reports an option whose length field is impossible.
var ErrBadOption = errors.New("wire: malformed TCP option")

// TCPOption is one option as it appears on the wire: its kind and the
// bytes after its kind and length octets (none for EOL and NOP, which are a
// single octet).
type TCPOption struct {
	Kind uint8
	Data []byte
}

// Len is the option's size on the wire, the value of its length octet (1
// for EOL and NOP).
func (o TCPOption) Len() int {
	if o.Kind == OptEOL || o.Kind == OptNOP {
		return 1
	}
	return 2 + len(o.Data)
}

// WellFormed reports whether the option has the length its kind defines:
// MSS 4, window scale 3, SACK-permitted 2, timestamps 10, SACK 2 plus 8 per
// block (RFC 9293 §3.2, RFC 7323 §2.2 and §3.2, RFC 2018 §2 and §3). An
// option of any other kind is well formed whatever its length. The value
// accessors below read a well-formed option of their kind.
func (o TCPOption) WellFormed() bool {
	switch o.Kind {
	case OptMSS:
		return len(o.Data) == 2
	case OptWindowScale:
		return len(o.Data) == 1
	case OptSACKPermitted:
		return len(o.Data) == 0
	case OptTimestamps:
		return len(o.Data) == 8
	case OptSACK:
		return len(o.Data)%8 == 0
	}
	return true
}

// MSS is an MSS option's value.
func (o TCPOption) MSS() uint16 { return binary.BigEndian.Uint16(o.Data) }

// WindowScale is a window scale option's shift count.
func (o TCPOption) WindowScale() uint8 { return o.Data[0] }

// Timestamps are a timestamps option's TSval and TSecr.
func (o TCPOption) Timestamps() (val, ecr uint32) {
	return binary.BigEndian.Uint32(o.Data), binary.BigEndian.Uint32(o.Data[4:])
}

// NumSACKBlocks is the number of blocks a SACK option carries.
func (o TCPOption) NumSACKBlocks() int { return len(o.Data) / 8 }

// SACKBlock is a SACK option's i-th block.
func (o TCPOption) SACKBlock(i int) SACKBlock {
	b := o.Data[8*i:]
	return SACKBlock{binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])}
}

// MSSOption is an MSS option (RFC 9293 §3.7.1).
func MSSOption(mss uint16) TCPOption {
	return TCPOption{Kind: OptMSS, Data: binary.BigEndian.AppendUint16(nil, mss)}
}

// WindowScaleOption is a window scale option (RFC 7323 §2).
func WindowScaleOption(shift uint8) TCPOption {
	return TCPOption{Kind: OptWindowScale, Data: []byte{shift}}
}

// SACKPermittedOption is a SACK-permitted option (RFC 2018 §2).
func SACKPermittedOption() TCPOption { return TCPOption{Kind: OptSACKPermitted} }

// TimestampsOption is a timestamps option (RFC 7323 §3).
func TimestampsOption(val, ecr uint32) TCPOption {
	d := binary.BigEndian.AppendUint32(make([]byte, 0, 8), val)
	return TCPOption{Kind: OptTimestamps, Data: binary.BigEndian.AppendUint32(d, ecr)}
}

// SACKOption is a SACK option carrying blocks (RFC 2018 §3).
func SACKOption(blocks ...SACKBlock) TCPOption {
	d := make([]byte, 0, 8*len(blocks))
	for _, b := range blocks {
		d = binary.BigEndian.AppendUint32(d, b.Left)
		d = binary.BigEndian.AppendUint32(d, b.Right)
	}
	return TCPOption{Kind: OptSACK, Data: d}
}

// AppendTCPOption appends o in wire form: its kind, then, for a kind other
// than EOL and NOP, its length octet and data.
func AppendTCPOption(b []byte, o TCPOption) []byte {
	if o.Kind == OptEOL || o.Kind == OptNOP {
		return append(b, o.Kind)
	}
	return append(append(b, o.Kind, byte(o.Len())), o.Data...)
}

// TCPOptionReader walks an option list in wire order, NOP and EOL included.
// It is the one place that frames options (kind, length octet, data); its
// users decide what each option means.
type TCPOptionReader struct {
	rest []byte // not yet read; at a malformed option, starts with it
}

// NewTCPOptionReader returns a reader over b, a segment's option bytes.
func NewTCPOptionReader(b []byte) TCPOptionReader { return TCPOptionReader{rest: b} }

// Next returns the next option. It returns false at the end of the list:
// after the last byte, after an EOL (what follows it is padding), or at an
// option whose length octet is missing or impossible, in which case Err
// reports it. (Small enough to be inlined: ParseTCPOptions runs on every
// segment.)
func (r *TCPOptionReader) Next() (o TCPOption, ok bool) {
	b := r.rest
	n := len(b) // an EOL consumes the rest
	if n == 0 {
		return
	}
	o.Kind = b[0]
	if o.Kind == OptNOP {
		n = 1
	} else if o.Kind != OptEOL {
		if n < 2 || b[1] < 2 || int(b[1]) > n {
			return TCPOption{}, false // r.rest stays at the bad option
		}
		n = int(b[1])
		o.Data = b[2:n]
	}
	r.rest = b[n:]
	return o, true
}

// Err is ErrBadOption when Next stopped at a malformed option, else nil.
func (r *TCPOptionReader) Err() error {
	if len(r.rest) > 0 {
		return ErrBadOption
	}
	return nil
}

// ParseTCPOptions decodes b into o (which it resets first). A known option
// with the wrong length, or a SACK option without blocks, is an error; the
// options before it are kept in o.
func ParseTCPOptions(b []byte, o *TCPOptions) error {
	*o = TCPOptions{}
	r := NewTCPOptionReader(b)
	for {
		opt, ok := r.Next()
		if !ok {
			return r.Err()
		}
		if opt.Kind == OptNOP {
			continue
		}
		if !opt.WellFormed() || opt.Kind == OptSACK && opt.NumSACKBlocks() == 0 {
			return ErrBadOption
		}
		switch opt.Kind {
		case OptMSS:
			o.MSS, o.HasMSS = opt.MSS(), true
		case OptWindowScale:
			o.WScale, o.HasWScale = opt.WindowScale(), true
		case OptSACKPermitted:
			o.SACKPermitted = true
		case OptTimestamps:
			o.HasTS = true
			o.TSVal, o.TSEcr = opt.Timestamps()
		case OptSACK:
			n := 0
			for i := 0; i < opt.NumSACKBlocks() && n < MaxSACKBlocks; i++ {
				o.SACK[n] = opt.SACKBlock(i)
				n++
			}
			o.NumSACK = n
		}
	}
}

// EncodesAs reports whether o and p encode to the same bytes
// (EncodeTCPOptions): the same options present, with the same values, and
// the same SACK blocks as far as NumSACK counts them. Comparing the structs
// whole would also compare values of absent options and unused SACK
// slots, and costs a call to the runtime's memory comparison.
func (o *TCPOptions) EncodesAs(p *TCPOptions) bool {
	if o.HasMSS != p.HasMSS || o.HasWScale != p.HasWScale || o.SACKPermitted != p.SACKPermitted ||
		o.HasTS != p.HasTS || o.NumSACK != p.NumSACK {
		return false
	}
	if o.HasMSS && o.MSS != p.MSS || o.HasWScale && o.WScale != p.WScale ||
		o.HasTS && (o.TSVal != p.TSVal || o.TSEcr != p.TSEcr) {
		return false
	}
	for i := range min(o.NumSACK, MaxSACKBlocks) {
		if o.SACK[i] != p.SACK[i] {
			return false
		}
	}
	return true
}

// EncodedLen is the option space EncodeTCPOptions uses for o, padded to a
// multiple of four.
func (o *TCPOptions) EncodedLen() int {
	n := 0
	if o.HasMSS {
		n += 4
	}
	if o.HasTS {
		n += 12 // with two NOPs or with SACK-permitted in front
	} else if o.SACKPermitted {
		n += 4
	}
	if o.HasWScale {
		n += 4
	}
	if o.NumSACK > 0 {
		n += 4 + 8*o.NumSACK
	}
	return n
}

// EncodeTCPOptions writes o into b in the order Linux uses (so captures read
// the same as a Linux host's): MSS; SACK-permitted with timestamps or NOP,
// NOP, timestamps; NOP, NOP, SACK-permitted when there are no timestamps;
// NOP, window scale; NOP, NOP, SACK blocks. It returns the bytes written.
func EncodeTCPOptions(b []byte, o *TCPOptions) int {
	n := 0
	if o.HasMSS {
		b[0], b[1] = OptMSS, 4
		binary.BigEndian.PutUint16(b[2:], o.MSS)
		n = 4
	}
	if o.HasTS {
		if o.SACKPermitted {
			b[n], b[n+1] = OptSACKPermitted, 2
		} else {
			b[n], b[n+1] = OptNOP, OptNOP
		}
		b[n+2], b[n+3] = OptTimestamps, 10
		binary.BigEndian.PutUint32(b[n+4:], o.TSVal)
		binary.BigEndian.PutUint32(b[n+8:], o.TSEcr)
		n += 12
	} else if o.SACKPermitted {
		b[n], b[n+1], b[n+2], b[n+3] = OptNOP, OptNOP, OptSACKPermitted, 2
		n += 4
	}
	if o.HasWScale {
		b[n], b[n+1], b[n+2], b[n+3] = OptNOP, OptWindowScale, 3, o.WScale
		n += 4
	}
	if o.NumSACK > 0 {
		b[n], b[n+1], b[n+2], b[n+3] = OptNOP, OptNOP, OptSACK, uint8(2+8*o.NumSACK)
		n += 4
		for i := 0; i < o.NumSACK; i++ {
			binary.BigEndian.PutUint32(b[n:], o.SACK[i].Left)
			binary.BigEndian.PutUint32(b[n+4:], o.SACK[i].Right)
			n += 8
		}
	}
	return n
}
