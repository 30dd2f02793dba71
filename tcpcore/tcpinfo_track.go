package tcpcore

// infoTrack is what a connection records only to report it in TCPInfo
// (Linux's struct tcp_info): counters Linux keeps per socket that the
// engine's own logic has no use for, the instants of the last activity,
// the episode of retransmission timeouts, and where each segment in flight
// ends, so that counts Linux reports in segments are counted in segments.
// Conn embeds it. Updating it allocates nothing once the ring of segment
// ends has grown to the connection's largest flight.
type infoTrack struct {
	establishedAt Time   // when the handshake completed; 0 before
	lastDataOut   Time   // last segment with payload sent, retransmissions included
	lastAckIn     Time   // last acceptable ACK received
	segsOutAtEst  uint64 // ConnCounters.SegsOut and SegsIn when the handshake completed
	segsInAtEst   uint64

	dataSegsIn  uint64 // segments received with payload
	dataSegsOut uint64 // segments sent with payload, retransmissions included
	bytesSent   uint64 // payload bytes sent, retransmissions included
	delivered   uint64 // segments cumulatively acknowledged (SYN and FIN included)
	// The counters only retransmissions, D-SACKs, reordering and
	// out-of-order data move, and the episodes of retransmission
	// timeouts, are in rareState (Conn.rare).

	sent segEnds
	// ackedSentAt is when the newest segment the last ACK of new data
	// acknowledged in full was first sent (Linux's last_ackt); 0 when it
	// acknowledged none in full.
	ackedSentAt Time
}

// segEnds is a ring of the segments in flight, in sending order: one entry
// per new segment (SYN and FIN included), its end sequence number and when
// it was first sent, the oldest dropped as the cumulative ACK passes it. A
// retransmission reuses the boundaries of what it resends. It grows by
// doubling and never shrinks.
//
// Its first ring is first, inside the connection: the handshake sends one
// segment of sequence space, the SYN (or SYN-ACK), and an idle connection
// never sends another, so it holds no ring of its own; the first data
// moves the ring to the heap. (The connection is never copied, so the
// ring may point into it.)
type segEnds struct {
	ring    []segEnd
	head, n int32 // a ring holds at most a window's segments
	first   [1]segEnd
}

type segEnd struct {
	end    Seq
	sentAt Time
}

func (r *segEnds) push(end Seq, at Time) {
	if int(r.n) == len(r.ring) {
		if len(r.ring) == 0 {
			r.ring = r.first[:]
		} else {
			grown := make([]segEnd, max(2*len(r.ring), 16))
			for i := 0; i < int(r.n); i++ {
				grown[i] = r.ring[(int(r.head)+i)%len(r.ring)]
			}
			r.ring, r.head = grown, 0
		}
	}
	r.ring[(int(r.head)+int(r.n))%len(r.ring)] = segEnd{end, at}
	r.n++
}

func (r *segEnds) at(i int) Seq { return r.ring[(int(r.head)+i)%len(r.ring)].end }

// ackTo drops the segments that end at or below una and returns how many,
// and when the last of them was sent (0 if none).
func (r *segEnds) ackTo(una Seq) (k int, lastSentAt Time) {
	for r.n > 0 && r.ring[r.head].end.LE(una) {
		lastSentAt = r.ring[r.head].sentAt
		r.head = int32((int(r.head) + 1) % len(r.ring))
		r.n--
		k++
	}
	return k, lastSentAt
}

func (r *segEnds) reset() { r.head, r.n = 0, 0 }

// noteSent records a segment of new sequence space ending at end, sent now.
func (c *Conn) noteSent(now Time, end Seq) { c.sent.push(end, now) }

// noteAcked moves the record of segments in flight up to SND.UNA, counting
// the segments delivered (Linux tp->delivered, which counts the SYN too),
// and notes when the newest of them was sent.
func (c *Conn) noteAcked() {
	k, at := c.sent.ackTo(c.sndUna)
	c.delivered += uint64(k)
	c.ackedSentAt = at
}

// noteEmitted counts segs segments that carry n bytes of payload in all
// (Linux tcp_transmit_skb: data_segs_out, bytes_sent, and lsndtime
// through tcp_event_data_sent).
func (c *Conn) noteEmitted(now Time, segs, n int) {
	if n > 0 {
		c.dataSegsOut += uint64(segs)
		c.bytesSent += uint64(n)
		c.lastDataOut = now
	}
}

// noteRTO books a retransmission timeout that retransmits (Linux
// tcp_update_rto_stats): the first since the timeout count was last reset
// starts an episode.
func (c *Conn) noteRTO(now Time) {
	r := c.rareW()
	if c.retries == 0 {
		r.totalRTORecoveries++
		r.rtoEpisodeAt = now
	}
	r.totalRTO++
}

// endRTOEpisode closes the episode when the timeout count resets: an ACK
// of new data, or the handshake's completion.
func (c *Conn) endRTOEpisode(now Time) {
	if r := c.rare; r != nil && r.rtoEpisodeAt != 0 {
		r.totalRTOTime += now.Sub(r.rtoEpisodeAt)
		r.rtoEpisodeAt = 0
	}
}

// noteEstablished sets the activity instants a new connection starts with:
// Linux sets lsndtime, lrcvtime and rcv_tstamp when the handshake
// completes (tcp_finish_connect, tcp_create_openreq_child).
func (c *Conn) noteEstablished(now Time) {
	c.establishedAt = now
	c.segsOutAtEst, c.segsInAtEst = c.info.SegsOut, c.info.SegsIn
	c.lastDataOut, c.lastAckIn = now, now
	c.endRTOEpisode(now)
}

// countDSACKDups counts the segments a D-SACK block reports received twice,
// as Linux's tcp_dsack_seen does: a block longer than the largest window
// the peer offered is dubious and ignored; otherwise its length in MSS-sized
// segments, at least one.
func (c *Conn) countDSACKDups(b seqRange) {
	n := b.end.Sub(b.start)
	if n <= 0 || n > c.maxSndWnd {
		return
	}
	c.rareW().dsackDups += uint64(max((n+c.sndMSS-1)/max(c.sndMSS, 1), 1))
}
