package tcpcore

// reassembly tracks out-of-order data that arrived beyond RCV.NXT. The bytes
// themselves are already in the receive ring at their offset (the ring spans
// the whole window); reassembly only remembers which ranges are filled, as
// sorted, disjoint, non-adjacent [start, end) blocks. Overlapping and
// duplicate arrivals merge, so whatever a peer sends the list stays short
// and bounded by the profile's OOOMaxSegments. A FIN held beyond a gap
// occupies its sequence number in the list too (so SACK reports it) but no
// byte of the ring (receiveFin).
type reassembly struct {
	blocks []seqRange
	// recent is the index of the block most recently changed, the first
	// SACK block to report (RFC 2018 §4).
	recent int
}

type seqRange struct{ start, end Seq }

func (r *reassembly) empty() bool { return len(r.blocks) == 0 }

func (r *reassembly) reset() { r.blocks, r.recent = r.blocks[:0], 0 }

// add records [start, end); it returns false when the block list is full and
// the range would need a new block (the caller drops the segment).
func (r *reassembly) add(start, end Seq, limit int) bool {
	i := 0
	for i < len(r.blocks) && r.blocks[i].end.LT(start) {
		i++
	}
	// blocks[i] is the first that ends at or after start: it may touch.
	j := i
	for j < len(r.blocks) && r.blocks[j].start.LE(end) {
		j++
	}
	if i == j {
		if len(r.blocks) >= limit {
			return false
		}
		r.blocks = append(r.blocks, seqRange{})
		copy(r.blocks[i+1:], r.blocks[i:])
		r.blocks[i] = seqRange{start, end}
		r.recent = i
		return true
	}
	// Merge blocks i..j-1 with the new range.
	merged := seqRange{MinSeq(start, r.blocks[i].start), MaxSeq(end, r.blocks[j-1].end)}
	r.blocks[i] = merged
	r.blocks = append(r.blocks[:i+1], r.blocks[j:]...)
	r.recent = i
	return true
}

// advance is called when RCV.NXT moved to nxt: it removes blocks now below
// nxt and returns the new RCV.NXT after any block that starts at or before
// it (the gap has filled).
func (r *reassembly) advance(nxt Seq) Seq {
	k := 0
	for k < len(r.blocks) && r.blocks[k].start.LE(nxt) {
		nxt = MaxSeq(nxt, r.blocks[k].end)
		k++
	}
	if k > 0 {
		r.blocks = append(r.blocks[:0], r.blocks[k:]...)
		r.recent = 0
	}
	return nxt
}

// highest returns the end of the last block (the highest byte held + 1).
func (r *reassembly) highest() (Seq, bool) {
	if len(r.blocks) == 0 {
		return 0, false
	}
	return r.blocks[len(r.blocks)-1].end, true
}

// contains reports whether [start, end) is entirely held already.
func (r *reassembly) contains(start, end Seq) bool {
	for _, b := range r.blocks {
		if b.start.LE(start) && end.LE(b.end) {
			return true
		}
	}
	return false
}
