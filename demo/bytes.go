package demo

import (
	"io"
)

// patternModulus is the period of the /bytes pattern: byte i is i mod 251.
const patternModulus = 251

// patternTable holds whole periods of the pattern plus one extra period, so
// that a chunk of up to patternChunkBytes can be sliced from any phase
// without wrapping.
var patternTable = func() []byte {
	t := make([]byte, patternChunkBytes+patternModulus)
	for i := range t {
		t[i] = byte(i % patternModulus)
	}
	return t
}()

// patternChunkBytes is how much one Write sends: whole periods, about 32 KiB.
const patternChunkBytes = patternModulus * 128

// PatternByte is byte i of the /bytes pattern.
func PatternByte(i int64) byte { return byte(i % patternModulus) }

// WritePattern writes bytes [0, n) of the /bytes pattern to w in chunks of
// about 32 KiB, never holding more than the fixed table in memory.
func WritePattern(w io.Writer, n int64) (written int64, err error) {
	for written < n {
		phase := written % patternModulus
		chunk := min(n-written, patternChunkBytes)
		m, err := w.Write(patternTable[phase : phase+chunk])
		written += int64(m)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}
