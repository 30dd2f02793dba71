package tcpcore

import "sort"

// scoreboard is the sender's record of what the peer SACKed (RFC 6675 §3):
// disjoint, sorted, merged ranges above SND.UNA. Its size is bounded
// (maxScoreboardBlocks) whatever blocks a peer invents, and each update is a
// binary search plus a short copy, so a hostile peer cannot make an ACK
// expensive (a SACK resource attack: thousands of distinct ranges). Reneging is
// tolerated: SACKed data stays in the send buffer until cumulatively
// acknowledged, and a retransmission timeout clears the scoreboard.
type scoreboard struct {
	blocks      []seqRange
	sackedBytes int // total bytes in blocks
}

// maxScoreboardBlocks bounds the scoreboard. A peer can describe at most
// one hole per segment in flight; past this many the oldest information
// (lowest ranges) gives way, which only makes recovery more conservative.
const maxScoreboardBlocks = 512

func (sb *scoreboard) empty() bool { return len(sb.blocks) == 0 }

func (sb *scoreboard) reset() {
	sb.blocks = sb.blocks[:0]
	sb.sackedBytes = 0
}

// add records [start, end) as SACKed and returns the bytes newly covered,
// and the range the board dropped to stay within its bound (empty when it
// dropped none).
func (sb *scoreboard) add(start, end Seq) (int, seqRange) {
	var dropped seqRange
	if !start.LT(end) {
		return 0, dropped
	}
	b := sb.blocks
	// First block whose end reaches start (could merge).
	i := sort.Search(len(b), func(k int) bool { return b[k].end.GE(start) })
	j := i
	covered := 0
	for j < len(b) && b[j].start.LE(end) {
		covered += b[j].end.Sub(b[j].start)
		j++
	}
	nr := seqRange{start, end}
	if i < j {
		nr.start = MinSeq(start, b[i].start)
		nr.end = MaxSeq(end, b[j-1].end)
	}
	added := nr.end.Sub(nr.start) - covered
	if i == j {
		if len(b) >= maxScoreboardBlocks {
			if i == 0 {
				return 0, dropped // lower than everything we keep: forget it
			}
			// Drop the lowest block to make room.
			dropped = b[0]
			sb.sackedBytes -= b[0].end.Sub(b[0].start)
			copy(b, b[1:])
			b = b[:len(b)-1]
			i--
			j--
		}
		b = append(b, seqRange{})
		copy(b[i+1:], b[i:])
		b[i] = nr
	} else {
		b[i] = nr
		b = append(b[:i+1], b[j:]...)
	}
	sb.blocks = b
	sb.sackedBytes += added
	return added, dropped
}

// span returns the block that adding [start, end) would leave it in: the
// range merged with every block it touches. ok is false when add would
// forget the range (the board is full and the range lies below all it
// keeps).
func (sb *scoreboard) span(start, end Seq) (nr seqRange, ok bool) {
	b := sb.blocks
	i := sort.Search(len(b), func(k int) bool { return b[k].end.GE(start) })
	j := i
	for j < len(b) && b[j].start.LE(end) {
		j++
	}
	nr = seqRange{start, end}
	if i < j {
		nr.start = MinSeq(start, b[i].start)
		nr.end = MaxSeq(end, b[j-1].end)
	}
	return nr, i < j || len(b) < maxScoreboardBlocks || i > 0
}

// nextGap returns the first range within [from, end) that no block covers.
func (sb *scoreboard) nextGap(from, end Seq) (gap seqRange, ok bool) {
	for from.LT(end) {
		in, e := sb.isSacked(from)
		if !in {
			return seqRange{from, sb.nextSacked(from, end)}, true
		}
		from = e
	}
	return seqRange{}, false
}

// highest returns the end of the highest block, or una when the board is
// empty.
func (sb *scoreboard) highest(una Seq) Seq {
	if len(sb.blocks) == 0 {
		return una
	}
	return sb.blocks[len(sb.blocks)-1].end
}

// trim forgets everything below una (now cumulatively acknowledged).
func (sb *scoreboard) trim(una Seq) {
	k := 0
	for k < len(sb.blocks) && sb.blocks[k].end.LE(una) {
		sb.sackedBytes -= sb.blocks[k].end.Sub(sb.blocks[k].start)
		k++
	}
	if k > 0 {
		sb.blocks = append(sb.blocks[:0], sb.blocks[k:]...)
	}
	if len(sb.blocks) > 0 && sb.blocks[0].start.LT(una) {
		sb.sackedBytes -= una.Sub(sb.blocks[0].start)
		sb.blocks[0].start = una
	}
}

// isSacked reports whether seq is SACKed, and if so where its block ends.
func (sb *scoreboard) isSacked(seq Seq) (bool, Seq) {
	i := sort.Search(len(sb.blocks), func(k int) bool { return sb.blocks[k].end.GT(seq) })
	if i < len(sb.blocks) && sb.blocks[i].start.LE(seq) {
		return true, sb.blocks[i].end
	}
	return false, 0
}

// nextSacked returns the start of the first SACKed block above seq, or
// limit if there is none before it.
func (sb *scoreboard) nextSacked(seq, limit Seq) Seq {
	i := sort.Search(len(sb.blocks), func(k int) bool { return sb.blocks[k].start.GT(seq) })
	if i < len(sb.blocks) && sb.blocks[i].start.LT(limit) {
		return sb.blocks[i].start
	}
	return limit
}

// lossBoundary is RFC 6675's IsLost as a boundary: every unSACKed byte
// below the returned sequence number has at least (dupThresh-1)*SMSS+1
// SACKed bytes above it and is deemed lost (RFC 6675 §4, IsLost). Walking
// from the highest block, this usually touches one to three blocks.
func (sb *scoreboard) lossBoundary(una Seq, dupThresh, mss int) Seq {
	need := (dupThresh-1)*mss + 1
	above := 0
	for i := len(sb.blocks) - 1; i >= 0; i-- {
		b := sb.blocks[i]
		size := b.end.Sub(b.start)
		if above+size >= need {
			// The boundary falls inside this block: bytes below
			// b.end-(need-above) have enough SACKed data above them.
			return MaxSeq(una, b.end.Add(-(need - above)))
		}
		above += size
	}
	return una
}
