package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"tunstack/gvisorstack"
	"tunstack/netif"
	"tunstack/policy"
)

// Report is everything one `tunstack bench` produced: --json writes it,
// --report renders it as docs/performance.md.
type Report struct {
	Date     string   `json:"date"`
	Machine  Machine  `json:"machine"`
	Settings Settings `json:"settings"`
	Results  []Result `json:"results"`
	// GVisor is the gVisor configuration the gvisor stack ran with.
	GVisor            gvisorstack.Options `json:"gvisor_options"`
	GVisorUnsupported []string            `json:"gvisor_unsupported,omitempty"`
	Micro             []MicroResult       `json:"micro,omitempty"`
	Profiles          []ProfileSummary    `json:"profiles,omitempty"`
}

// Settings are the options a report was made with, as they were applied.
type Settings struct {
	Stacks []string `json:"stacks"`
	// LossyStacks are the stacks lossy ran on: Stacks and the variants.
	LossyStacks   []string `json:"lossy_stacks,omitempty"`
	Scenarios     []string `json:"scenarios"`
	Duration      string   `json:"duration"`       // measured window of a timed run
	LossyDuration string   `json:"lossy_duration"` // lossy's window
	Warmup        string   `json:"warmup"`         // before each window
	Runs          int      `json:"runs"`
	Impair        string   `json:"impair"`
	Profile       string   `json:"profile"`   // policy profile of tunstack and gVisor
	KernelCC      string   `json:"kernel_cc"` // TCP_CONGESTION of every kernel socket
	IdleConns     int      `json:"idle_conns"`
	MTU           int      `json:"mtu"`
	// Queues is how many TUN queues, an engine shard each, tunstack ran
	// on where its label names none (stackSpec.tunQueues).
	Queues int `json:"queues,omitempty"`
}

