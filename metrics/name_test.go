package metrics

import (
	"testing"

	"tunstack/stack"
)

func TestPromNameExamples(t *testing.T) {
	for nstat, want := range map[string]string{
		"TcpActiveOpens":             "tunstack_tcp_active_opens_total",
		"TcpExtListenOverflows":      "tunstack_tcpext_listen_overflows_total",
		"TcpExtTCPDSACKRecv":         "tunstack_tcpext_tcp_dsack_recv_total",
		"TcpExtTCPDSACKOldSent":      "tunstack_tcpext_tcp_dsack_old_sent_total",
		"TcpExtDelayedACKs":          "tunstack_tcpext_delayed_acks_total",
		"TcpExtPAWSEstab":            "tunstack_tcpext_paws_estab_total",
		"TcpExtTW":                   "tunstack_tcpext_tw_total",
		"TcpExtTCPLossProbeRecovery": "tunstack_tcpext_tcp_loss_probe_recovery_total",
		"TcpInCsumErrors":            "tunstack_tcp_in_csum_errors_total",
		"IpInReceives":               "tunstack_ip_in_receives_total",
		"Ip6OutRequests":             "tunstack_ip6_out_requests_total",
		"Ip6InTruncatedPkts":         "tunstack_ip6_in_truncated_pkts_total",
		"Icmp6InErrors":              "tunstack_icmp6_in_errors_total",
		"TcpExtTCPChallengeACK":      "tunstack_tcpext_tcp_challenge_ack_total",
		"TunTxDropped":               "tunstack_tun_tx_dropped_total",
		"Udp":                        "",
	} {
		if got := PromName(nstat); got != want {
			t.Errorf("PromName(%q) = %q, want %q", nstat, got, want)
		}
	}
}

// Every entry of the table has a name in an nstat group, derived by the
// one rule, distinct from every other entry's; each entry is counted by at
// least one stack and says which field feeds it; the table is in nstat's
// group order.
func TestCounterTableNamesAreDerivedAndDistinct(t *testing.T) {
	byName := map[string]string{}
	nstats := map[string]Counter{}
	order := map[string]int{"Ip": 0, "Tcp": 1, "Ip6": 2, "Icmp6": 3, "TcpExt": 4}
	last := 0
	for _, c := range Counters {
		name := c.Name()
		if name == "" || name != PromName(c.Nstat) {
			t.Errorf("%s: Prometheus name %q is not PromName's", c.Nstat, name)
			continue
		}
		if other, dup := byName[name]; dup {
			t.Errorf("%s and %s both map to %s", other, c.Nstat, name)
		}
		byName[name] = c.Nstat
		if _, dup := nstats[c.Nstat]; dup {
			t.Errorf("%s appears twice", c.Nstat)
		}
		nstats[c.Nstat] = c
		if c.Ours == nil && c.GVisor == nil {
			t.Errorf("%s is counted by no stack: it should not be in the table", c.Nstat)
		}
		if (c.Ours != nil) != (c.OursFrom != "") || (c.GVisor != nil) != (c.GVisorFrom != "") {
			t.Errorf("%s: a reader without its source named, or the reverse", c.Nstat)
		}
		if c.Help == "" {
			t.Errorf("%s has no help", c.Nstat)
		}
		g := groupOf(c.Nstat)
		if order[g] < last {
			t.Errorf("%s (group %s) comes after a later group", c.Nstat, g)
		}
		last = order[g]
	}
	for _, n := range NotCounted {
		if c, ok := nstats[n]; ok && c.Ours != nil {
			t.Errorf("%s is both read from our stack and listed as not counted", n)
		}
		if PromName(n) == "" {
			t.Errorf("not-counted %s is in no nstat group", n)
		}
	}
}

func groupOf(nstat string) string {
	for _, g := range groups {
		if len(nstat) > len(g) && nstat[:len(g)] == g {
			return g
		}
	}
	return ""
}

// TestPassedOnReadsTheShardsHandOffs: TcpExtTunstackPassedOn exports the
// IP layer's PassedOn, which Stack.Metrics sums over the engine shards
// (stack's TestShardsPassOnMisSteeredSegments checks that sum).
func TestPassedOnReadsTheShardsHandOffs(t *testing.T) {
	for _, c := range Counters {
		if c.Nstat != "TcpExtTunstackPassedOn" {
			continue
		}
		m := stack.Metrics{IP: stack.IPStats{PassedOn: 42, PacketsIn: 7}}
		if got := c.Ours(&m); got != 42 {
			t.Errorf("TcpExtTunstackPassedOn reads %d from a reading with PassedOn 42", got)
		}
		if c.GVisor != nil {
			t.Error("TcpExtTunstackPassedOn is read from gVisor, which runs on one queue")
		}
		return
	}
	t.Fatal("no TcpExtTunstackPassedOn in the table")
}
