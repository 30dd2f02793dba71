package main

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// Each mistake on relay's command line is one sentence that says what to
// do; a good line parses to what it says.
func TestParseRelayFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // a part of the usage error; "" for none
	}{
		{[]string{"--route", "10.0.0.0/8"}, "would loop"},
		{[]string{"--route", "10.0.0.0/8", "--outbound-interface", "eth0", "--outbound-mark", "7"}, "give one of them"},
		{[]string{"--route", "banana"}, "CIDR form"},
		{[]string{"--route", "198.18.0.0/25", "--tun-netns", "c"}, "inside the TUN link's own prefix"},
		{[]string{"--route", "2001:db8::/32", "--net6", "none", "--tun-netns", "c"}, "IPv6 is off"},
		{[]string{"--upstream", "http://proxy:8080"}, "socks5://HOST:PORT"},
		{[]string{"--tun-netns", "x", "--netns", "x"}, "same namespace"},
		{[]string{"--stack", "gvisor", "--trace", "t.jsonl"}, "--trace needs --stack tunstack"},
		{[]string{"--stack", "gvisor", "--mss", "1200"}, "--mss needs --stack tunstack"},
		{[]string{"--dial-timeout", "0s"}, "positive duration"},
		{[]string{"extra"}, "takes no arguments"},
		{[]string{"--route", "0.0.0.0/0", "--outbound-mark", "51820"}, ""},
		{[]string{"--route", "10.77.0.0/16", "--tun-netns", "c", "--upstream", "socks5://127.0.0.1:1080"}, ""},
	} {
		cfg, err := parseRelayFlags(tc.args)
		var ue *usageError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v, want it accepted", tc.args, err)
		case tc.want != "" && (!errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want a usage error saying %q", tc.args, err, tc.want)
		case tc.want == "" && len(cfg.intercepted()) != 1:
			t.Errorf("%q: intercepts %v, want the one route", tc.args, cfg.intercepted())
		}
	}
	cfg, err := parseRelayFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	if got := cfg.intercepted(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("without --route it intercepts %v, want %v", got, want)
	}
}
