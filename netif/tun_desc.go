package netif

import (
	"fmt"

	"golang.org/x/sys/unix"

	"tunstack/wire"
)

// The TUN's descriptor reads (DescReader). With offload, each readv(2)
// lands the virtio header in readHdr and the packet straight in the
// caller's arena, where it stays: a TSO packet is handed over whole with
// GSOTCPv4 or GSOTCPv6 and its segment size, not gathered into readBig
// and cut, and a TCP packet whose checksum the kernel left partial is
// handed over as CsumPartial, not completed. Without offload a read is one
// plain packet.

// descState is the state of one ReadDescs call, guarded by readMu.
type descState struct {
	arena []byte
	off   int // arena bytes used
	pkts  [][]byte
	descs []Desc
}

// DescRoom implements DescReader: with offload one read may bring the
// largest TSO packet (and one byte more, which tells one that was cut
// short); without, an MTU.
func (t *TUN) DescRoom() int {
	if t.offload {
		return gsoMaxRead + 1
	}
	return t.mtuBytes
}

// ReadDescs implements DescReader. A TUN is read through either
// ReadPackets or ReadDescs, not both: segments ReadPackets still holds
// from a cut TSO packet are not handed out here.
func (t *TUN) ReadDescs(arena []byte, pkts [][]byte, descs []Desc) (int, error) {
	room := t.DescRoom()
	if len(arena) < room {
		return 0, fmt.Errorf("%w (%d < %d)", ErrArenaTooSmall, len(arena), room)
	}
	if len(pkts) == 0 || len(descs) == 0 {
		return 0, nil
	}
	t.readMu.Lock()
	defer t.readMu.Unlock()
	t.desc = descState{arena: arena, pkts: pkts, descs: descs}
	n, err := t.read(t.descFn)
	t.desc = descState{} // do not keep the caller's arena reachable
	return n, err
}

// readDescBatch is ReadDescs' RawConn callback.
func (t *TUN) readDescBatch(fd uintptr) bool {
	d := &t.desc
	room := t.DescRoom()
	for t.readN < len(d.pkts) && t.readN < len(d.descs) && len(d.arena)-d.off >= room {
		// buf holds the largest TSO packet: readOne reads it whole, with
		// nothing past it in readBig.
		buf := d.arena[d.off : d.off+room]
		n, err := t.readOne(fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return t.endsBatch()
		case err != nil:
			t.readErr = err
			return true
		}
		desc := Desc{}
		if t.offload {
			var ok bool
			if n, desc, ok = t.finishDesc(buf, n); !ok {
				t.gsoDrops.Add(1)
				continue
			}
		}
		d.pkts[t.readN] = buf[:n:n]
		d.descs[t.readN] = desc
		d.off += n
		t.readN++
		if t.readWaited {
			return true // endsBatch
		}
	}
	return true
}

// finishDesc takes a read of n bytes, virtio header included, of a packet
// now at the start of buf, and returns its length and descriptor; ok is
// false for a read that yields nothing usable.
func (t *TUN) finishDesc(buf []byte, n int) (int, Desc, bool) {
	if n < vnetHdrLen || n-vnetHdrLen > gsoMaxRead {
		return 0, Desc{}, false // no header, or cut short
	}
	n -= vnetHdrLen
	p := buf[:n]
	h := parseVnetHdr(t.readHdr[:])
	var d Desc
	if h.flags&vnetFlagDataValid != 0 {
		d.Csum = CsumVerified
	}
	switch h.gsoType &^ vnetGSOECN {
	case vnetGSONone:
		if h.flags&vnetFlagNeedsCsum != 0 {
			if h.csumOffset == tcpCsumOffset && int(h.csumStart)+wire.TCPHeaderLen <= n {
				d.Csum = CsumPartial
			} else if !finishReadPacket(h, p) {
				return 0, Desc{}, false
			}
		}
		return n, d, true
	case vnetGSOTCPv4:
		d.GSO = GSOTCPv4
		if n == 0 || p[0]>>4 != 4 {
			return 0, Desc{}, false
		}
	case vnetGSOTCPv6:
		d.GSO = GSOTCPv6
		if n == 0 || p[0]>>4 != 6 {
			return 0, Desc{}, false
		}
	default:
		return 0, Desc{}, false
	}
	// A TSO packet: the kernel asks for its checksum to be completed over
	// the whole (NEEDS_CSUM, the pseudo-header sum in the field), which
	// for a packet built on this host means there is nothing to verify.
	if h.gsoSize == 0 || h.csumOffset != tcpCsumOffset && h.flags&vnetFlagNeedsCsum != 0 {
		return 0, Desc{}, false
	}
	if h.flags&vnetFlagNeedsCsum != 0 {
		d.Csum = CsumPartial
	}
	d.GSOSize = int(h.gsoSize)
	t.gsoReads.Add(1)
	t.gsoReadSegs.Add(uint64(d.Segments(int(h.hdrLen), n)))
	return n, d, true
}
