package netif

import "time"

// bottleneck is a rate-limited link with a FIFO in front of it, kept on a
// virtual clock rather than by holding packets: a packet that arrives at
// now starts transmitting when the link is free (max(now, freeAt)) and has
// left, fully serialized, len·8/rate later. The packets still counted in the
// queue are those whose departure lies in the future, including the one
// being transmitted; an arrival that finds capPackets of them is dropped
// (tail drop), as a router's drop-tail FIFO would. Since departures are
// computed on arrival, the scheduler only has to release each packet at its
// departure time plus the delay line's, and no packet waits in two places.
type bottleneck struct {
	rateBitsPerSec uint64
	freeAt         time.Time   // when the last accepted packet has left
	departs        []time.Time // ring of queued packets' departure times, oldest first; len = capacity
	head, n        int
}

func newBottleneck(rateBitsPerSec uint64, capPackets int) *bottleneck {
	return &bottleneck{rateBitsPerSec: rateBitsPerSec, departs: make([]time.Time, capPackets)}
}

// serialization is how long sizeBytes take on the wire, rounded down to the
// nanosecond (an error below 1 ns per packet).
func (b *bottleneck) serialization(sizeBytes int) time.Duration {
	return time.Duration(uint64(sizeBytes) * 8 * uint64(time.Second) / b.rateBitsPerSec)
}

// admit offers a packet of sizeBytes at now. It returns the packet's
// departure time and the queue depth including it, or ok false when the
// queue is full and the packet is dropped.
func (b *bottleneck) admit(now time.Time, sizeBytes int) (depart time.Time, depthPackets int, ok bool) {
	for b.n > 0 && !b.departs[b.head].After(now) {
		b.head = (b.head + 1) % len(b.departs)
		b.n--
	}
	if b.n == len(b.departs) {
		return time.Time{}, b.n, false
	}
	start := now
	if b.freeAt.After(now) {
		start = b.freeAt
	}
	depart = start.Add(b.serialization(sizeBytes))
	b.freeAt = depart
	b.departs[(b.head+b.n)%len(b.departs)] = depart
	b.n++
	return depart, b.n, true
}
