package tcpcore

import "net/netip"

// HasConn reports whether the engine has a connection on the 4-tuple
// local, remote in any state: a passive open in the SYN queue, one in the
// accept queue, an orphan and TIME-WAIT included. A driver that runs
// several engines on one address asks it to find the engine a segment
// belongs to before handing it over, since an engine answers a segment of
// a connection it does not have with RST (RFC 9293 §3.10.7.1).
func (e *Engine) HasConn(local, remote netip.AddrPort) bool {
	return e.conns[connKey{local, remote}] != nil
}
