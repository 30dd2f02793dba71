package tcpcore

// Seq is a TCP sequence number. Compare only through its methods: they do
// the modulo-2^32 arithmetic of RFC 9293 §3.4, so a connection whose numbers
// wrap past 2^32 behaves like any other.
type Seq uint32

// Add returns s advanced by n bytes.
func (s Seq) Add(n int) Seq { return s + Seq(uint32(n)) }

// Sub returns the signed distance s - t.
func (s Seq) Sub(t Seq) int { return int(int32(uint32(s) - uint32(t))) }

// LT reports s < t in sequence space.
func (s Seq) LT(t Seq) bool { return int32(uint32(s)-uint32(t)) < 0 }

// LE reports s <= t in sequence space.
func (s Seq) LE(t Seq) bool { return int32(uint32(s)-uint32(t)) <= 0 }

// GT reports s > t in sequence space.
func (s Seq) GT(t Seq) bool { return int32(uint32(s)-uint32(t)) > 0 }

// GE reports s >= t in sequence space.
func (s Seq) GE(t Seq) bool { return int32(uint32(s)-uint32(t)) >= 0 }

// InWindow reports lo <= s < lo+size.
func (s Seq) InWindow(lo Seq, size int) bool {
	return uint32(s)-uint32(lo) < uint32(size)
}

// MaxSeq returns the later of a and b.
func MaxSeq(a, b Seq) Seq {
	if a.GT(b) {
		return a
	}
	return b
}

// MinSeq returns the earlier of a and b.
func MinSeq(a, b Seq) Seq {
	if a.LT(b) {
		return a
	}
	return b
}
