package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/vishvananda/netlink"

	"tunstack/bench"
	"tunstack/internal/testtools"
	"tunstack/lab/netns"
	"tunstack/netif"
)

// The HTTP load: ApacheBench's 1,000 concurrent clients, each request on a
// new connection, against serve's demo site. loadRequests is sized so that
// the run takes a few seconds on two shared cores.
const (
	loadClients  = 1000
	loadRequests = 10000
	loadMetrics  = "127.0.0.1:9464" // inside the test's namespace
)

// Under 1,000 concurrent new connections the kernel must not drop a
// packet on the TUN (its queue overflowing because the stack's reader fell
// behind), and no client may retransmit a SYN (a SYN dropped on the device
// or by a full listener): either costs a request a second, Linux's initial
// RTO. Every request must succeed, and serve's metrics must count the
// device's drops as the kernel does.
//
// serve runs as its own process, built without the race detector (the
// other serve tests run it in process, under it): this test is about the
// stack keeping up with the kernel, and the race detector's cost would be
// what it measured.
func TestServeHTTPLoadDropsNothingOnTheTUNAndNoSYNIsRetransmitted(t *testing.T) {
	testtools.Need(t, "ab", "curl")
	ns := newTestNS(t)
	bin := tunstackBinary(t)
	const dev = "tsload0"
	// One client address opening 10,000 connections: the whole port
	// range, as any load generator sets it.
	if err := ns.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("1024 65535"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	stop := startServeProcess(t, exec.Command(bin, "serve", "--netns", ns.Name(), "--dev", dev, "--net6", "none", "--metrics", loadMetrics))
	metricsURL := "http://" + loadMetrics + "/metrics"

	before := loadCounters(t, ns, dev, metricsURL)
	start := time.Now()
	cmd := ns.Command("ab", bench.ABArgs(loadRequests, loadClients, "http://198.18.0.2/bytes/10000")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("ab: %v\n%s%s", err, out, stderr.Bytes())
	}
	ab, err := bench.ParseAB(out)
	if err != nil {
		t.Fatal(err)
	}
	after := loadCounters(t, ns, dev, metricsURL)
	stop()

	synRetrans := after.synRetrans - before.synRetrans
	opens := after.opens - before.opens
	dropped := after.txDropped - before.txDropped
	t.Logf("ab -c %d -n %d in %v: %.0f requests/s, p50 %v ms, p99 %v ms; %d client opens, %d SYN retransmissions; %s (txqueuelen %d): %d packets toward the stack, %d dropped; listener overflows %d",
		loadClients, loadRequests, elapsed.Round(time.Millisecond), ab.RequestsSec, ab.Percentiles[50], ab.Percentiles[99],
		opens, synRetrans, dev, after.qlen, after.txPackets-before.txPackets, dropped, after.overflows-before.overflows)
	if after.qlen != netif.DefaultTxQueueLen {
		t.Errorf("%s's txqueuelen is %d, want serve's %d", dev, after.qlen, netif.DefaultTxQueueLen)
	}
	if ab.Complete != loadRequests || ab.Failed != 0 || ab.Non2xx != 0 {
		t.Errorf("ab: %d of %d requests complete, %d failed, %d not 2xx", ab.Complete, loadRequests, ab.Failed, ab.Non2xx)
	}
	if dropped != 0 {
		t.Errorf("the kernel dropped %d packets on %s on their way into the stack: its queue of %d overflowed", dropped, dev, after.qlen)
	}
	if synRetrans != 0 {
		t.Errorf("the clients retransmitted %d SYNs in %d opens", synRetrans, opens)
	}
	if n := after.overflows - before.overflows; n != 0 {
		t.Errorf("the stack's listeners overflowed %d times", n)
	}
	if after.metricDrops != after.txDropped || before.metricDrops != before.txDropped {
		t.Errorf("serve's tunstack_tun_tx_dropped_total said %d then %d; the kernel %d then %d",
			before.metricDrops, after.metricDrops, before.txDropped, after.txDropped)
	}
}

// startServeProcess starts cmd, a `tunstack serve`, and returns once it
// has printed its banner (its services accept connections by then). The
// returned stop interrupts it and waits for it to exit cleanly; the test's
// end does the same if stop was not called.
func startServeProcess(t *testing.T, cmd *exec.Cmd) (stop func()) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd, err)
	}
	ready := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.HasPrefix(sc.Text(), "Ctrl-C stops it") {
				close(ready)
				signalled = true
			}
		}
	}()
	waited := make(chan error, 1)
	go func() {
		<-drained
		waited <- cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-waited:
		t.Fatalf("serve exited before it was ready: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-waited
		t.Fatalf("serve printed no banner within 60s\n%s", stderr.String())
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-waited:
			if err != nil {
				t.Errorf("serve exited with %v\n%s", err, stderr.String())
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-waited
			t.Errorf("serve did not stop within 60s of SIGINT; killed it")
		}
	}
	t.Cleanup(stop)
	return stop
}

// loadReading is what the load test reads before and after the load.
type loadReading struct {
	txPackets   uint64 // the device's, from the kernel
	txDropped   uint64
	qlen        int
	metricDrops uint64 // serve's tunstack_tun_tx_dropped_total
	overflows   uint64 // serve's tunstack_tcpext_listen_overflows_total
	synRetrans  uint64 // the clients' TcpExtTCPSynRetrans
	opens       uint64 // the clients' TcpActiveOpens
}

// loadCounters reads the device's counters from the kernel, serve's
// metrics, and the namespace's TCP counters (the clients').
func loadCounters(t *testing.T, ns *netns.NS, dev, metricsURL string) loadReading {
	t.Helper()
	var r loadReading
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		st := l.Attrs().Statistics
		if st == nil {
			return fmt.Errorf("%s has no statistics", dev)
		}
		r.txPackets, r.txDropped, r.qlen = st.TxPackets, st.TxDropped, l.Attrs().TxQLen
		return nil
	}); err != nil {
		t.Fatalf("reading %s's counters: %v", dev, err)
	}
	out, err := ns.Command("curl", append(append([]string{}, curlArgs...), metricsURL)...).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", metricsURL, err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("serve's metrics do not parse: %v", err)
	}
	r.metricDrops = uint64(value(t, fams, "tunstack_tun_tx_dropped_total"))
	r.overflows = uint64(value(t, fams, "tunstack_tcpext_listen_overflows_total"))
	c, err := ns.TCPCounters()
	if err != nil {
		t.Fatal(err)
	}
	r.synRetrans, r.opens = c.TcpExt["TCPSynRetrans"], c.Tcp["ActiveOpens"]
	return r
}
