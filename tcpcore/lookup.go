package tcpcore

import "net/netip"

// HasConn reports whether the engine has a connection on the 4-tuple
// local, remote in any state: a passive open in the SYN queue, one in the
// accept queue, an orphan and TIME-WAIT included. A driver that runs
// several engines on one address asks it to find the engine a segment
// belongs to before handing it over, since an engine answers a segment of
// a connection it does not have with RST (RFC 9293 §3.10.7.1).
func (e *Engine) HasConn(local, remote netip.AddrPort) bool {
	return e.conns[newConnKey(local, remote)] != nil
}

// demuxAdd puts c in the demultiplexing table, in place of any connection
// that had its 4-tuple (one in TIME-WAIT a SYN reopens), and tells the
// driver's Config.Demux.
func (e *Engine) demuxAdd(c *Conn) {
	e.conns[c.key] = c
	if e.cfg.Demux != nil {
		e.cfg.Demux(c.key.local(), c.key.remote(), true)
	}
}

// demuxRemove takes c, which the table holds, out of it.
func (e *Engine) demuxRemove(c *Conn) {
	delete(e.conns, c.key)
	if e.cfg.Demux != nil {
		e.cfg.Demux(c.key.local(), c.key.remote(), false)
	}
}
