package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// A target is one figure tunstack is held to against Linux on the same
// link in the same run: a rate at least some fraction of Linux's, a cost
// (latency, memory) at most some multiple of it, a count that must be
// zero, or streams' two directions within a factor of each other.
type target struct {
	scenario string
	what     string // the target as the report states it
	// judge returns tunstack's and Linux's figures as the table shows
	// them, the ratio the target is on (NaN if there is none), and whether
	// it is met; ok is false when a figure it needs was not measured.
	judge func(f figures) (tun, lin string, r float64, met, ok bool)
}

// atLeast is a target of key (the scenario's figure if "") at least k
// times Linux's; atMost at most k times Linux's.
func atLeast(scenario, key, what string, k float64) target {
	return ratioTarget(scenario, key, what, k, true)
}

func atMost(scenario, key, what string, k float64) target {
	return ratioTarget(scenario, key, what, k, false)
}

func ratioTarget(scenario, key, what string, k float64, higher bool) target {
	return target{scenario: scenario, what: what, judge: func(f figures) (string, string, float64, bool, bool) {
		t, l := f.metric(scenario, "tunstack", key), f.metric(scenario, "linux", key)
		if math.IsNaN(t) || math.IsNaN(l) {
			return "", "", math.NaN(), false, false
		}
		r := ratio(t, l)
		met := r >= k
		if !higher {
			met = r <= k
		}
		return formatNum(t), formatNum(l), r, met, true
	}}
}

// zero is a target of a count that must be zero on tunstack.
func zero(scenario, key, what string) target {
	return target{scenario: scenario, what: what, judge: func(f figures) (string, string, float64, bool, bool) {
		t := f.metric(scenario, "tunstack", key)
		if math.IsNaN(t) {
			return "", "", math.NaN(), false, false
		}
		lin := ""
		if l := f.metric(scenario, "linux", key); !math.IsNaN(l) {
			lin = formatCount(l)
		}
		return formatCount(t), lin, math.NaN(), t == 0, true
	}}
}

// balanced is streams' target that neither direction take more than k
// times the other's share; the ratio shown is the larger over the smaller.
func balanced(scenario, what string, k float64) target {
	return target{scenario: scenario, what: what, judge: func(f figures) (string, string, float64, bool, bool) {
		share := func(stack string) (string, float64) {
			d, u := f.metric(scenario, stack, "down_gbps"), f.metric(scenario, stack, "up_gbps")
			if math.IsNaN(d) || math.IsNaN(u) {
				return "", math.NaN()
			}
			return fmt.Sprintf("down %s + up %s", formatNum(d), formatNum(u)), ratio(max(d, u), min(d, u))
		}
		t, r := share("tunstack")
		if math.IsNaN(r) {
			return "", "", math.NaN(), false, false
		}
		l, _ := share("linux")
		return t, l, r, r <= k, true
	}}
}

// linuxTargets are the figures tunstack is held to against Linux, in the
// report's order.
var linuxTargets = []target{
	atLeast("bulk-down", "", "≥ 0.5x Linux's throughput", 0.5),
	atLeast("bulk-up", "", "≥ 0.5x Linux's throughput", 0.5),
	atLeast("streams", "", "≥ 0.5x Linux's throughput", 0.5),
	balanced("streams", "up and down within 2x of each other", 2),
	atLeast("rr", "", "≥ 0.8x Linux's transactions/s", 0.8),
	atMost("rr", "p99_us", "p99 ≤ 2x Linux's", 2),
	atLeast("crr", "", "≥ 1x Linux's connections/s", 1),
	atLeast("http-load", "", "≥ 0.9x Linux's requests/s", 0.9),
	atMost("http-load", "p99_ms", "p99 ≤ 2x Linux's", 2),
	zero("http-load", "syn_retrans", "0 client SYN retransmissions"),
	zero("http-load", "link_drops", "0 TUN drops"),
	atMost("idle", "", "≤ 0.5x Linux's memory per connection", 0.5),
}

