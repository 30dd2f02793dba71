package stack

// Readiness notification: a program that relays many mostly idle
// connections (the relay package) need not keep a goroutine blocked in
// Read on each. It arms the connection instead, and the stack starts a
// goroutine of the program's own when there is something to read.

// OnReadable sets the function the stack starts, on a goroutine of its
// own, when the connection was armed (ArmRead) and becomes readable: data,
// the peer's FIN, a reset or another error arrived, or the connection was
// closed (Close, or the stack's Close). It runs once per ArmRead that
// returned false, never under the stack's lock, so it may call any of the
// Conn's methods. The read deadline does not fire it. Set it once, before
// the first ArmRead.
func (c *Conn) OnReadable(f func()) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.retired {
		return // nothing will arm it: ArmRead reports a closed one readable
	}
	if f == nil {
		delete(s.onReadable, c)
		c.armed = false
		return
	}
	if s.onReadable == nil {
		s.onReadable = make(map[*Conn]func())
	}
	s.onReadable[c] = f
}

// ArmRead reports whether a Read would find something now: data, the
// peer's FIN, an error, or a closed connection. Unlike WaitRead it does not
// look at the read deadline: with nothing to read and an expired deadline
// it still arms, since the deadline does not fire OnReadable's function
// either. If nothing is there, ArmRead arms the connection and returns
// false: the function OnReadable set is started once the connection
// becomes readable or is closed. Without such a function it reports true,
// so that the caller reads (and blocks) as before.
func (c *Conn) ArmRead() bool {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed || c.tc.Readable() || s.onReadable[c] == nil {
		return true
	}
	// Checked and armed under the lock the engine's wakeups run under
	// (unlockFlush): data that arrives after the check finds it armed.
	c.armed = true
	return false
}

// fireReadable starts the OnReadable function of an armed connection that
// has become readable or was closed, and disarms it. The caller holds s.mu:
// the function itself runs on a new goroutine, after the lock is released
// or not, so it can take the lock without deadlock.
func (c *Conn) fireReadable() {
	if !c.armed || !(c.closed || c.tc.Readable()) {
		return
	}
	c.armed = false
	if f := c.s.onReadable[c]; f != nil {
		go f()
	}
}
