package tcpcore

import "sort"

// The transmit record: one entry per segment in flight, in sequence order,
// with when it was last sent and what loss recovery knows of it. It is
// Linux's retransmission queue as far as recovery reads it (the sacked
// bits of tcp_skb_cb and the counters sacked_out, lost_out, retrans_out):
// RACK (rack.go) needs each segment's transmission time, and PRR (RFC
// 6937) counts segments, as Linux does, not bytes.
//
// Invariants: the records are disjoint, sorted, within [SND.UNA, SND.MAX)
// (a FIN's sequence number belongs to the record that carried it); the
// counters hold the segments and bytes whose records have the flag; a
// record is txSacked only if the SACK scoreboard covers all of it.

type txRec struct {
	start, end Seq  // sequence space, FIN included
	sentAt     Time // the latest transmission, retransmissions included
	flags      uint8
	// sendNo is the queue's count of transmissions at the latest one: it
	// orders transmissions made at one instant (sentAfter).
	sendNo uint32
}

const (
	txSacked      uint8 = 1 << iota // the peer SACKed it (Linux TCPCB_SACKED_ACKED)
	txLost                          // deemed lost (TCPCB_LOST)
	txRetrans                       // a retransmission of it is in flight (TCPCB_SACKED_RETRANS)
	txEverRetrans                   // sent more than once (TCPCB_EVER_RETRANS)
	txRelost                        // its retransmission was found lost, and it was not sent again yet
	txChunkEnd                      // it ended a GSO-sized chunk (or the queue) when first sent: it had PSH
)

// txCount counts the records with one flag.
type txCount struct{ segs, bytes int }

type txQueue struct {
	recs []txRec // live records are recs[head:]
	head int

	sacked, lost, retrans txCount

	// headTrimmed is the bytes of the oldest record that cumulative ACKs
	// in its middle took off it (trimFirst), counted back in when the
	// record goes (popFirst).
	headTrimmed int32

	// sends counts the transmissions recorded (push, stamp), modulo
	// 2^32: the next one's number.
	sends uint32
}

func (q *txQueue) len() int { return len(q.recs) - q.head }

// at returns the i-th record from the oldest.
func (q *txQueue) at(i int) *txRec { return &q.recs[q.head+i] }

// push appends a newly sent segment; flags are its first flags.
func (q *txQueue) push(start, end Seq, at Time, flags uint8) {
	if q.head > 0 && q.head == len(q.recs) {
		q.recs, q.head = q.recs[:0], 0
	} else if q.head > 0 && len(q.recs) == cap(q.recs) {
		// Reuse the room acknowledged records left at the front rather
		// than grow.
		n := copy(q.recs, q.recs[q.head:])
		q.recs, q.head = q.recs[:n], 0
	}
	q.recs = append(q.recs, txRec{start: start, end: end, sentAt: at, flags: flags, sendNo: q.sends})
	q.sends++
}

// stamp records that r was sent again at at: its time and its place in
// the order of transmissions.
func (q *txQueue) stamp(r *txRec, at Time) {
	r.sentAt, r.sendNo = at, q.sends
	q.sends++
}

// find returns the index of the first record that ends after seq (len()
// if none does).
func (q *txQueue) find(seq Seq) int {
	live := q.recs[q.head:]
	return sort.Search(len(live), func(k int) bool { return live[k].end.GT(seq) })
}

func (q *txQueue) count(f uint8) *txCount {
	switch f {
	case txSacked:
		return &q.sacked
	case txLost:
		return &q.lost
	case txRetrans:
		return &q.retrans
	}
	return nil
}

// set turns flag f on for r, keeping the counters.
func (q *txQueue) set(r *txRec, f uint8) {
	if r.flags&f != 0 {
		return
	}
	r.flags |= f
	if n := q.count(f); n != nil {
		n.segs++
		n.bytes += r.end.Sub(r.start)
	}
}

// clear turns flag f off for r, keeping the counters.
func (q *txQueue) clear(r *txRec, f uint8) {
	if r.flags&f == 0 {
		return
	}
	r.flags &^= f
	if n := q.count(f); n != nil {
		n.segs--
		n.bytes -= r.end.Sub(r.start)
	}
}

// uncount takes r out of the counters of its flags.
func (q *txQueue) uncount(r *txRec) {
	for _, f := range [...]uint8{txSacked, txLost, txRetrans} {
		if r.flags&f != 0 {
			n := q.count(f)
			n.segs--
			n.bytes -= r.end.Sub(r.start)
		}
	}
}

// popFirst drops the oldest record (cumulatively acknowledged).
func (q *txQueue) popFirst() {
	q.uncount(q.at(0))
	q.headTrimmed = 0
	q.head++
	if q.head == len(q.recs) {
		q.recs, q.head = q.recs[:0], 0
	}
}

// trimFirst moves the oldest record's start up to una, which lies inside
// it (a cumulative ACK in the middle of a segment).
func (q *txQueue) trimFirst(una Seq) {
	r := q.at(0)
	if !r.start.LT(una) {
		return
	}
	d := una.Sub(r.start)
	q.headTrimmed += int32(d)
	for _, f := range [...]uint8{txSacked, txLost, txRetrans} {
		if r.flags&f != 0 {
			q.count(f).bytes -= d
		}
	}
	r.start = una
}

// split cuts record i at seq, strictly inside it; both halves keep its
// flags, time and transmission number (Linux tcp_fragment: both halves
// keep the skb's timestamp, and sentAfter orders them by sequence).
func (q *txQueue) split(i int, seq Seq) {
	r := *q.at(i)
	for _, f := range [...]uint8{txSacked, txLost, txRetrans} {
		if r.flags&f != 0 {
			q.count(f).segs++
		}
	}
	q.recs = append(q.recs, txRec{})
	k := q.head + i
	copy(q.recs[k+2:], q.recs[k+1:])
	q.recs[k].end = seq
	q.recs[k].flags &^= txChunkEnd // the end of the chunk stays with the second half
	q.recs[k+1] = txRec{start: seq, end: r.end, sentAt: r.sentAt, flags: r.flags, sendNo: r.sendNo}
}

func (q *txQueue) reset() {
	q.recs, q.head = q.recs[:0], 0
	q.sacked, q.lost, q.retrans = txCount{}, txCount{}, txCount{}
	q.headTrimmed = 0
}

// headEverRetrans reports whether the oldest record was ever sent twice
// (with retrans_out, Linux's tcp_any_retrans_done).
func (q *txQueue) headEverRetrans() bool {
	return q.len() > 0 && q.at(0).flags&txEverRetrans != 0
}
