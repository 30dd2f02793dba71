package main

import (
	"os"
	"path/filepath"
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

// TestOracleFamilyAndFlags checks the family oracle records for a run of
// the real tool (its command line's, else the script's option line's, else
// ipv4) and that its packetdrill options are checked as drill's are.
func TestOracleFamilyAndFlags(t *testing.T) {
	dir := t.TempDir()
	v6 := filepath.Join(dir, "v6.pkt")
	plain := filepath.Join(dir, "plain.pkt")
	os.WriteFile(v6, []byte("--ip_version=ipv6\n0 close(3) = 0\n"), 0o644)
	os.WriteFile(plain, []byte("0 close(3) = 0\n"), 0o644)
	mapped := []conformance.Option{{Name: "ip_version", Value: "ipv4-mapped-ipv6", HasValue: true}}
	for _, c := range []struct {
		args   []conformance.Option
		script string
		want   string
	}{{nil, plain, "ipv4"}, {nil, v6, "ipv6"}, {mapped, v6, "ipv4-mapped-ipv6"}} {
		if got := oracleFamily(c.args, c.script); got != c.want {
			t.Errorf("%v %s: family %q, want %q", c.args, filepath.Base(c.script), got, c.want)
		}
	}
	err := runOracle([]string{"--packetdrill", "/bin/true", "--ip_version=ipv6", "--local_ip=192.168.0.2", plain})
	if err == nil || !strings.Contains(err.Error(), "bad IPv6 address: 192.168.0.2") {
		t.Errorf("oracle with an IPv4 local address over IPv6: %v", err)
	}
}
