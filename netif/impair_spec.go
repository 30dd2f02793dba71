package netif

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ImpairDir selects the directions an ImpairSpec applies to. The zero value
// is both, the contract's default.
type ImpairDir uint8

const (
	ImpairBoth ImpairDir = iota // packets read from and written to the link
	ImpairIn                    // packets read from the link, toward the stack
	ImpairOut                   // packets written to the link, from the stack
)

// String returns the SPEC spelling: both, in or out.
func (d ImpairDir) String() string {
	switch d {
	case ImpairBoth:
		return "both"
	case ImpairIn:
		return "in"
	case ImpairOut:
		return "out"
	}
	return fmt.Sprintf("ImpairDir(%d)", uint8(d))
}

// has reports whether d covers the direction out (true) or in (false).
func (d ImpairDir) has(out bool) bool {
	return d == ImpairBoth || (d == ImpairOut) == out
}

// DefaultImpairQueuePackets is the bottleneck queue when a SPEC sets rate
// but not queue: 100 packets, a common default for a router's FIFO.
const DefaultImpairQueuePackets = 100

// ImpairSpec describes the impairment of a link, per direction. The zero
// value impairs nothing. Percentages are kept as written (1 for 1%) so that
// String gives back exactly what was parsed.
type ImpairSpec struct {
	LossPercent    float64       // chance a packet is lost, 0 to 100
	BurstPackets   float64       // mean length of a loss burst, in packets (≥ 1); 0 for independent losses
	ReorderPercent float64       // chance a packet is held back behind the next one, 0 to 100
	DupPercent     float64       // chance a packet is sent twice, 0 to 100
	Delay          time.Duration // one-way delay added to every packet
	Jitter         time.Duration // each packet's delay varies uniformly within ±Jitter (≤ Delay)
	RateBitsPerSec uint64        // bottleneck rate in bits per second; 0 for unlimited
	QueuePackets   int           // bottleneck FIFO capacity in packets; 0 for DefaultImpairQueuePackets
	Seed           uint64        // seeds every random decision
	Dir            ImpairDir     // the directions impaired
}

// Enabled reports whether s impairs anything: a spec that only names a seed
// or a direction leaves the link as it is.
func (s ImpairSpec) Enabled() bool {
	return s.LossPercent > 0 || s.ReorderPercent > 0 || s.DupPercent > 0 ||
		s.Delay > 0 || s.Jitter > 0 || s.RateBitsPerSec > 0
}

// queuePackets is the bottleneck capacity with the default applied.
func (s ImpairSpec) queuePackets() int {
	if s.QueuePackets == 0 {
		return DefaultImpairQueuePackets
	}
	return s.QueuePackets
}

// ImpairSpecError reports a bad item of an impairment SPEC. Its message is
// one sentence naming the item and what is accepted instead.
type ImpairSpecError struct {
	Item string // the item as written, such as "loss=abc"
	Want string // what would be accepted
}

func (e *ImpairSpecError) Error() string {
	return fmt.Sprintf("bad impairment %q: %s", e.Item, e.Want)
}

// impairKeys lists the SPEC keys in the order String writes them.
var impairKeys = []string{"loss", "burst", "reorder", "dup", "delay", "jitter", "rate", "queue", "seed", "dir"}

