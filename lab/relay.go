package lab

import (
	"errors"
	"net"
	"sync"

	"tunstack/netif"
)

// relay joins two links as a wire: what one delivers is written to the
// other, both ways, until either is closed. It is the path between the
// clients' TUN and the kernel server's TUN under --stack linux, so that
// Linux sees the same kind of user-space hop as our stack and gVisor do.
type relay struct {
	wg sync.WaitGroup
}

func startRelay(a, b netif.Link) *relay {
	r := &relay{}
	r.wg.Add(2)
	go r.copy(a, b)
	go r.copy(b, a)
	return r
}

func (r *relay) copy(from, to netif.Link) {
	defer r.wg.Done()
	const batch = 64
	bufs := make([][]byte, batch)
	sizes := make([]int, batch)
	pkts := make([][]byte, 0, batch)
	for i := range bufs {
		bufs[i] = make([]byte, from.MTU())
	}
	for {
		n, err := from.ReadPackets(bufs, sizes)
		pkts = pkts[:0]
		for i := range n {
			pkts = append(pkts, bufs[i][:sizes[i]])
		}
		if len(pkts) > 0 {
			if _, werr := to.WritePackets(pkts); werr != nil && errors.Is(werr, net.ErrClosed) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// wait returns once both directions have stopped (both links closed).
func (r *relay) wait() { r.wg.Wait() }
