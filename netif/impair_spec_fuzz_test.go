package netif

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseImpairSpec: ParseImpairSpec never panics; what it accepts
// passes Validate and survives String and a second parse unchanged; what
// it rejects it rejects with an ImpairSpecError that quotes an item of the
// input and says what would be accepted.
func FuzzParseImpairSpec(f *testing.F) {
	// Specs as the documentation, the lab and the tests give them.
	for _, s := range []string{
		"", "loss=1%", "loss=2%,reorder=1%,dup=1%", "loss=1%,delay=20ms,seed=7",
		"loss=1%,burst=3,delay=20ms,rate=10mbit,queue=50,seed=7,dir=in",
		"delay=20ms,jitter=5ms", "rate=1.5Mbit", "rate=100mbit,queue=100", "rate=800",
		"dir=OUT,delay=1ms", "loss=100%,burst=2", "seed=18446744073709551615", "delay=1m30s",
		"loss=abc", "loss=1%,loss=2%", "jitter=5ms", "burst=3", "queue=0", "dir=sideways", "=1", "loss",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		spec, err := ParseImpairSpec(in)
		if err != nil {
			var se *ImpairSpecError
			if !errors.As(err, &se) {
				t.Fatalf("%q: error %v (%T) is no ImpairSpecError", in, err, err)
			}
			if se.Want == "" || !strings.Contains(in, se.Item) {
				t.Fatalf("%q: error names item %q, not in the input, or says nothing of what is accepted (%q)", in, se.Item, se.Want)
			}
			return
		}
		if err := spec.Validate(); err != nil {
			t.Fatalf("%q parsed to %+v, which Validate rejects: %v", in, spec, err)
		}
		again, err := ParseImpairSpec(spec.String())
		if err != nil {
			t.Fatalf("%q parsed to %+v, whose String %q does not parse: %v", in, spec, spec.String(), err)
		}
		if again != spec {
			t.Fatalf("%q parsed to %+v; its String %q parses to %+v", in, spec, spec.String(), again)
		}
	})
}