// ParseImpairSpec parses the contract's SPEC: comma-separated key=value
// items, as in "loss=1%,burst=3,delay=20ms,rate=10mbit,queue=50,seed=7,dir=in".
// An empty string is the zero spec. Each key may appear once.
func ParseImpairSpec(s string) (ImpairSpec, error) {
	var spec ImpairSpec
	s = strings.TrimSpace(s)
	if s == "" {
		return spec, nil
	}
	items := map[string]string{} // key -> item as written, for later checks
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		key, val, ok := strings.Cut(item, "=")
		if !ok || key == "" {
			return ImpairSpec{}, &ImpairSpecError{item, "want key=value, as in loss=1% or delay=20ms"}
		}
		key = strings.ToLower(strings.TrimSpace(key))
		val = strings.TrimSpace(val)
		if _, dup := items[key]; dup {
			return ImpairSpec{}, &ImpairSpecError{item, key + " is given more than once; give it once"}
		}
		items[key] = item
		var err error
		switch key {
		case "loss":
			spec.LossPercent, err = parsePercent(item, val, "loss")
		case "reorder":
			spec.ReorderPercent, err = parsePercent(item, val, "reorder")
		case "dup":
			spec.DupPercent, err = parsePercent(item, val, "dup")
		case "burst":
			spec.BurstPackets, err = parseBurst(item, val)
		case "delay":
			spec.Delay, err = parseDuration(item, val, "delay=20ms")
		case "jitter":
			spec.Jitter, err = parseDuration(item, val, "jitter=5ms")
		case "rate":
			spec.RateBitsPerSec, err = parseRate(item, val)
		case "queue":
			spec.QueuePackets, err = parseQueue(item, val)
		case "seed":
			spec.Seed, err = strconv.ParseUint(val, 10, 64)
			if err != nil {
				err = &ImpairSpecError{item, "want a whole number from 0 to 18446744073709551615, as in seed=7"}
			}
		case "dir":
			switch strings.ToLower(val) {
			case "both":
				spec.Dir = ImpairBoth
			case "in":
				spec.Dir = ImpairIn
			case "out":
				spec.Dir = ImpairOut
			default:
				err = &ImpairSpecError{item, "want dir=in, dir=out or dir=both"}
			}
		default:
			err = &ImpairSpecError{item, "unknown setting; use " + strings.Join(impairKeys, ", ")}
		}
		if err != nil {
			return ImpairSpec{}, err
		}
	}
	if err := spec.check(items); err != nil {
		return ImpairSpec{}, err
	}
	return spec, nil
}

// Validate reports the first setting out of range, or in conflict with
// another, in the same words as ParseImpairSpec. NewImpairedLink calls it,
// so a spec built in Go is held to the same rules as one parsed.
func (s ImpairSpec) Validate() error {
	for _, c := range []struct {
		key string
		ok  bool
	}{
		{"loss", s.LossPercent >= 0 && s.LossPercent <= 100},
		{"reorder", s.ReorderPercent >= 0 && s.ReorderPercent <= 100},
		{"dup", s.DupPercent >= 0 && s.DupPercent <= 100},
		{"burst", s.BurstPackets == 0 || (s.BurstPackets >= 1 && !math.IsInf(s.BurstPackets, 0))},
		{"delay", s.Delay >= 0},
		{"jitter", s.Jitter >= 0},
		{"rate", s.RateBitsPerSec <= 1e15},
		{"queue", s.QueuePackets >= 0},
		{"dir", s.Dir <= ImpairOut},
	} {
		if c.ok {
			continue
		}
		// Parse the canonical item to get the parser's message for it.
		_, err := ParseImpairSpec(s.item(c.key))
		if err == nil {
			err = &ImpairSpecError{s.item(c.key), "out of range"}
		}
		return err
	}
	return s.check(nil)
}

// check validates the settings that depend on each other. items maps keys
// to the items as written, so that errors quote the user's own text; a key
// missing from it is quoted in canonical form.
func (s ImpairSpec) check(written map[string]string) error {
	items := func(key string) string {
		if it, ok := written[key]; ok {
			return it
		}
		return s.item(key)
	}
	if s.BurstPackets > 0 {
		if s.LossPercent == 0 {
			return &ImpairSpecError{items("burst"), "a loss burst needs a loss rate too, as in loss=1%,burst=3"}
		}
		// The Gilbert-Elliott chain needs P(good→bad) ≤ 1; see lossModel.
		// The tolerance lets loss=80%,burst=4 (exactly q = 1) through float rounding.
		if l := s.LossPercent / 100; l < 1 && l/((1-l)*s.BurstPackets) > 1+1e-9 {
			return &ImpairSpecError{items("burst"), fmt.Sprintf("at loss=%s%% bursts cannot average fewer than %s packets; give a longer burst or less loss",
				formatFloat(s.LossPercent), formatFloat(math.Round(l/(1-l)*100)/100))}
		}
	}
	if s.Jitter > s.Delay {
		return &ImpairSpecError{items("jitter"), fmt.Sprintf("jitter varies the delay either way, so it may not exceed delay (%v); give a delay at least as large", s.Delay)}
	}
	if s.QueuePackets > 0 && s.RateBitsPerSec == 0 {
		return &ImpairSpecError{items("queue"), "the queue belongs to the rate bottleneck; give a rate too, as in rate=10mbit,queue=100"}
	}
	return nil
}

