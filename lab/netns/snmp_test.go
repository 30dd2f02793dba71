package netns

import (
	"strings"
	"testing"
)

func TestParseSNMPReadsThePrefixsNamesAndValues(t *testing.T) {
	const snmp = `Ip: Forwarding DefaultTTL
Ip: 2 64
Tcp: RtoAlgorithm ActiveOpens RetransSegs OutSegs
Tcp: 1 3 7 120
TcpExt: SyncookiesSent ListenOverflows
TcpExt: 0 5
`
	got := parseSNMP(strings.NewReader(snmp), "Tcp")
	if len(got) != 4 || got["RetransSegs"] != 7 || got["OutSegs"] != 120 || got["ActiveOpens"] != 3 {
		t.Errorf("Tcp = %v", got)
	}
	if got := parseSNMP(strings.NewReader(snmp), "TcpExt"); len(got) != 2 || got["ListenOverflows"] != 5 {
		t.Errorf("TcpExt = %v", got)
	}
	if got := parseSNMP(strings.NewReader(snmp), "Udp"); len(got) != 0 {
		t.Errorf("Udp = %v, want none", got)
	}
}

func TestTCPCountersReadsTheNamespacesOwnCounters(t *testing.T) {
	RequireRoot(t)
	ns, err := New("nstest")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := ns.TCPCounters()
	if err != nil {
		t.Fatal(err)
	}
	// A new namespace has counted nothing yet, but lists the counters.
	if n, ok := c.Tcp["RetransSegs"]; !ok || n != 0 {
		t.Errorf("Tcp RetransSegs = %d, %v; want 0 in a new namespace", n, ok)
	}
	if _, ok := c.TcpExt["ListenOverflows"]; !ok {
		t.Errorf("TcpExt has no ListenOverflows: %v", c.TcpExt)
	}
}
