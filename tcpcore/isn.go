package tcpcore

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
)

// isnGen computes initial sequence numbers per RFC 6528 §3:
// ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M
// is a timer ticking every 4 µs and F a keyed hash (SHA-256 here).
type isnGen struct {
	secret [32]byte
	// fixed, when set, replaces the generator (tests that need a chosen
	// ISN, such as one just below 2^32 to cross the wrap-around).
	fixed *Seq
}

func (g *isnGen) hash(local, remote netip.AddrPort, salt byte) uint32 {
	var b [32 + 16 + 16 + 4 + 1]byte
	copy(b[:32], g.secret[:])
	la, ra := local.Addr().As16(), remote.Addr().As16()
	copy(b[32:], la[:])
	copy(b[48:], ra[:])
	binary.BigEndian.PutUint16(b[64:], local.Port())
	binary.BigEndian.PutUint16(b[66:], remote.Port())
	b[68] = salt
	sum := sha256.Sum256(b[:])
	return binary.BigEndian.Uint32(sum[:4])
}

// isn is RFC 6528 §3's ISN for the connection at time now.
func (g *isnGen) isn(now Time, local, remote netip.AddrPort) Seq {
	if g.fixed != nil {
		return *g.fixed
	}
	m := uint32(int64(now) / 4000) // RFC 6528 §3: M, a 4-microsecond timer
	return Seq(m + g.hash(local, remote, 0))
}

// tsOffset is a per-connection random offset for the timestamp clock, so
// TSval does not reveal uptime (as Linux does since 4.10).
func (g *isnGen) tsOffset(local, remote netip.AddrPort) uint32 {
	return g.hash(local, remote, 1)
}

// portOffset seeds the ephemeral port cursor.
func (g *isnGen) portOffset() uint32 {
	return g.hash(netip.AddrPort{}, netip.AddrPort{}, 2)
}