// NewReport assembles a report from normalized options and results.
func NewReport(o Options, results []Result, m Machine) (*Report, error) {
	if err := o.Normalize(); err != nil {
		return nil, err
	}
	prof, err := policy.ByName(o.ProfileName)
	if err != nil {
		return nil, err
	}
	g := gvisorOptions(prof)
	return &Report{
		Date:    time.Now().UTC().Format("2006-01-02 15:04 MST"),
		Machine: m,
		Settings: Settings{
			Stacks: o.Stacks, LossyStacks: o.StacksFor("lossy"), Scenarios: o.Scenarios,
			Duration: o.Duration.String(), LossyDuration: (2 * o.Duration).String(),
			Warmup: warmupFor(o.Duration).String(), Runs: o.Runs, Impair: o.Impair,
			Profile: o.ProfileName, KernelCC: kernelCC(prof), IdleConns: o.IdleConns, MTU: linkMTU,
			Queues: netif.DefaultQueues(),
		},
		Results:           results,
		GVisor:            g,
		GVisorUnsupported: g.Unsupported(),
	}, nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// row is one line of the results table.
type row struct {
	scenario, stack, figure, detail, cpu, retrans, runs, vsGVisor, vsLinux string
}

var tableHeader = row{"scenario", "stack", "figure", "detail", "CPU", "retrans", "runs", "tunstack/gvisor", "tunstack/linux"}

// figures indexes the measured results' figures by scenario and stack.
type figures map[[2]string]*Result

func indexFigures(results []Result) figures {
	f := figures{}
	for i, r := range results {
		if r.Measured() {
			f[[2]string{r.Scenario, r.Stack}] = &results[i]
		}
	}
	return f
}

// metric is a measured result's metric; NaN if there is none.
func (f figures) metric(scenario, stack, key string) float64 {
	if r, ok := f[[2]string{scenario, stack}]; ok {
		if key == "" {
			return r.Value
		}
		if v, ok := r.Metrics[key]; ok {
			return v
		}
	}
	return math.NaN()
}

// ratios are tunstack's figure (or metric) over gVisor's and over Linux's
// in the same scenario, on rows of tunstack and its variants; empty on the
// others.
func (f figures) ratios(r Result, key string) (vsGVisor, vsLinux string) {
	if baseStack(r.Stack) != "tunstack" {
		return "", ""
	}
	v := f.metric(r.Scenario, r.Stack, key)
	return formatRatio(ratio(v, f.metric(r.Scenario, "gvisor", key))),
		formatRatio(ratio(v, f.metric(r.Scenario, "linux", key)))
}

// rows turns results into table rows, in the order given, with the ratios
// on the rows of tunstack and its variants.
func rows(results []Result) []row {
	figs := indexFigures(results)
	var out []row
	for _, r := range results {
		w := row{scenario: r.Scenario, stack: r.Stack}
		switch {
		case r.Skip != "":
			w.figure = "SKIP: " + r.Skip
			out = append(out, w)
			continue
		case !r.Measured():
			w.figure = "FAILED: " + strings.Join(r.Errors, "; ")
			out = append(out, w)
			continue
		}
		w.figure = formatFigure(r.Value, r.Unit)
		w.detail, w.cpu = detailAndCPU(r)
		w.retrans = formatCount(r.Metrics["retrans"])
		w.runs = fmt.Sprint(r.Runs)
		if len(r.Errors) > 0 {
			w.runs = fmt.Sprintf("%d of %d", r.Runs, r.Runs+len(r.Errors))
		}
		w.vsGVisor, w.vsLinux = figs.ratios(r, "")
		out = append(out, w)
	}
	return out
}

// detailAndCPU are the secondary figures of a result and its CPU cost in
// the unit that suits the scenario.
func detailAndCPU(r Result) (detail, cpu string) {
	m := r.Metrics
	has := func(k string) bool { _, ok := m[k]; return ok }
	// A relay scenario's detail is its base scenario's.
	switch strings.TrimPrefix(BaseScenario(r.Scenario), "relay-") {
	case "bulk-down", "bulk-up":
		detail = fmt.Sprintf("device drops %s", formatCount(m["link_drops"]))
		if has("acks_per_mib") {
			detail += fmt.Sprintf("; %s ACKs/MiB", formatNum(m["acks_per_mib"]))
		}
	case "streams":
		detail = fmt.Sprintf("down %s + up %s; device drops %s", formatNum(m["down_gbps"]), formatNum(m["up_gbps"]), formatCount(m["link_drops"]))
	case "rr", "crr":
		detail = fmt.Sprintf("p50 %s µs, p99 %s µs", formatNum(m["p50_us"]), formatNum(m["p99_us"]))
	case "http-load":
		detail = fmt.Sprintf("p50 %s ms, p99 %s ms; client SYN retransmissions %s; device drops %s",
			formatNum(m["p50_ms"]), formatNum(m["p99_ms"]), formatCount(m["syn_retrans"]), formatCount(m["link_drops"]))
	case "idle":
		if baseStack(r.Stack) == "linux" {
			detail = "kernel slab per socket"
		} else {
			detail = fmt.Sprintf("RSS; Go heap %s KiB/conn", formatNum(m["heap_b_per_conn"]/1024))
		}
		detail += fmt.Sprintf("; %s conns", formatCount(m["conns"]))
	case "lossy":
		detail = fmt.Sprintf("link lost %s, queue dropped %s of the stack's packets",
			formatCount(m["link_lost_from_stack"]), formatCount(m["queue_drops_from_stack"]))
	}
	switch {
	case has("cpu_s_per_gb"):
		cpu = formatNum(m["cpu_s_per_gb"]) + " s/GB"
	case has("cpu_us_per_tx"):
		cpu = formatNum(m["cpu_us_per_tx"]) + " µs/tx"
	case has("cpu_us_per_conn"):
		cpu = formatNum(m["cpu_us_per_conn"]) + " µs/conn"
	default:
		cpu = "-"
	}
	return detail, cpu
}

func formatRatio(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return formatNum(v) + "x"
}

func (r row) cells() []string {
	return []string{r.scenario, r.stack, r.figure, r.detail, r.cpu, r.retrans, r.runs, r.vsGVisor, r.vsLinux}
}

// familyHeader and familyRows are the table of IPv6 beside IPv4: one row
// per stack and scenario measured in both families in the same run.
var familyHeader = []string{"scenario", "stack", "IPv4", "IPv6", "IPv6/IPv4"}

func familyRows(results []Result) [][]string {
	figs := indexFigures(results)
	var out [][]string
	for _, r := range results {
		base, fam := splitFamily(r.Scenario)
		if fam != 6 || !r.Measured() {
			continue
		}
		v4, ok := figs[[2]string{base, r.Stack}]
		if !ok {
			continue
		}
		out = append(out, []string{base, r.Stack, formatFigure(v4.Value, v4.Unit), formatFigure(r.Value, r.Unit), formatRatio(ratio(r.Value, v4.Value))})
	}
	return out
}

// ackHeader and ackRows are the table of the ACKs a receiving stack sends:
// one row per stack that ran bulk-up and counted them.
var ackHeader = []string{"stack", "pure ACKs per MiB received", "data segments per ACK", "pure ACKs in the window", "runs", "tunstack/gvisor", "tunstack/linux"}

func ackRows(results []Result) [][]string {
	figs := indexFigures(results)
	var out [][]string
	for _, r := range results {
		if r.Scenario != "bulk-up" || !r.Measured() {
			continue
		}
		if _, ok := r.Metrics["acks_per_mib"]; !ok {
			continue
		}
		vsG, vsL := figs.ratios(r, "acks_per_mib")
		out = append(out, []string{r.Stack, formatNum(r.Metrics["acks_per_mib"]), formatNum(r.Metrics["segs_per_ack"]),
			formatCount(r.Metrics["pure_acks"]), fmt.Sprint(r.Runs), vsG, vsL})
	}
	return out
}

// goodputHeader and goodputRows are the table of lossy's goodput: one row
// per stack and variant, with what it ran.
var goodputHeader = []string{"stack", "congestion control", "SACK", "goodput", "retrans", "RTO timeouts", "lost by the link / dropped by the queue", "CPU", "runs", "tunstack/gvisor", "tunstack/linux"}

func goodputRows(results []Result) [][]string {
	figs := indexFigures(results)
	var out [][]string
	measured := false
	for _, r := range results {
		if r.Scenario != "lossy" {
			continue
		}
		measured = measured || r.Measured()
		cc, sack := r.Congestion, "off"
		switch {
		case cc == "":
			cc, sack = "-", "-" // a report from before the fields existed
		case r.SACK:
			sack = "on"
		}
		w := rows([]Result{r})[0]
		if !r.Measured() {
			out = append(out, []string{r.Stack, cc, sack, w.figure, "", "", "", "", "", "", ""})
			continue
		}
		vsG, vsL := figs.ratios(r, "")
		timeouts := math.NaN() // "-" in reports from before the metric
		if v, ok := r.Metrics["rto_timeouts"]; ok {
			timeouts = v
		}
		out = append(out, []string{r.Stack, cc, sack, w.figure, w.retrans, formatCount(timeouts),
			formatCount(r.Metrics["link_lost_from_stack"]) + " / " + formatCount(r.Metrics["queue_drops_from_stack"]),
			w.cpu, w.runs, vsG, vsL})
	}
	if !measured {
		return nil
	}
	return out
}

// WriteTable writes the results as an aligned text table, followed by the
// ACK table of bulk-up and the goodput table of lossy when they have rows.
func WriteTable(w io.Writer, results []Result) error {
	var all [][]string
	for _, r := range rows(results) {
		all = append(all, r.cells())
	}
	if err := writeTextTable(w, tableHeader.cells(), all); err != nil {
		return err
	}
	if f := familyRows(results); len(f) > 0 {
		fmt.Fprintf(w, "\nIPv6 beside IPv4, same run:\n")
		if err := writeTextTable(w, familyHeader, f); err != nil {
			return err
		}
	}
	if a := ackRows(results); len(a) > 0 {
		fmt.Fprintf(w, "\nPure ACKs the stack sent per MiB it received (bulk-up):\n")
		if err := writeTextTable(w, ackHeader, a); err != nil {
			return err
		}
	}
	if g := goodputRows(results); len(g) > 0 {
		fmt.Fprintf(w, "\nGoodput through the impaired link (lossy):\n")
		if err := writeTextTable(w, goodputHeader, g); err != nil {
			return err
		}
	}
	return writeRelayText(w, results)
}

func writeTextTable(w io.Writer, header []string, body [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range append([][]string{header}, body...) {
		fmt.Fprintf(tw, "%s\n", strings.Join(c, "\t"))
	}
	return tw.Flush()
}

// writeMarkdownTable writes the results as a Markdown table.
func writeMarkdownTable(w io.Writer, results []Result) {
	var body [][]string
	for _, r := range rows(results) {
		body = append(body, r.cells())
	}
	writeMarkdownGrid(w, tableHeader.cells(), body)
}

// writeMarkdownGrid writes a Markdown table, escaping the cells' pipes.
func writeMarkdownGrid(w io.Writer, header []string, body [][]string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat(" --- |", len(header)))
	for _, c := range body {
		c = slices.Clone(c)
		for i := range c {
			c[i] = strings.ReplaceAll(c[i], "|", `\|`)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(c, " | "))
	}
}

// Charts are the plot's panels: throughput per scenario, lossy goodput per
// variant, rr latency percentiles, and the transaction and connection rates.
// stacks are the series, the same in every panel; lossy's groups are the
// variants ("default" for each stack's own settings), each series' bar in
// a group being that stack's variant.
func Charts(results []Result, stacks []string) []BarChart {
	find := func(sc, st string) *Result {
		for i := range results {
			if results[i].Scenario == sc && results[i].Stack == st && results[i].Measured() {
				return &results[i]
			}
		}
		return nil
	}
	panel := func(title, unit string, log bool, groups []string, val func(group, stack string) float64) BarChart {
		c := BarChart{Title: title, Unit: unit, Log: log, Series: stacks}
		for _, g := range groups {
			var vs []float64
			for _, st := range stacks {
				vs = append(vs, val(g, st))
			}
			c.Groups = append(c.Groups, g)
			c.Values = append(c.Values, vs)
		}
		return c
	}
	metric := func(sc, st, key string) float64 {
		if r := find(sc, st); r != nil {
			if v, ok := r.Metrics[key]; ok {
				return v
			}
		}
		return math.NaN()
	}
	throughput := withRelay(results, "bulk-down", "bulk-up", "streams")
	for _, r := range results {
		if _, fam := splitFamily(r.Scenario); fam == 6 && r.Unit == "Gbit/s" && !slices.Contains(throughput, r.Scenario) {
			throughput = append(throughput, r.Scenario)
		}
	}
	return []BarChart{
		panel("Throughput (median of runs)", "Gbit/s", false, throughput,
			func(g, st string) float64 { return metric(g, st, "gbps") }),
		panel("Goodput through the impaired link (lossy), by variant", "Mbit/s", false, lossyGroups(results),
			func(g, st string) float64 {
				if g != "default" {
					st += "/" + g
				}
				return metric("lossy", st, "gbps") * 1000
			}),
		panel("rr latency, 1-byte request/response (log scale)", "µs", true, []string{"p50", "p99"},
			func(g, st string) float64 { return metric("rr", st, g+"_us") }),
		panel("rr: 1-byte transactions per second", "tx/s", false, []string{"rr"},
			func(g, st string) float64 { return metric("rr", st, "tps") }),
		panel("crr: connections per second (connect, request, response, close)", "conn/s", false, withRelay(results, "crr"),
			func(g, st string) float64 { return metric(g, st, "cps") }),
	}
}

// lossyGroups are the variants lossy ran, in the order of the results:
// "default" for the stacks' own settings, then "reno", "cubic-nosack"...
func lossyGroups(results []Result) []string {
	groups := []string{"default"}
	for _, r := range results {
		if r.Scenario != "lossy" {
			continue
		}
		if _, v, ok := strings.Cut(r.Stack, "/"); ok && !slices.Contains(groups, v) {
			groups = append(groups, v)
		}
	}
	return groups
}

// WriteMarkdown renders the report as docs/performance.md. plotName is the
// SVG's path relative to the document ("" for none); summaryDir the
// relative directory of the profile summaries.
func (r *Report) WriteMarkdown(w io.Writer, plotName, summaryDir string) {
	s := r.Settings
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# Performance\n\n")
	p("Generated by `make bench` (`tunstack bench`) on %s; do not edit by hand, run `sudo make bench` again.\n", r.Date)
	p("Numbers from a shared or busy machine are noisy: read the load averages below before the figures.\n\n")

	p("## Machine\n\n")
	m := r.Machine
	p("| | |\n| --- | --- |\n")
	p("| CPU | %s |\n| cores | %d |\n| memory | %s |\n| kernel | %s |\n| Go | %s |\n", m.CPUModel, m.Cores, m.MemTotal, m.Kernel, m.GoVersion)
	p("| load average (1, 5, 15 min) before | %s |\n| load average after | %s |\n\n", m.LoadBefore, m.LoadAfter)

	p("## Results\n\n")
	p("Each figure is the median of %d runs (the runs column says how many succeeded); every metric is its own median. ", s.Runs)
	p("Each run builds its namespaces, link and stack afresh, warms up for %s, then measures a window of %s (lossy: %s). ", s.Warmup, s.Duration, s.LossyDuration)
	p("Runs of the stacks are interleaved, so a burst of load elsewhere does not fall on one stack only. ")
	p("Ratios are tunstack's figure over the other's: above 1 is better for rates and throughput, worse for idle's memory.\n\n")
	writeMarkdownTable(w, r.Results)
	p("\n")
	if plotName != "" {
		p("![throughput, goodput, latency and rates per stack](%s)\n\n", plotName)
	}
	writeTargetsMarkdown(w, r.Results)
	if f := familyRows(r.Results); len(f) > 0 {
		p("### IPv6 beside IPv4\n\n")
		p("The scenarios measured in both families in this run: the -v6 rows above are the same scenario with every connection over IPv6, ")
		p("the stack at %s and the kernel peer at %s on the same link (its IPv4 addresses stay on it, unused), ", serverAddr6, peerAddr6)
		p("so each segment carries a 40-byte IPv6 header instead of a 20-byte IPv4 one and its MSS is 20 bytes smaller (1428 instead of 1448 with timestamps). ")
		p("The two families' runs are interleaved (run 1 over IPv4 on every stack, then run 1 over IPv6, then run 2...), so the ratio compares runs taken moments apart on the same loaded machine.\n\n")
		writeMarkdownGrid(w, familyHeader, f)
		p("\n")
	}
	if a := ackRows(r.Results); len(a) > 0 {
		p("### ACKs sent per MiB received (bulk-up)\n\n")
		p("The pure ACKs (ACK set, no payload, no SYN, FIN or RST) the stack under test sent during bulk-up's window, per MiB its reader received in the same window, ")
		p("and the data segments that reached it per ACK: 2 is an ACK for every second full-sized segment (RFC 1122 §4.2.3.2, RFC 5681 §4.2), 1 an ACK for each. ")
		p("A stack that acknowledges every segment sends about twice the ACKs of one that delays them; gVisor, which has no delayed-ACK timer, sends one ACK for each batch of segments it processes (gvisorstack hands it up to 64 packets per TUN read), so the faster the packets come, the fewer ACKs it sends. ")
		p("tunstack and gVisor are counted on the stack's side of the link; linux from the kernel's own counters, and its veth moves GSO batches of many segments whole, each answered as one (see below). ")
		p("Ratios are tunstack's count over the other's: below 1, tunstack sends fewer ACKs.\n\n")
		writeMarkdownGrid(w, ackHeader, a)
		p("\n")
	}
	if g := goodputRows(r.Results); len(g) > 0 {
		p("### Goodput through the impaired link (lossy)\n\n")
		p("lossy (`%s`, a window of %s) on every stack, and on tunstack and gVisor variants that change only the congestion control and SACK, all in the same run. ", s.Impair, s.LossyDuration)
		if prof, err := policy.ByName(s.Profile); err == nil && prof.RACK {
			p("With the %q profile tunstack recovers as Linux whatever the controller: RACK (RFC 8985) detects losses with SACK, NewReno (RFC 6582) without, so reno and newreno behave alike. ", s.Profile)
		} else {
			p("With SACK, tunstack recovers by RFC 6675 whatever the controller, so reno and newreno differ only without SACK, where Reno leaves recovery at the first partial ACK and NewReno (RFC 6582) stays in it. ")
		}
		p("gVisor's reno is NewReno-style recovery, with SACK RFC 6675; RACK-TLP is off, since with it this gVisor version can stop retransmitting a lost tail for good (docs/gvisor.md). ")
		p("The kernel peer receives with TCP_CONGESTION=%s whatever the stack under test sends with.\n\n", s.KernelCC)
		writeMarkdownGrid(w, goodputHeader, g)
		p("\n")
	}
	writeRelayMarkdown(w, r.Results)

	p("## How to run\n\n")
	p("`sudo make bench` runs the micro-benchmarks and then `tunstack bench --duration 5s --runs 3` on every stack and scenario with tunstack profiled, ")
	p("and rewrites this file, perf/bench.svg, perf/bench.json and the profile summaries in perf/; about 19 minutes on 2 cores ")
	p("(per stack and run: seven timed scenarios of 0.5 s warm-up + 5 s, bulk-down and bulk-up over IPv4 and over IPv6 among them, lossy 0.5 s + 10 s, idle a few seconds, the relay's three timed scenarios 0.5 s + 5 s and relay-idle some seconds more; lossy also on the %d variants; plus the profiled runs (CPU and allocations of seven scenarios, CPU of two more, a trace of rr) and the micro-benchmarks; under the 20 minutes allowed). ", len(DefaultLossyVariants()))
	p("`--family 4|6|both` runs the chosen scenarios in one family or both: `sudo tunstack bench --scenario bulk-down,bulk-up --family both` is the IPv6 table alone. ")
	p("One figure by hand: `sudo tunstack bench --stack tunstack,linux --scenario rr --runs 5`; ")
	p("the goodput table alone: `sudo tunstack bench --scenario lossy` (without --stack, lossy runs on the variants too; with it, on the stacks listed, as in `--stack tunstack/reno-nosack,gvisor/reno`); ")
	p("`--json` prints this report's data; `tunstack bench --help` lists the flags.\n\n")
	p("## What is measured\n\n")
	p("Topology: tunstack and gVisor run in this process on a TUN device (MTU %d) created inside a network namespace of their own; ", s.MTU)
	p("the kernel side of the TUN (198.18.0.1) is the peer, the stack 198.18.0.2. ")
	if s.Queues > 0 {
		p("tunstack runs as `tunstack serve` does by default, on a TUN of %d queues with an engine shard on each (one per CPU: netif.DefaultQueues), except on lossy's impaired link and behind the relay's frontend, which are one link, and where a label tunstack/qN says N; gVisor runs on one queue. ", s.Queues)
	}
	p("The TUN carries virtio-net headers: in each batch a stack writes, a run of TCP segments of one flow that the kernel can split back exactly (same headers and options, contiguous, PSH only on the last) goes as one GSO packet in one writev, which the kernel peer takes whole as it would a GRO batch; the device also offers TSO, so the kernel peer sends it TSO packets of up to 64 KiB, each read whole: tunstack takes one through the descriptor seam as one GRO unit, the checksum the kernel left partial not verified (netif/desc.go, tcpcore.InputGRO); gVisor's link cuts it back into segments first (netif/tun_gso.go). ")
	if prof, err := policy.ByName(s.Profile); err == nil && prof.PushEverySegments > 0 {
		p("A run ends at a segment with PSH; the %q profile sets PSH at the end of each chunk of a burst sized as Linux sizes its TSO chunks (tcp_tso_autosize: a whole 64 KiB on this sub-millisecond path, at least %d segments), so tunstack's runs reach about 44 segments. ", s.Profile, prof.PushEverySegments)
	}
	p("linux is kernel to kernel: two namespaces joined by a veth pair (MTU %d; the veth keeps its default offloads, so Linux moves GSO batches internally — the ceiling, not a like-for-like path). ", s.MTU)
	p("For lossy, linux instead runs through two TUN devices joined by a relay in this process, with the same impairment code as the others (this kernel has no netem). ")
	p("The peer is always kernel TCP driven by Go code in this process (`ns.Do`); the server side of every connection is the stack under test. ")
	p("Every kernel socket uses TCP_CONGESTION=%s (set per socket: the machine default may differ, e.g. BBR). ", s.KernelCC)
	p("tunstack and gVisor run the %q policy profile.\n\n", s.Profile)
	for _, name := range s.Scenarios {
		p("- **%s** (%s): %s.\n", name, lookupScenario(name).unit, ScenarioAbout(name))
	}
	p("\nColumns:\n\n")
	p("- **CPU**: process CPU time (getrusage RUSAGE_SELF, user + system) during the window, per GB moved (bulk), per transaction (rr) or per connection (crr). ")
	p("The whole process counts: for tunstack and gVisor that is the stack, the TUN system calls, the kernel peer's TCP and the Go code on both sides; ")
	p("for linux both kernels' TCP as far as it runs in this process's threads (system calls and the softirqs they trigger on the veth) and the Go code. ")
	p("Softirq work the kernel defers to ksoftirqd is not counted for any stack. ")
	switch r.Machine.IRQTimeAccounting {
	case "n":
		p("This kernel has no CONFIG_IRQ_TIME_ACCOUNTING, so softirq work run in one of this process's threads is charged to it as system time.\n")
	case "":
		p("Whether softirq time is charged to the process depends on CONFIG_IRQ_TIME_ACCOUNTING, which could not be read here.\n")
	default:
		p("This kernel has CONFIG_IRQ_TIME_ACCOUNTING, so softirq work is accounted apart and is not in the process's system time: linux's CPU figure leaves out most of the kernels' receive processing.\n")
	}
	p("- **device drops** (bulk and streams): packets the kernel's devices on the path dropped during the window (tx_dropped + rx_dropped of the TUN, or of both veth ends / both TUNs for linux). ")
	p("On a TUN, tx_dropped is the kernel finding the queue toward the user-space stack full (txqueuelen %d, netif.DefaultTxQueueLen): the stack did not read fast enough.\n", netif.DefaultTxQueueLen)
	p("- **ACKs/MiB** (bulk-up): pure ACKs the stack under test sent during the window per MiB its reader received in it. ")
	p("tunstack and gVisor: counted by a wrapper between the stack and its link (the TUN), which reads each packet's IPv4 and TCP headers: ACKs the stack wrote, data segments it read; exact, at a cost of a few nanoseconds a packet, in every scenario. ")
	p("linux: the server namespace's OutSegs less TCPOrigDataSent and OutRsts (/proc/net/snmp and /proc/net/netstat): Linux counts in OutSegs every segment with new data or with no sequence space (a pure ACK), not retransmissions, so the difference is exactly its pure ACKs; ")
	p("its data segments are the peer namespace's TCPOrigDataSent plus RetransSegs, in MSS-sized segments. ")
	p("Over the veth the peer's GSO batches of tens of segments arrive whole, and Linux acknowledges such a batch, or the data its reader has just taken, with one ACK, so its count says little about a wire that carries segments one by one.\n")
	p("- **variants** (lossy): a label `STACK/CC` or `STACK/CC-nosack` runs STACK with the profile's congestion control replaced by CC (tunstack: reno, newreno, cubic, tahoe; gVisor: reno, cubic) and, with -nosack, SACK off. ")
	p("Without --stack, lossy runs %s besides the three stacks.\n", strings.Join(DefaultLossyVariants(), ", "))
	p("- **RTO timeouts** (lossy): how many times the stack under test's retransmission timer expired during the window: tunstack `Conn.Info().Counters.Timeouts` of its connections, gVisor `Stats().Timeouts`, linux `TCPTimeouts` of /proc/net/netstat in the server namespace. Each timeout retransmits at least one segment; the other retransmissions come from fast recovery (duplicate ACKs, SACK) and tail-loss probes.\n")
	p("- **retrans**: segments the stack under test retransmitted during the window: tunstack `Stack.Stats().RetransSegs`, gVisor `Stats().Retransmits`, linux `RetransSegs` of /proc/net/snmp in the server namespace.\n")
	p("- **idle memory**: tunstack and gVisor: growth of the process's resident set (VmRSS) per connection after `runtime.GC` and `debug.FreeOSMemory`, with the live Go heap growth (HeapAlloc) in the detail; the peer's sockets are bare descriptors, so nothing of them is in the process. ")
	p("linux: half the growth of the slab caches %s (both ends are kernel sockets), per connection (TCPv6 in place of TCP over IPv6); slab memory is machine-wide, so other work on the machine shows in it. ", strings.Join(socketSlabs, ", "))
	p("The JSON also has the change in the TCP `mem` pages of /proc/net/sockstat (socket buffer memory, machine-wide, so mostly other work's; idle sockets hold none). Kernel memory of the peer sockets is not counted for any stack. If the process may not hold enough descriptors (linux needs two per connection, and a container's root may be unable to raise the hard RLIMIT_NOFILE), idle opens as many connections as fit; the detail says how many.\n")
	p("- **lossy**: impairment `%s` (both directions; delay applies each way, so the RTT is twice the delay). The detail counts the stack's packets the link lost and the bottleneck queue dropped during the window. Run n uses the SPEC's seed plus n-1, the same for every stack, so the median covers as many loss patterns as there are runs.\n\n", s.Impair)

	p("## gVisor options\n\n")
	p("`gvisorstack.OptionsFromProfile` of the %q profile, with `ZeroWindowACKRepair` on; docs/gvisor.md maps each field to gVisor's option.\n\n", s.Profile)
	p("| field | value |\n| --- | --- |\n")
	v := reflect.ValueOf(r.GVisor)
	for i := range v.NumField() {
		p("| %s | %v |\n", v.Type().Field(i).Name, v.Field(i).Interface())
	}
	if len(r.GVisorUnsupported) > 0 {
		p("\ngVisor cannot follow: %s.\n", strings.Join(r.GVisorUnsupported, "; "))
	}
	p("\n")

	if len(r.Micro) > 0 {
		p("## Micro-benchmarks\n\n")
		p("`go test -run '^$' -bench . -benchmem ./tcpcore/... ./netif/... ./congestion/...`, one run each at the default benchtime.\n\n")
		p("| package | benchmark | ns/op | MB/s | B/op | allocs/op |\n| --- | --- | ---: | ---: | ---: | ---: |\n")
		opt := func(v float64) string {
			if v < 0 {
				return ""
			}
			return formatNum(v)
		}
		for _, b := range r.Micro {
			p("| %s | %s | %s | %s | %s | %s |\n", b.Package, b.Name, formatNum(b.NsPerOp), opt(b.MBPerSec), opt(b.BytesPerOp), opt(b.AllocsPerOp))
		}
		p("\n")
	}

	if len(r.Profiles) > 0 {
		p("## Profiles of tunstack\n\n")
		p("Two extra runs of each scenario below, after the measured ones: one takes the CPU profile over its window, the other the allocations made during its window ")
		p("(the allocs profile at its end minus the one at its start, each after a GC so that it is up to date). ")
		p("Views: cpu by flat time (the whole process, the kernel peer's work included); cpu_cum by cumulative time over the project's packages only, so system calls are charged to the stack code that made them; ")
		p("alloc_space and alloc_objects by flat value (sampled every 4 KiB during that run; with the start as pprof's diff base, the percentages are of the base's total, so read the absolute figures). ")
		p("For rr, a third run is traced with runtime/trace, and sched is the trace's scheduler latency (`go tool trace -pprof=sched`): the time goroutines spent runnable but not running, by the stack that made them runnable. ")
		p("The top entries are here; the longer lists are in %s, the raw profiles where `--profile-dir` put them ", summaryDir)
		p("(`go tool pprof -http=: FILE`).\n\n")
		if slices.ContainsFunc(r.Profiles, func(ps ProfileSummary) bool { return ps.Scenario == "rr" && ps.Err == "" }) {
			writeRRTail(p)
		}
		for _, ps := range r.Profiles {
			p("### %s, %s\n\n", ps.Scenario, ps.Kind)
			if ps.Err != "" {
				p("Not summarized: %s\n\n", ps.Err)
				continue
			}
			n := map[string]int{"cpu": 12, "cpu_cum": 15}[ps.Kind]
			if n == 0 {
				n = 8
			}
			p("```\n%s\n```\n\n", strings.Join(headLines(ps.Lines, n), "\n"))
		}
	}
}

// writeRRTail is what rr's profiles and trace showed when its tail was
// studied, and how to read them again.
func writeRRTail(p func(string, ...any)) {
	p("### Where rr's tail goes\n\n")
	p("A transaction crosses tunstack's goroutines twice. The kernel writes the request to the TUN and the poller wakes the link reader, which runs the engine under the stack's lock and wakes the application's goroutine blocked in Read (`notifier.Wake`); ")
	p("that goroutine writes the reply into the engine and, finding no other writer, writes it to the TUN itself once it has released the lock (`unlockFlush`), and the kernel delivers it to the client inside that write(2). ")
	p("Linux does the same work in one softirq and one wake-up of the client. ")
	p("When the tail was studied (runs of 3 s on 2 loaded cores), rr's cpu view was two thirds system calls (the TUN's read and write, each running the kernel peer's TCP as well) and the engine a few percent. ")
	p("Its trace showed the reader making three `readv` calls on the TUN per transaction: the one that brings the request, the one that finds the queue empty and ends the batch, and one more that finds it empty before the reader parks, which cannot be skipped because Go's poller forgets a readiness between two `RawConn.Read` calls; the application's goroutine makes one `writev`, inside which the kernel delivers the reply to the client. ")
	p("Now a read that had to wait returns with the packet that woke it, so the reader runs the engine and wakes the application's goroutine straight after the request's `readv`, and the empty read that ended the batch is gone: two `readv` per transaction (counted with `strace -c`: 2.97 before, 1.99 after), the other empty one still made before the reader parks. ")
	p("Its sched view charged most of the goroutines' waiting for a core (85%%) to `notifier.Wake`: the application's goroutine, woken by the reader, waits until the reader has finished its batch and parked. ")
	p("Two ways of shortening that wait measured no change in p50 (22.5 µs either way, Linux 16 µs) and are not in the code: sending the wakeup only once the reader has released the stack's lock, and yielding the reader's core to the woken goroutine after a batch that emptied the queue. ")
	p("Its allocation views had no steady-state source in the stack: a transaction allocates nothing (`BenchmarkPipeRR`, 0 allocations per transaction), a socket's notifier reusing one channel where a blocking Read once made one per wait. ")
	p("On 2 cores shared by the kernel client, the reader and the application, each hand-off may wait for a core, which is where the p99 goes; cutting one more hand-off means running the application's Read on the goroutine that reads the link, which this design does not do yet. ")
	p("The views below are this run's: read them for whether that still holds.\n\n")
}

// headLines keeps pprof's header lines and the first n rows of its table.
func headLines(lines []string, n int) []string {
	var out []string
	rowsSeen := -1
	for _, l := range lines {
		if rowsSeen >= 0 {
			rowsSeen++
			if rowsSeen > n {
				break
			}
		}
		out = append(out, l)
		if strings.Contains(l, "flat%") {
			rowsSeen = 0
		}
	}
	return out
}

// WriteReportFiles writes the report as Markdown to path, and to perf/
// beside it the plot (bench.svg), the report as JSON (bench.json) and the
// profile summaries.
func WriteReportFiles(r *Report, path string) error {
	perf := filepath.Join(filepath.Dir(path), "perf")
	if err := os.MkdirAll(perf, 0o755); err != nil {
		return err
	}
	var svg bytes.Buffer
	title := fmt.Sprintf("tunstack bench, %s, %d cores, median of %d run(s) each", r.Date, r.Machine.Cores, r.Settings.Runs)
	if err := WriteSVG(&svg, title, Charts(r.Results, r.Settings.Stacks)); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(perf, "bench.svg"), svg.Bytes(), 0o644); err != nil {
		return err
	}
	if _, err := writeProfileSummaries(perf, r.Profiles); err != nil {
		return err
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(perf, "bench.json"), js.Bytes(), 0o644); err != nil {
		return err
	}
	var md bytes.Buffer
	r.WriteMarkdown(&md, "perf/bench.svg", "perf/")
	return os.WriteFile(path, md.Bytes(), 0o644)
}
