package tcpcore

import (
	"testing"
	"unsafe"
)

// An idle connection is mostly its Conn, which the Go runtime allocates
// with an 8-byte header (objects of more than 512 bytes that hold
// pointers) in the 1152-byte size class; one byte more and it takes 1280.
// (BenchmarkIdleConnHeap measures all an idle connection holds.)
func TestConnFitsItsSizeClass(t *testing.T) {
	const header, class = 8, 1152
	if got := unsafe.Sizeof(Conn{}) + header; got > class {
		t.Fatalf("Conn is %d bytes with its allocation header, past the %d-byte size class: every idle connection would take 128 bytes more; group small fields so they do not leave padding, use 4-byte integers where the range allows, or keep what an idle connection does not use in rareState, made on first use", got, class)
	}
}
