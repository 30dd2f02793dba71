package netif

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseImpairSpecAcceptsTheContractsSettings(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ImpairSpec
		str  string // canonical String form
	}{
		{"", ImpairSpec{}, ""},
		{"loss=1%", ImpairSpec{LossPercent: 1}, "loss=1%"},
		{" loss = 0.5% , seed=7 ", ImpairSpec{LossPercent: 0.5, Seed: 7}, "loss=0.5%,seed=7"},
		{"loss=5%,burst=4", ImpairSpec{LossPercent: 5, BurstPackets: 4}, "loss=5%,burst=4"},
		{"loss=100%,burst=2", ImpairSpec{LossPercent: 100, BurstPackets: 2}, "loss=100%,burst=2"},
		{"reorder=2%,dup=0.5%", ImpairSpec{ReorderPercent: 2, DupPercent: 0.5}, "reorder=2%,dup=0.5%"},
		{"delay=20ms,jitter=5ms", ImpairSpec{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond}, "delay=20ms,jitter=5ms"},
		{"delay=1m30s", ImpairSpec{Delay: 90 * time.Second}, "delay=1m30s"},
		{"rate=100mbit,queue=100", ImpairSpec{RateBitsPerSec: 100e6, QueuePackets: 100}, "rate=100mbit,queue=100"},
		{"rate=1.5Mbit", ImpairSpec{RateBitsPerSec: 1.5e6}, "rate=1500kbit"},
		{"rate=64kbit", ImpairSpec{RateBitsPerSec: 64e3}, "rate=64kbit"},
		{"rate=10gbit", ImpairSpec{RateBitsPerSec: 10e9}, "rate=10gbit"},
		{"rate=12345", ImpairSpec{RateBitsPerSec: 12345}, "rate=12345"},
		{"rate=800bit", ImpairSpec{RateBitsPerSec: 800}, "rate=800"},
		{"dir=in,loss=1%", ImpairSpec{Dir: ImpairIn, LossPercent: 1}, "loss=1%,dir=in"},
		{"dir=OUT,delay=1ms", ImpairSpec{Dir: ImpairOut, Delay: time.Millisecond}, "delay=1ms,dir=out"},
		{"dir=both", ImpairSpec{}, ""},
		{"seed=18446744073709551615", ImpairSpec{Seed: 1<<64 - 1}, "seed=18446744073709551615"},
	} {
		got, err := ParseImpairSpec(tc.in)
		if err != nil {
			t.Errorf("ParseImpairSpec(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseImpairSpec(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.str {
			t.Errorf("ParseImpairSpec(%q).String() = %q, want %q", tc.in, s, tc.str)
		}
		back, err := ParseImpairSpec(got.String())
		if err != nil || back != got {
			t.Errorf("round trip of %q: %+v, %v; want %+v", tc.in, back, err, got)
		}
	}
}

func TestImpairSpecStringRoundTripsEveryField(t *testing.T) {
	s := ImpairSpec{
		LossPercent: 0.1 + 0.2, BurstPackets: 2.5, ReorderPercent: 1e-5, DupPercent: 33.333333333333336,
		Delay: 1234567 * time.Nanosecond, Jitter: time.Microsecond, RateBitsPerSec: 123456789,
		QueuePackets: 7, Seed: 99, Dir: ImpairOut,
	}
	got, err := ParseImpairSpec(s.String())
	if err != nil || got != s {
		t.Fatalf("ParseImpairSpec(%q) = %+v, %v; want %+v", s.String(), got, err, s)
	}
}

func TestParseImpairSpecErrorsNameTheItemAndWhatIsAccepted(t *testing.T) {
	for _, tc := range []struct {
		in, item, want string
	}{
		{"loss", "loss", "key=value"},
		{"=3", "=3", "key=value"},
		{"lose=1%", "lose=1%", "unknown setting; use loss, burst"},
		{"loss=1", "loss=1", "percentage from 0% to 100%"},
		{"loss=abc%", "loss=abc%", "loss=1%"},
		{"loss=101%", "loss=101%", "percentage"},
		{"loss=-1%", "loss=-1%", "percentage"},
		{"loss=NaN%", "loss=NaN%", "percentage"},
		{"dup=x", "dup=x", "dup=1%"},
		{"reorder=2", "reorder=2", "reorder=1%"},
		{"burst=0.5,loss=1%", "burst=0.5", "at least 1 packet"},
		{"burst=3", "burst=3", "needs a loss rate"},
		{"loss=80%,burst=2", "burst=2", "cannot average fewer than 4 packets"},
		{"delay=20", "delay=20", "duration"},
		{"delay=-5ms", "delay=-5ms", "zero or more"},
		{"jitter=5ms", "jitter=5ms", "may not exceed delay"},
		{"delay=2ms,jitter=5ms", "jitter=5ms", "may not exceed delay (2ms)"},
		{"rate=100mbps", "rate=100mbps", "kbit, mbit or gbit"},
		{"rate=0", "rate=0", "bits per second"},
		{"rate=fast", "rate=fast", "rate=100mbit"},
		{"queue=100", "queue=100", "give a rate too"},
		{"rate=1mbit,queue=0", "queue=0", "at least 1"},
		{"seed=-1", "seed=-1", "whole number"},
		{"dir=up", "dir=up", "dir=in, dir=out or dir=both"},
		{"loss=1%,loss=2%", "loss=2%", "more than once"},
		{"loss=1%,,delay=1ms", "", "key=value"},
	} {
		_, err := ParseImpairSpec(tc.in)
		var se *ImpairSpecError
		if !errors.As(err, &se) {
			t.Errorf("ParseImpairSpec(%q) = %v, want an *ImpairSpecError", tc.in, err)
			continue
		}
		if se.Item != tc.item || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseImpairSpec(%q) = %q (item %q), want item %q and %q", tc.in, err, se.Item, tc.item, tc.want)
		}
		if msg := err.Error(); strings.Count(msg, ". ") > 0 || strings.Contains(msg, "\n") {
			t.Errorf("ParseImpairSpec(%q) = %q, want one sentence", tc.in, msg)
		}
	}
}

func TestImpairSpecValidateHoldsGoBuiltSpecsToTheParsersRules(t *testing.T) {
	for _, tc := range []struct {
		spec ImpairSpec
		want string
	}{
		{ImpairSpec{LossPercent: 150}, `"loss=150%": want a percentage`},
		{ImpairSpec{Delay: -time.Millisecond}, `"delay=-1ms": want a duration`},
		{ImpairSpec{QueuePackets: 5}, `"queue=5": the queue belongs to the rate bottleneck`},
		{ImpairSpec{BurstPackets: 3}, `"burst=3": a loss burst needs`},
		{ImpairSpec{Dir: 9}, `"dir=ImpairDir(9)": want dir=in, dir=out or dir=both`},
	} {
		err := tc.spec.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v.Validate() = %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func TestImpairSpecEnabled(t *testing.T) {
	for in, want := range map[string]bool{
		"": false, "seed=3": false, "dir=in": false, "loss=0%": false,
		"loss=1%": true, "dup=1%": true, "reorder=1%": true, "delay=1ms": true, "rate=1mbit": true,
	} {
		s, err := ParseImpairSpec(in)
		if err != nil {
			t.Fatal(err)
		}
		if s.Enabled() != want {
			t.Errorf("ParseImpairSpec(%q).Enabled() = %v, want %v", in, !want, want)
		}
	}
}
