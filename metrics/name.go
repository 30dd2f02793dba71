package metrics

import (
	"strings"
	"unicode"
)

// groups are nstat's name prefixes, longest first so that TcpExt wins over
// Tcp, and Tun, the TUN device's own counters (DeviceCounters).
var groups = []string{"TcpExt", "Tcp", "Ip6", "Icmp6", "Ip", "Tun"}

// PromName derives a counter's Prometheus name from its nstat name, by one
// rule: "tunstack_", the group (Ip, Ip6, Icmp6, Tcp, TcpExt) in lower case, then the
// rest split into words at each change from lower to upper case and
// before the last capital of a run of capitals followed by lower case
// ("DSACKRecv" is "dsack_recv"), a plural "s" staying with its
// abbreviation ("ACKs" is "acks"), a leading "TCP" a word of its own, all
// in lower case and joined by "_", then "_total". So TcpActiveOpens is
// tunstack_tcp_active_opens_total and TcpExtTCPDSACKRecv is
// tunstack_tcpext_tcp_dsack_recv_total. It returns "" for a name in no
// group.
func PromName(nstat string) string {
	for _, g := range groups {
		if rest, ok := strings.CutPrefix(nstat, g); ok && rest != "" {
			words := []string{"tunstack", strings.ToLower(g)}
			if r, ok := strings.CutPrefix(rest, "TCP"); ok && r != "" && unicode.IsUpper(rune(r[0])) {
				words = append(words, "tcp")
				rest = r
			}
			for _, w := range splitWords(rest) {
				words = append(words, strings.ToLower(w))
			}
			return strings.Join(words, "_") + "_total"
		}
	}
	return ""
}

// splitWords cuts a CamelCase name into its words (see PromName).
func splitWords(s string) []string {
	var words []string
	start := 0
	r := []rune(s)
	for i := 1; i < len(r); i++ {
		prev, cur := r[i-1], r[i]
		next := rune(0)
		if i+1 < len(r) {
			next = r[i+1]
		}
		switch {
		case unicode.IsLower(prev) && unicode.IsUpper(cur):
			// "activeOpens": a new word at the capital.
		case unicode.IsUpper(prev) && unicode.IsUpper(cur) && unicode.IsLower(next) && !(next == 's' && (i+2 == len(r) || unicode.IsUpper(r[i+2]))):
			// "DSACKRecv": the run's last capital starts the next word,
			// unless what follows is a plural "s" ("ACKs").
		case unicode.IsDigit(cur) != unicode.IsDigit(prev):
		default:
			continue
		}
		words = append(words, string(r[start:i]))
		start = i
	}
	return append(words, string(r[start:]))
}
