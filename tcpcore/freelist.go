package tcpcore

// freeList is the stack of free buffers behind the engine's pools
// (packetPool, ringPool). It needs no lock: the engine and its buffers
// have one owner at a time. Buffers that sat unused since the last trim
// go back to the garbage collector at the next one, so a burst's buffers
// do not stay with an engine that has gone quiet.
type freeList[T any] struct {
	free []T
	// low is the fewest buffers free since the last trim: that many
	// sat unused the whole time, and trim gives them back.
	low int
}

// pop takes the buffer freed last, if there is one.
func (f *freeList[T]) pop() (x T, ok bool) {
	n := len(f.free)
	if n == 0 {
		f.low = 0
		return x, false
	}
	x = f.free[n-1]
	f.free[n-1] = *new(T)
	f.free = f.free[:n-1]
	f.low = min(f.low, n-1)
	return x, true
}

func (f *freeList[T]) push(x T) { f.free = append(f.free, x) }

// trim drops the buffers that stayed free since the last trim, the
// bottom of the stack (the top ones are those reused), and returns how
// many are left.
func (f *freeList[T]) trim() int {
	if n := f.low; n > 0 {
		clear(f.free[:n])
		f.free = append(f.free[:0], f.free[n:]...)
		clear(f.free[len(f.free):cap(f.free)])
	}
	f.low = len(f.free)
	return len(f.free)
}
