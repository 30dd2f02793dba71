package main

import (
	"reflect"
	"strings"
	"testing"

	"tunstack/conformance"
)

func TestPacketdrillArgsAreReadAsGetoptDoes(t *testing.T) {
	opts, rest, err := packetdrillArgs([]string{
		"--stack", "tunstack", "--tolerance_usecs=10000", "--bind_port", "9000", "-D", "A=1", "-DB=`echo`",
		"--define", "C=x", "-v", "--strict_segments", "a.pkt", "--json", "b.pkt", "--", "--mss=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	o := func(name, value string) conformance.Option {
		return conformance.Option{Name: name, Value: value, HasValue: true}
	}
	want := []conformance.Option{o("tolerance_usecs", "10000"), o("bind_port", "9000"), o("define", "A=1"), o("define", "B=`echo`"),
		o("define", "C=x"), {Name: "verbose"}, {Name: "strict_segments"}}
	if !reflect.DeepEqual(opts, want) {
		t.Errorf("options\n got %+v\nwant %+v", opts, want)
	}
	if got := strings.Join(rest, " "); got != "--stack tunstack a.pkt --json b.pkt -- --mss=1" {
		t.Errorf("rest: %q", got)
	}
}

func TestDrillFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--mss"}, "option '--mss' requires an argument"},
		{[]string{"--verbose=yes", "a.pkt"}, "option '--verbose' doesn't allow an argument"},
		{[]string{"-D"}, "option requires an argument -- 'D'"},
		{[]string{"--bogus", "a.pkt"}, "there is no flag --bogus"},
		{[]string{"--bind_port=0", "a.pkt"}, "bad --bind_port: 0"},
		{[]string{"-D", "X", "a.pkt"}, "bad definition: X"},
		{[]string{"--local_ip=1.2.3", "a.pkt"}, "bad IPv4 address: 1.2.3"},
		{[]string{"--wire_client", "a.pkt"}, "option 'wire_client' is not supported by this runner"},
		{[]string{"--tolerance_usecs=100"}, "give one or more scripts"},
	} {
		err := runDrill(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("drill %q: %v, want an error with %q", c.args, err, c.want)
		}
	}
}
