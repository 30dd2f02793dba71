package congestion

import (
	"testing"
	"unsafe"
)

// Every established connection holds its controller, CUBIC by default,
// which the Go runtime allocates in a size class: 240 bytes, the next
// being 256. The state only a reduction needs (cubicSnapshot) is made at
// the first one to keep it there.
func TestCubicFitsItsSizeClass(t *testing.T) {
	const class = 240
	if got := unsafe.Sizeof(Cubic{}); got > class {
		t.Fatalf("Cubic is %d bytes, past the %d-byte size class: every idle connection would take 16 bytes more; group small fields so they leave no padding, or keep state only a reduction needs behind the pointer made on use", got, class)
	}
}
