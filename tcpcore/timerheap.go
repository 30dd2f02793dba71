package tcpcore

// timerHeap orders connections by their earliest deadline, so the engine
// reports one deadline however many connections it has. A connection is in
// the heap while it has any timer armed; heapIdx tracks its position.
type timerHeap []*Conn

func (h timerHeap) less(i, j int) bool { return h[i].deadline < h[j].deadline }

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = int32(i)
	h[j].heapIdx = int32(j)
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.swap(i, m)
		i = m
	}
}

// schedule puts c at its current deadline: inserts, moves or removes it.
func (h *timerHeap) schedule(c *Conn) {
	switch {
	case c.deadline == noDeadline && c.heapIdx >= 0:
		h.remove(c)
	case c.deadline == noDeadline:
	case c.heapIdx < 0:
		c.heapIdx = int32(len(*h))
		*h = append(*h, c)
		h.up(int(c.heapIdx))
	default:
		h.up(int(c.heapIdx))
		h.down(int(c.heapIdx))
	}
}

func (h *timerHeap) remove(c *Conn) {
	i := int(c.heapIdx)
	if i < 0 {
		return
	}
	last := len(*h) - 1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	c.heapIdx = -1
	if i != last {
		h.up(i)
		h.down(i)
	}
}
