package conformance

import "testing"

func TestParsePacketdrillFailureTakesTheFirstErrorAndItsPackets(t *testing.T) {
	out := `sack-two-holes.pkt:17: error handling packet: live packet payload: expected 1460 bytes vs actual 2920 bytes
script packet:  0.100 . 1:1461(1460) ack 1
actual packet:  0.100 . 1:2921(2920) ack 1 win 502
sack-two-holes.pkt:20: a later error
`
	f := parsePacketdrillFailure("recovery/sack-two-holes.pkt", out)
	if f.Where != "recovery/sack-two-holes.pkt:17" {
		t.Errorf("where %q", f.Where)
	}
	if f.Message != "error handling packet: live packet payload: expected 1460 bytes vs actual 2920 bytes" {
		t.Errorf("message %q", f.Message)
	}
	if f.Expected != "0.100 . 1:1461(1460) ack 1" || f.Actual != "0.100 . 1:2921(2920) ack 1 win 502" {
		t.Errorf("expected %q actual %q", f.Expected, f.Actual)
	}
}

func TestParsePacketdrillFailureWithoutAnErrorLineKeepsTheLastWords(t *testing.T) {
	f := parsePacketdrillFailure("a.pkt", "starting\nSegmentation fault\n")
	if f.Where != "a.pkt" || f.Message != "Segmentation fault" {
		t.Errorf("got %+v", f)
	}
}
