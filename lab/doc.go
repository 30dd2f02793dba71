// Package lab runs experiments: each one sets up real Linux TCP clients
// against a stack under test (tunstack, gVisor's netstack, or the Linux
// kernel itself), makes them do one thing that a common claim about TCP
// describes, and reports what happened on the wire and in the system calls,
// with a verdict on the claim. `tunstack lab NAME` runs one; Run is the
// entry point, Names lists them, and docs/experiments.md has every
// experiment's findings on all three stacks.
//
// # What an experiment is
//
// An experiment is an *experiment value in the experiments list
// (experiment.go):
//
//   - name: what `tunstack lab NAME` and Run take, such as "backlog".
//   - title: one line saying what it shows.
//   - claim: the claim it checks, stated on its own (for example, that
//     with listen(fd, 2), six clients and accept() only after 20 s, Linux
//     refuses nobody); printed above the verdict.
//   - defaults (Params: backlog, clients, hold) with check to refuse
//     settings it cannot run with, and duration to estimate its wall time.
//   - options and profile, optional: the experiment's own path (delay,
//     netif impairment SPEC, targeted segment rules, server sysctls) and
//     changes to the user-space stacks' profile.
//   - run: the experiment itself, on a *run (below).
//   - verdict: reads the Result and returns its lines: what was measured
//     against what the claim says, and, where one line can say it,
//     whether the claim holds ("the claim holds: ...").
//   - print, optional: a report of its own instead of the common timeline
//     (the bulk-transfer labs print round trips and an excerpt).
//
// # The topology
//
// Every experiment runs on the same network (topology.go), built anew for
// each run and removed after it:
//
//	tunstack, gvisor:  [client netns: kernel clients, TUN lab0 198.18.0.1] -- wire -- user-space stack 198.18.0.2
//	linux:             [client netns: kernel clients, TUN lab0 198.18.0.1] -- wire -- [server netns: TUN lab0 198.18.0.2, kernel listener]
//
// The clients are always Linux's own TCP, non-blocking sockets in a network
// namespace of their own (lab/netns), behind a TUN device. The stack under
// test is the server at 198.18.0.2: tunstack or gVisor running in this
// process on the other side of that TUN, or, for linux, a kernel listener in
// a second namespace whose TUN is joined to the first by a user-space relay,
// so that every stack gets its packets the same way. The wire between them
// is netif's: an ImpairedLink delaying what the clients send (5 ms by
// default, so that SYNs sent together arrive together), and, when an
// experiment asks, a second ImpairedLink carrying its targeted segment
// rules (drop, duplicate or hold back the Nth new-data segment) and its
// SPEC impairment. A netif.PcapTap where the server meets the wire records
// every packet, stamped when it is handed over, so the capture is the
// server's view and causes come before their effects.
//
// The server side is reached through the small server, listener and
// serverConn interfaces (server.go), so an experiment makes the same calls
// at the same moments whatever stack is underneath. A run (experiment.go)
// holds the experiment's state: r.srv.listen for the listener,
// r.openClients and r.connectAll for the clients, r.tl to write timeline
// lines, r.mark and r.sleepUntil for its instants, r.snapshot for the
// listener's queues, r.closeAtEnd for what must wait until the end. After
// run returns, Run reads the server's counters, tears the topology down,
// merges the capture into the timeline and calls verdict.
//
// The timewait experiment also needs the stack under test as a client, with
// listeners that set SO_REUSEADDR or SO_REUSEPORT, and its count of
// TIME-WAIT entries: the underTest interface (undertest.go) gives those
// roles on all three stacks, with the kernel peer in the clients'
// namespace as the server it connects to.
//
// # Adding an experiment
//
//  1. Write the claim down in our own words: what is said to happen, under
//     what setup, so that a reader can tell from the run whether it held.
//  2. Add a file with a `var fooExperiment = &experiment{...}` giving name,
//     title, claim, defaults, duration and, if it needs them, check,
//     options and profile.
//  3. Write its run: listen, open and connect clients, act at the marked
//     instants, and record on the timeline what the calls returned. Put
//     what it measured beyond the common records in r.data (it becomes
//     Result.Data).
//  4. Write its verdict from the Result (its Capture, Clients, Marks,
//     Queues, Counters and Data): the figures the claim is about and
//     whether it holds.
//  5. Append it to the experiments list, in the order the docs present it;
//     `tunstack lab` then knows it, on every stack.
//  6. Run it on all three stacks (`tunstack lab foo --stack S --pcap F`),
//     add a test that runs it on tunstack (lab_test.go) if it is quick
//     enough for `make test`, and write it up in docs/experiments.md: the
//     claim, the setup, what happened on each stack, and the verdict.
package lab
