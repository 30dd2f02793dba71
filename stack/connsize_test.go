package stack

import (
	"testing"
	"unsafe"
)

// Every idle connection holds one Conn, which the Go runtime allocates in
// a size class: 96 bytes, the next being 112. Deadlines and the addresses
// live elsewhere (Conn.dl, the engine connection) to keep it there.
func TestConnFitsItsSizeClass(t *testing.T) {
	const class = 96
	if got := unsafe.Sizeof(Conn{}); got > class {
		t.Fatalf("Conn is %d bytes, past the %d-byte size class: every idle connection would take 16 bytes more or more; keep what an idle connection does not use behind a pointer made on use, as its deadlines are", got, class)
	}
}
