package bench

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"tunstack/gvisorstack"
	"tunstack/netif"
	"tunstack/policy"
)

// A stack label names what a run measures: a base stack (Stacks()), or a
// base stack and a variant, "BASE/CC" or "BASE/CC-nosack", which runs the
// base stack with the policy profile's congestion control replaced by CC
// and, with -nosack, SACK turned off ("BASE/nosack" keeps the profile's
// controller). Variants exist for the user-space stacks only: Linux's
// knobs are the kernel's. "tunstack/qN" runs tunstack on a TUN of N
// queues, an engine shard on each (stack.NewShards); without it tunstack
// runs as serve does by default, on one queue per CPU
// (netif.DefaultQueues), and on one queue where a scenario's link is one
// (lossy's impairment, the relay's frontend).

// variantCC are the congestion controls a variant may name, per base stack:
// tcpcore's controllers, and the two gVisor has
// (tcpip.CongestionControlOption).
var variantCC = map[string][]string{
	"tunstack": {"reno", "newreno", "cubic", "tahoe"},
	"gvisor":   {"reno", "cubic"},
}

// knownVariants are the variant labels listed in the help, in report order
// (after the base stacks). Other well-formed labels work too and are
// reported after these.
var knownVariants = []string{
	"tunstack/reno", "tunstack/newreno", "tunstack/cubic",
	"tunstack/reno-nosack", "tunstack/newreno-nosack", "tunstack/cubic-nosack",
	"gvisor/reno", "gvisor/cubic", "gvisor/reno-nosack", "gvisor/cubic-nosack",
}

// KnownVariants lists the variant labels the help names, in report order.
func KnownVariants() []string { return slices.Clone(knownVariants) }

// DefaultLossyVariants are the variants lossy runs besides the base stacks
// when no stack is chosen: the Reno family and CUBIC with and without SACK
// on tunstack (whose own profile, linux or rfc, is CUBIC with SACK), and
// gVisor's other controller. tunstack/cubic is left out as it is the
// profile's own setting, measured as "tunstack".
func DefaultLossyVariants() []string {
	return []string{
		"tunstack/reno", "tunstack/newreno",
		"tunstack/reno-nosack", "tunstack/newreno-nosack", "tunstack/cubic-nosack",
		"gvisor/reno",
	}
}

// stackSpec is a parsed stack label.
type stackSpec struct {
	label  string // as given, e.g. "tunstack/cubic-nosack"
	base   string // "tunstack", "gvisor" or "linux"
	cc     string // congestion control replacing the profile's; "" keeps it
	noSACK bool   // SACK off whatever the profile says
	queues int    // tunstack's TUN queues and engine shards; 0 is the default (tunQueues)
}

// tunQueues is how many TUN queues the stack runs on: the label's qN, or
// for tunstack without one serve's default, netif.DefaultQueues, except
// on an impaired link, which is one link (the impairment wraps it); gVisor
// runs on one.
func (s stackSpec) tunQueues(impaired bool) int {
	switch {
	case s.queues > 0:
		return s.queues
	case s.base != "tunstack" || impaired:
		return 1
	}
	return netif.DefaultQueues()
}

// parseStack parses a stack label.
func parseStack(label string) (stackSpec, error) {
	base, variant, hasVariant := strings.Cut(label, "/")
	s := stackSpec{label: label, base: base}
	if !slices.Contains(Stacks(), base) {
		return s, fmt.Errorf("bench: unknown stack %q", label)
	}
	if !hasVariant {
		return s, nil
	}
	ccs, ok := variantCC[base]
	if !ok {
		return s, fmt.Errorf("bench: stack %q: %s has no variants (its settings are the kernel's)", label, base)
	}
	if variant == "" {
		return s, fmt.Errorf("bench: stack %q names no variant after the slash", label)
	}
	if n, ok := strings.CutPrefix(variant, "q"); ok && base == "tunstack" {
		q, err := strconv.Atoi(n)
		if err != nil || q < 1 || q > 256 {
			return s, fmt.Errorf("bench: stack %q: give the queues as tunstack/qN with N from 1 to 256, such as tunstack/q2", label)
		}
		s.queues = q
		return s, nil
	}
	cc := variant
	if v, ok := strings.CutSuffix(variant, "-nosack"); ok {
		cc, s.noSACK = v, true
	} else if variant == "nosack" {
		cc, s.noSACK = "", true
	}
	if cc != "" && !slices.Contains(ccs, cc) {
		return s, fmt.Errorf("bench: stack %q: %s's congestion control is one of %s, optionally followed by -nosack", label, base, strings.Join(ccs, ", "))
	}
	s.cc = cc
	return s, nil
}

// CheckStack reports a stack label bench cannot run, and what to give.
func CheckStack(label string) error {
	if _, err := parseStack(label); err != nil {
		return fmt.Errorf("%w; use %s, a variant STACK/CC[-nosack] such as tunstack/reno or gvisor/cubic-nosack, or tunstack/qN for N queues", err, strings.Join(Stacks(), ", "))
	}
	return nil
}

// profile is prof with the variant's settings; prof itself when there are
// none.
func (s stackSpec) profile(prof *policy.Profile) *policy.Profile {
	if s.cc == "" && !s.noSACK {
		return prof
	}
	p := prof.Clone()
	if s.cc != "" {
		p.Congestion = s.cc
	}
	if s.noSACK {
		p.SACK = false
	}
	return p
}

// lossSettings are the congestion control and SACK setting a stack ran
// with: the profile's (or the variant's) for tunstack, the gVisor option
// made of it for gvisor, the kernel sockets' for linux (tcp_sack is 1 in a
// new namespace).
func (s stackSpec) lossSettings(prof *policy.Profile) (cc string, sack bool) {
	p := s.profile(prof)
	switch s.base {
	case "gvisor":
		g := gvisorstack.OptionsFromProfile(p)
		return g.CongestionControl, g.SACK
	case "linux":
		return kernelCC(prof), true
	}
	return p.Congestion, p.SACK
}

// stackOrder puts labels in report order: the base stacks, the known
// variants, then any other variant in the order given; each once.
func stackOrder(labels []string) []string {
	out := ordered(labels, append(Stacks(), knownVariants...))
	for _, l := range labels {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// baseStack is the base stack of a label ("tunstack" of "tunstack/reno").
func baseStack(label string) string {
	b, _, _ := strings.Cut(label, "/")
	return b
}