var targetHeader = []string{"scenario", "target", "tunstack", "linux", "ratio", "verdict"}

// targetRows are the targets whose scenario was measured on tunstack, with
// their verdicts, and the scenarios below a target in the order they
// first fall short.
func targetRows(results []Result) (rows [][]string, short []string) {
	f := indexFigures(results)
	for _, t := range linuxTargets {
		tun, lin, r, met, ok := t.judge(f)
		if !ok {
			if _, measured := f[[2]string{t.scenario, "tunstack"}]; !measured {
				continue
			}
			rows = append(rows, []string{t.scenario, t.what, "", "", "", "not measured"})
			continue
		}
		verdict := "met"
		if !met {
			verdict = "NOT met"
			if !slices.Contains(short, t.scenario) {
				short = append(short, t.scenario)
			}
		}
		rows = append(rows, []string{t.scenario, t.what, tun, lin, formatRatio(r), verdict})
	}
	return rows, short
}

// writeTargetsMarkdown writes the targets against Linux, and under them,
// for each scenario below one, what its study found in the way.
func writeTargetsMarkdown(w io.Writer, results []Result) {
	rows, short := targetRows(results)
	if len(rows) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("### Against Linux\n\n")
	p("What tunstack is held to against Linux on the same link, from this run's medians: rates at least a fraction of Linux's, latency and memory at most a multiple of it, the HTTP load's client SYN retransmissions and TUN drops zero. ")
	p("ratio is tunstack's over Linux's (for streams' directions, the larger over the smaller).\n\n")
	writeMarkdownGrid(w, targetHeader, rows)
	p("\n")
	for _, sc := range short {
		p("**%s, below target.** %s\n\n", sc, shortfallText(sc))
	}
}

// shortfallText is what the study of a scenario's shortfall found in the
// way, with the figures it saw then; each points at the profile views this
// run took, which say whether it still holds.
func shortfallText(scenario string) string {
	if t, ok := shortfalls[scenario]; ok {
		return t
	}
	return "No study of this shortfall is recorded yet: read its profile views below, if it has them."
}

