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

// add records [start, end) as SACKed and returns the bytes newly covered.
func (sb *scoreboard) add(start, end Seq) int {
	if !start.LT(end) {
		return 0
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
				return 0 // lower than everything we keep: forget it
			}
			// Drop the lowest block to make room.
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
	return added
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

// sackedIn counts SACKed bytes within [a, b).
func (sb *scoreboard) sackedIn(a, b Seq) int {
	n := 0
	i := sort.Search(len(sb.blocks), func(k int) bool { return sb.blocks[k].end.GT(a) })
	for ; i < len(sb.blocks) && sb.blocks[i].start.LT(b); i++ {
		n += MinSeq(b, sb.blocks[i].end).Sub(MaxSeq(a, sb.blocks[i].start))
	}
	return n
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