func parsePercent(item, val, key string) (float64, error) {
	num, ok := strings.CutSuffix(val, "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if !ok || err != nil || math.IsNaN(f) || f < 0 || f > 100 {
		return 0, &ImpairSpecError{item, "want a percentage from 0% to 100%, as in " + key + "=1%"}
	}
	return f, nil
}

func parseBurst(item, val string) (float64, error) {
	f, err := strconv.ParseFloat(val, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 1 {
		return 0, &ImpairSpecError{item, "want a mean burst length of at least 1 packet, as in burst=3"}
	}
	return f, nil
}

func parseDuration(item, val, example string) (time.Duration, error) {
	d, err := time.ParseDuration(val)
	if err != nil || d < 0 {
		return 0, &ImpairSpecError{item, "want a duration of zero or more, as in " + example}
	}
	return d, nil
}

func parseQueue(item, val string) (int, error) {
	n, err := strconv.Atoi(val)
	if err != nil || n < 1 {
		return 0, &ImpairSpecError{item, "want a whole number of packets, at least 1, as in queue=100"}
	}
	return n, nil
}

// rateUnits are the rate suffixes, decimal as in tc(8), largest first so
// that String picks the largest exact one.
var rateUnits = []struct {
	suffix string
	bits   uint64
}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}

func parseRate(item, val string) (uint64, error) {
	bad := &ImpairSpecError{item, "want bits per second, bare or with kbit, mbit or gbit, as in rate=100mbit"}
	num, mult := strings.ToLower(val), uint64(1)
	for _, u := range rateUnits {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = n, u.bits
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || f <= 0 {
		return 0, bad
	}
	// Rounded to whole bits per second: 0.1kbit is 100, not 100.00000000000001.
	bits := math.Round(f * float64(mult))
	if bits < 1 || bits > 1e15 {
		return 0, bad
	}
	return uint64(bits), nil
}

// String returns the spec in SPEC form, settings at their defaults left
// out: ParseImpairSpec(s.String()) gives s back.
func (s ImpairSpec) String() string {
	var b []string
	for _, k := range impairKeys {
		if it := s.item(k); it != "" {
			b = append(b, it)
		}
	}
	return strings.Join(b, ",")
}

// item returns one setting as key=value, or "" when it is at its default.
func (s ImpairSpec) item(key string) string {
	var v string
	switch key {
	case "loss":
		v = formatPercent(s.LossPercent)
	case "burst":
		if s.BurstPackets != 0 {
			v = formatFloat(s.BurstPackets)
		}
	case "reorder":
		v = formatPercent(s.ReorderPercent)
	case "dup":
		v = formatPercent(s.DupPercent)
	case "delay":
		if s.Delay != 0 {
			v = s.Delay.String()
		}
	case "jitter":
		if s.Jitter != 0 {
			v = s.Jitter.String()
		}
	case "rate":
		v = formatRate(s.RateBitsPerSec)
	case "queue":
		if s.QueuePackets != 0 {
			v = strconv.Itoa(s.QueuePackets)
		}
	case "seed":
		if s.Seed != 0 {
			v = strconv.FormatUint(s.Seed, 10)
		}
	case "dir":
		if s.Dir != ImpairBoth {
			v = s.Dir.String()
		}
	}
	if v == "" {
		return ""
	}
	return key + "=" + v
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func formatPercent(f float64) string {
	if f == 0 {
		return ""
	}
	return formatFloat(f) + "%"
}

// formatRate writes bits per second in the largest unit that divides them.
func formatRate(bitsPerSec uint64) string {
	if bitsPerSec == 0 {
		return ""
	}
	for _, u := range rateUnits {
		if bitsPerSec%u.bits == 0 {
			v := strconv.FormatUint(bitsPerSec/u.bits, 10)
			if u.bits > 1 {
				v += u.suffix
			}
			return v
		}
	}
	return "" // unreachable: the last unit is 1
}