var shortfalls = map[string]string{
	"bulk-down": strings.Join([]string{
		"Linux here is kernel to kernel over a veth that hands 64 KiB GSO batches from one socket to the other; each of tunstack's bytes crosses the TUN device, written by a system call that copies it and runs the kernel peer's receive.",
		"In the CPU profile (bulk-down, cpu and cpu_cum below) nearly two thirds of the time is system calls: the TUN write of each GSO packet (27% of the process) and the reads of the ACKs (10%); the application's Write copying into the send ring is 8%. The engine's own work is a few percent since it sends a run of full segments that continue a GSO packet at once (sendRun); sending each of a packet's 44 segments one at a time had taken about 15% of the process (alternating 3 s runs, 2026-12-04: 29.6 to 31.4 Gbit/s with runs against 25.6 to 28.8 without). CPU per GB is about 2.3x Linux's (0.365 against 0.157 s/GB in the run studied, 2026-12-04).",
		"On the machine of an earlier run, where Linux measured 29.8 Gbit/s, the same path's 20.9 was 0.70x; on this one Linux measured 74.3 in one make bench and 56.9 in the next (2026-12-04), and one run differs from the next by up to 1.5x on every stack (tunstack 28.0, 27.1, 39.5 Gbit/s in the first; 25.0, 21.1, 21.7 in the second, where alternating 3 s runs just after measured 29.0 to 29.4 for this code and 25.5 to 28.9 for the code before the day's changes).",
		"A machine-wide profile (`perf record -a`) of a run at 27.7 Gbit/s had nearly half of the two cores idle: the path is latency-bound, each stage (the application's Write, the TUN write that runs the client's receive, the client's read and its window update, the reader taking in the ACK) waiting for another, not one core at full speed.",
	}, " "),
	"bulk-up": strings.Join([]string{
		"In the eight make bench runs of 2026-12-04 it measured 0.52x, 0.514x, 0.485x, 0.493x, 0.51x, 0.46x, 0.468x and 0.503x of Linux's (27.2 of 52.2, 29.5 of 57.3, 28.2 of 58.1, 28.3 of 57.5, 24.4 of 47.9, 26.0 of 56.5, 28.5 of 60.9, 26.6 of 52.8 Gbit/s): at the target's edge, within the spread of the runs, so whether a run meets it is the machine's draw (Linux's own three runs in the last were 56.5, 76.7 and 53.1); later the same day both ran faster (38.9 against 76.9 in one pair of 3 s runs, 0.506x), the ratio unchanged. On the machine of the evening's make bench (an Intel Xeon guest where every stack ran faster, Linux's rr 3.6 times as fast) it measured 0.489x (26.2 of 53.7).",
		"The link reader's goroutine takes in every segment and runs the engine for it (readLoop, 60% of the process cumulative in the profile, bulk-up cpu_cum below): one core's work, with the process at about 1.1 cores, where Linux's receive runs in softirq beside the reading thread.",
		"Of the time, 48% is system calls (the TUN reads of the kernel's TSO packets 23%, the rest the peer's socket writes) and 13% memmove: the payload copied once into the receive ring and once out of it by the application's Read.",
		"A machine-wide profile of a run at 27 Gbit/s (`perf record -a`, 2026-12-04) had a third of the two cores idle and the rest led by copying: the kernel's copy of each TSO packet to the reader 6%, of the client's writes 4%, memmove into the receive ring and out of it 8%; a GRO unit's later segments no longer run the ACK processing (quietRepeat), yet 7% falls on one store in the window update, which waits there for the stores of the payload copied before it: the receive ring, megabytes large, is written where the cache does not hold it.",
		"The kernel sender's tcp_info at the end of such runs: a congestion window of about 3,000 segments, limited by tunstack's window 5 to 10% of the time and by its own send buffer 3 to 8%, 4 MB in flight over an RTT of 0.87 ms, the time the data waits in the TUN's queue and the reader; so the pipeline, not one stage at full speed, sets the rate, and reading larger batches from the TUN (16 TSO packets instead of 4) measured the same (27.0 to 27.5 Gbit/s against 27.5 to 27.8).",
		"The stall after the copy into the ring lands on whichever stores come next: in the fourth run's profile 12% of the process on the send check's look at the controller's initial window (ccState, bulk-up cpu below), which copies a small struct on the stack. Three experiments measured the same, so none is in the code (alternating 3 s runs, 2026-12-04): skipping the send check's windows when there is nothing to send (27.6, 25.5, 26.0 Gbit/s against 27.7, 24.8, 25.3: the stall moves to the next stores); a receive buffer of at most 1 or 2 MiB instead of 6, so that the ring's memory stays closer to the cache (27.5 and 28.0, 27.7 and 28.1, against 28.2 and 27.9); and handing the ACK writes of a batch that held a TSO packet to a goroutine of their own, so that the kernel sender's work each ACK sets off runs beside the reader (38.5, 38.5, 38.1 against 38.8, 37.9, 37.1, on the machine at its faster).",
	}, " "),
	"streams": strings.Join([]string{
		"Eight connections each way share the engine shards, one per CPU and TUN queue (two here: netif.DefaultQueues), each connection on the one whose queue the kernel steers it to; the directions are even (9.84 down and 11.9 up when studied, where the upload once fell to a tenth of the download), and the total is what falls short.",
		"On one engine and one queue (`--stack tunstack/q1`) streams measured 29.7 and 30.2 Gbit/s against 43.6 and 42.7 on two (alternating 3 s runs, 2026-12-04), which is why two shards are the default on 2 CPUs since then; the study below was of one engine.",
		"In the CPU profile (streams, cpu below) about half the process's time is system calls (the TUN's read and write, inside which the kernel peer's TCP also runs, and the peer's own socket calls), a fifth is memmove (an application's Write copied into the send ring, received payload copied into the receive ring and out again on Read), and the engine's own logic around a tenth; reallocating the rings each time auto-tuning raised a buffer's limit took another 7% until the rings were made to double instead.",
		"CPU per GB is about 1.7x Linux's (the CPU column: it counts the kernel peer's work done in this process too), and the process kept about 1.5 of the 2 cores busy (rate times CPU per GB) where Linux kept both; a runtime trace of a 3 s window (on a loaded machine) had the 16 application goroutines blocked on the stack's one lock for 6.5 s in all, the lock under which the reader takes in both directions' segments and each Write copies into its send ring: two TUN queues with an engine shard and a lock each (`--stack tunstack/q2`) measured no better then (17.3 against 18.0 Gbit/s, one run each on a loaded machine), a single pair of runs that misled: in alternating runs they measured 44% better than one engine, on the code before the bulk writer (stack/flush.go) as after it (47.4 and 47.5 Gbit/s before, 44.7 and 45.7 after, 2026-12-04). A machine-wide profile (`perf record -a`, 2026-12-04, a run at 31.3 Gbit/s) had a quarter of the two cores idle and 31% of them copying (memmove 10.6%, the kernel's copies from and to user memory 10% each); copying the application's bytes outside the stack's lock (into lent room of the send ring, out of a peeked span of the receive ring) measured no better (median 35.2 against 34.8 Gbit/s in six alternating runs) and bulk-up worse, so it is not in the code.",
	}, " "),
	"rr": strings.Join([]string{
		"See \"Where rr's tail goes\" below: each transaction crosses two goroutine hand-offs on 2 cores shared with the kernel client, where Linux does the work in one softirq and one wake-up.",
		"On the AMD EPYC guest of the afternoon its p99 sat at the target's edge: within 2x of Linux's in two make bench runs of 2026-12-04 (72.6 against 46.4 µs, 1.56x; 79.9 against 40.5, 1.97x) and not in two others (77.7 against 37.5, 2.07x; 85.5 against 42.5, 2.01x); on two engine shards, the default since then, alternating 3 s runs had the p99 at 77.5 and 75.7 µs against 74.0 and 72.9 on one. On the Intel Xeon guest of the evening's make bench, whose system calls cost about half as much, Linux's p99 fell to 15.1 µs and its rate rose 3.6 times, tunstack's p99 only to 71.5 µs (4.74x) and its rate 3 times (0.495x). There the second processor of Go's runtime is what costs: the same binary run with GOMAXPROCS=1 (the benchmark's client, the stack and the server on one P) measured 150,194 and 155,727 tx/s, p99 16.9 and 16.5 µs (0.834x and 0.851x of Linux's rate, which GOMAXPROCS does not change), against 87,524 and 84,123 tx/s, p99 70.3 and 79.4 µs with two, in alternating 3 s runs (2026-12-04), and twice the CPU per transaction (12.4 against 6.5 µs); crr and relay-crr measured the same either way. Counted with `strace -c` on two Ps, each transaction made about one futex call and 0.85 nanosleep, the runtime waking its other thread to run a goroutine just made ready and that thread waiting to steal it, on a guest that halts an idle vCPU at once (haltpoll's guest_halt_poll_ns is 0); which hand-off the tail waits on was not established.",
		"This machine is a virtual one, where waking an idle core costs more than on bare metal; yet polling the TUN instead of parking for 50 µs after each packet (the way SO_BUSY_POLL spares the kernel a wake-up) measured no better in alternating runs (31,688 and 29,487 tx/s against 30,834 and 31,402) and cost crr a quarter to a third of its rate (5,926 and 5,910 against 8,731 and 7,763 conn/s), the polling goroutine taking the core the others needed, so it is not in the code. Nor is waiting for the TUN in ppoll(2) on the reader's own thread (with an eventfd to wake it for timers and Close) instead of parking the reader's goroutine in Go's poller, which spares the empty read and the poller's epoll_wait per wake-up: in alternating runs of 3 s (2026-12-04) rr measured 24,035 and 30,806 tx/s against 34,665 and 31,576, crr 4,907 and 5,491 conn/s against 9,285 and 7,984; the likely cost, not studied further, is that a thread blocked in a system call keeps one of the runtime's two processors until the scheduler's monitor takes it back, so that the goroutines the reader wakes wait for a core.",
	}, " "),
	"crr": strings.Join([]string{
		"crr runs one connection at a time, so its rate is the inverse of a connection's latency (p50 103 µs against Linux's 86.5 µs in the run studied, 2026-12-04).",
		"In the CPU profile (crr, cpu and cpu_cum below) two thirds of the time is system calls: the link reader's TUN reads and the engine work they drive (33% cumulative), the TUN writes (16%: the SYN-ACK, the reply, the FIN and the last ACK each written as it happens, the kernel peer's TCP running inside each) and the client's own connect, write, read and close (23%); the engine's handshake, accept and close are a few percent.",
		"What is in the way is a system call for every segment each way, where kernel-to-kernel TCP hands a segment to its peer inside the sender's own call, and the hand-off from the link's reader to the serving goroutine for the SYN, the request and the FIN.",
		"Since 2026-12-04 the engine acknowledges the client's bare FIN as Linux does, through the delayed-ACK timer (Linux's tcp_fin enters delayed-ACK mode on any FIN), so the server's close carries the ACK and each connection writes one segment less to the TUN; the make bench before that change measured 0.758x of Linux's rate (6,452 against 8,515 conn/s), the one after it 0.815x, both on an AMD EPYC guest; on the Intel Xeon guest of the evening's make bench 0.776x (13,377 against 17,245).",
		"Two engine shards, the default on 2 CPUs, cost crr about 5% against one (7,596 against 8,010 conn/s, means of four alternating 3 s runs, 2026-12-04): one connection at a time uses one shard, and the other shard's reader and timer and the table of which shard owns a flow only add work. In a machine-wide profile of each (`perf record -a`, 3 s of crr, 2026-12-04) the difference in the kernel is the TUN's choice of queue for every packet it sends us, which a device of one queue skips: tun_select_queue 1.2% of the two cores, the flow dissector that hashes each packet 0.2%, about half of the difference; the kernel keys a table of flows by that hash and looks it up per packet (and updates it on each of our writes), the cost of sending a flow's packets to the queue it was last written on. A steering program of our own (TUNSETSTEERINGEBPF) would replace that table with a hash we could also compute, so that Dial could pick its shard by it, but it is not written.",
	}, " "),
	"relay-bulk-down": strings.Join([]string{
		"The relay reads the destination's kernel socket straight into the client leg's send buffer (stack.Conn.Lend, one readv, then Commit), so its bytes are copied once by the kernel socket and once by the TUN write, as serve's are by the application's Write and the TUN write; what it adds is a second kernel TCP connection, sender and receiver, on the same 2 cores.",
		"The relay's goroutine used to read its socket and then write the GSO packet it had made to the TUN, in turn (27% of the process each, 2026-12-04); a batch of bulk data now goes to the stack's bulk writer (stack/flush.go), so the next read runs beside the write, and in alternating 3 s runs relay-bulk-down went from 24.6 and 24.8 to 32.2 and 33.5 Gbit/s, serve's bulk-down unchanged (30.4 and 30.9 against 31.3 and 31.4).",
		"Its runs vary more than any other scenario's on this machine, and so do serve's: in one minute (2026-12-04) bulk-down measured 34.9, 36.6, 24.3, 24.2 and 24.8 Gbit/s, and an earlier make bench, which ran the relay's runs some fifteen minutes after serve's, put them at 0.406x; the two scenarios' runs are now interleaved, and in interleaved runs the relay measured 0.66x to 0.92x of serve.",
		"The retransmissions some slow runs showed lose nothing: counted in every namespace of such runs, no drop or pruning counter of any kernel socket rose, and the client reported each retransmitted segment as a duplicate (TCPDSACKOldSent), so they are tail loss probes (RFC 8985 §7) that fired while the client's ACK waited for a core, as the kernel server's own probes did on the veth leg (TCPLossProbes, TCPDSACKRecv): nothing on either link was lost, and what slows those runs is the machine, as it slows serve's.",
	}, " "),
	"relay-bulk-up": strings.Join([]string{
		"Its runs fall in two groups on this machine, about 20 and about 30 Gbit/s, with the same binary: 25.4, 20.5, 19.6, 29.9 and 29.8 in five 3 s runs in a row (2026-12-04), where serve's bulk-up does not split so; the make bench runs of 2026-12-04 drew 0.873x, 1.10x, 0.699x, 0.898x and 0.794x of serve.",
		"What sets the group was not found: the kernel's softirq work stayed in the process's threads in slow runs as in fast ones (ksoftirqd ran 0 or 1 tick per run), and the relay's path is serve's bulk-up (the frontend's reader, one queue) followed by the relay's write of the lent bytes to the outbound kernel socket, whose send runs the server's receive inside the write.",
		"Later the same hour the whole machine ran slower (serve's bulk-up 18.6 to 19.5 Gbit/s), and the relay 14.9 to 15.4 in runs alternating with it, 0.8x.",
		"In both groups the relay writes a full lent span each time (about 250 KiB of the 256 KiB allowed then, counted over 35,000 writes a run), so the relay's write to the outbound socket, not the reader, sets the rate; its slow runs show the same stall after the copy into the receive ring as serve's bulk-up (ccState 8.8% of the two cores against 2.4% in a fast run), and serve's bulk-up has it too when the machine is in its slow phase (7.3%). A smaller receive buffer (SO_RCVBUF 256 KiB or 1 MiB on the client legs) measured no better (15.0 to 18.5 and 16.7 to 23.0 Gbit/s against 17.0 to 25.9). Writing up to 1 MiB of the lent bytes per call instead of 256 KiB (relay.LentWriteSize, since 2026-12-04) measured 20.4 against 18.9 Gbit/s (medians of five alternating runs, serve's 25.5), and the make bench that followed put the relay at 0.898x of serve.",
	}, " "),
	"relay-crr": strings.Join([]string{
		"A relayed connection is one chain of steps, each waiting for the one before: the client's connect, the frontend taking the SYN, the relay's connect to the server, the SYN-ACK, the request through the relay, the answer back.",
		"The ratio sits at the target's edge and depends on the machine: the make bench of 2026-12-04's afternoon, on an AMD EPYC guest, measured 1.32x (3,091 against 2,349 conn/s; per run 1.32, 1.32, 1.38), the one of its evening, on an Intel Xeon guest whose system calls cost about half as much, 1.51x (6,639 against 4,395; per run 1.57, 1.48, 1.56).",
		"In a runtime trace of tunstack's run (2026-12-04) a typical connection of 245 µs ran from end to end on one of the two Ps while the other was idle, and over whole runs both relays kept the CPUs equally busy (CPU profiles of 8 s: 9.30 and 9.41 CPU-seconds, 1.16 CPUs), so each relay's rate is the length of its chain and the ratio is that of the chains, most of whose length is the same kernel work in both.",
		"System calls are about 77% of a connection's CPU on the machine studied (an AMD EPYC guest), where each costs at least 1.5 µs: per connection (the same trace) 12 `readv` on the TUN at 1.8 µs, 4 writes to it at 5.1 µs (the client kernel's receive runs inside them), 17 `setsockopt` (the benchmark's sockets, made ahead in the client's and the relay's namespaces with net.Dialer's options, and the server's accepted one), 2 `connect` at 12 µs, 3 `close`, 10 `read` and 3 `write` on the kernel sockets; only the TUN's differ between the relays, and tunstack's come to 51 µs a connection, its Go code having no hot spot (the engine's ACK handling, answering the SYN, contexts, the initial sequence number's hash; garbage collection under 1%).",
		"Two changes of 2026-12-04 shortened the chain. The engine acknowledges a bare FIN after data as Linux does, through the delayed-ACK timer, so the relay's FIN carries the ACK and each connection sends one TUN write less (alternating 3 s runs: 3,919, 4,036 and 4,324 conn/s against 3,699, 3,956 and 4,117; gVisor's relay, which acknowledges at once, unchanged). The benchmark's namespace socket maker no longer duplicates each socket (net.FileConn), eight system calls a socket fewer; connections that overlapped its bursts had taken 361 µs against 268, and both relays gained about 1%, their ratio unchanged.",
		"Tried and not kept, each in alternating 3 s runs (2026-12-04): reading the TUN with blocking reads on a thread of their own, as gVisor's own fdbased endpoint does, either keeping the reader's P through the read (2,820 to 2,946 conn/s against 3,897 to 3,939) or handing it back at once (runtime.entersyscallblock: 2,700 to 2,724 against 3,946 to 4,024): the thread's wake and the P's return cost more than Go's poller; the reader yielding its P to the goroutine it has just started for the relay before writing the request's ACK (3,935, 3,956, 3,903 against 4,034, 3,999, 3,880); handing the relay the client's connection as soon as the SYN-ACK went (4,249 and 4,139 against 4,185 and 4,174); and forwarding the client's bytes on the link reader's goroutine instead of starting one (3,483 and 3,556 against 3,696 and 3,697).",
	}, " "),
	"http-load": strings.Join([]string{
		"The p99, the TUN drops and the client SYN retransmissions are on target; the rate is what falls short.",
		"ab is single-threaded and takes one of the two cores. In the CPU profile (http-load, cpu below) half of the process's time is system calls, 23% of it the TUN write of each response (net/http's Write reaches the TUN from the application's goroutine, one write per response, and the kernel runs ab's TCP receive inside it), and about 5% is Go's garbage collector, most of it net/http's per-request allocations.",
		"The retransmissions column counts tail loss probes (RFC 8985 §7): about two thirds of them fire with nothing unread on the TUN, so the ACK each waits for had not reached the stack yet; why the clients' ACKs arrive later than the probe timeout under this load was not established.",
		"Every probe resent data the client already held: in one 8 s run (2026-12-04, before the change below) the clients' namespace counted 23,996 duplicates received (TcpExtDelayedACKLost and TcpExtTCPDSACKOldSent) against our 23,996 probes, and ksoftirqd ran 3 ticks in a 5 s run, so the kernel took the response in at once and its ACK came back through the TUN and the link reader later than the probe's 2·SRTT + 2 ms, SRTT being the handshake's (sampled at the probes: 0.02 to 34 ms, the whole response and FIN outstanding). Linux's server, whose client's ACK reaches it inside the same softirq, sent none. Part of the delay was ours: the engine armed each probe when it made the segment, and the segment reached the TUN only when the goroutine holding the writer's role wrote it, which under this load took over 5 ms for 185 of 36,000 writes (that goroutine waiting for a CPU). The engine now sends no probe that would resend a segment not yet written, as Linux sends none for a segment still in the host's queues (TcpExtTCPSpuriousRtxHostQueues), and the probes fell by about half (7,900 and 7,963 against 14,704 and 15,133 in alternating 5 s runs, 2026-12-04), the request rate unchanged within the runs' spread.",
		"Two engine shards, the default on 2 CPUs, cost this load: in alternating 5 s runs (2026-12-04) one engine (`--stack tunstack/q1`) measured 9,021 and 8,661 req/s, with 7,740 and 7,185 probes, against 8,321 and 8,011 and 12,960 and 12,902 on two; no segment was handed between shards (IPStats.PassedOn 0), so the cost is the second shard's reader and timers competing for the core ab leaves.",
	}, " "),
}
