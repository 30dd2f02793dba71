package main

// Tests of serve --metrics and tunstack nstat. The root ones run serve in a
// namespace of their own (serve_test.go), scrape its metrics with the real
// curl from inside it, and run the tunstack binary there for nstat.

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"tunstack/internal/testtools"
	"tunstack/lab/netns"
	"tunstack/metrics"
)

// scrape fetches serve's metrics with curl from inside its namespace.
func (s *served) scrape(t *testing.T) (raw []byte, fams map[string]*dto.MetricFamily) {
	t.Helper()
	if s.sess.metrics == nil {
		t.Fatal("serve runs without --metrics")
	}
	raw = s.curl(t, s.sess.metrics.URL())
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, raw)
	}
	return raw, fams
}

// value is the one value of an unlabelled counter or gauge, or of the
// series whose labels are the pairs given.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series of %s with labels %q", name, labels)
	return 0
}

func TestServeMetricsRiseWithADownloadAndLintClean(t *testing.T) {
	netns.RequireRoot(t)
	testtools.Need(t, "curl")
	s := startServe(t, "--metrics", "127.0.0.1:0")
	if !strings.Contains(s.out.String(), s.sess.metrics.URL()) {
		t.Errorf("the banner does not give the metrics URL %s:\n%s", s.sess.metrics.URL(), s.out)
	}

	_, before := s.scrape(t)
	body := s.curl(t, s.url("/bytes/1000000"))
	if len(body) != 1000000 {
		t.Fatalf("downloaded %d bytes, want 1000000", len(body))
	}
	// An idle connection that the echo service has certainly accepted:
	// its echo came back.
	c := s.dial(t, s.cfg.EchoPort)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	raw, after := s.scrape(t)

	rise := func(name string) float64 { return value(t, after, name) - value(t, before, name) }
	// 1 MB in segments of at most 1448 bytes: at least 691 data segments.
	if d := rise("tunstack_tcp_out_segs_total"); d < 691 {
		t.Errorf("TcpOutSegs rose by %v over a 1 MB download, want at least 691", d)
	}
	if d := rise("tunstack_link_write_packets_total"); d < 691 {
		t.Errorf("link write packets rose by %v, want at least 691", d)
	}
	if d := rise("tunstack_link_write_bytes_total"); d < 1000000 {
		t.Errorf("link write bytes rose by %v, want at least 1000000", d)
	}
	if d := rise("tunstack_tcp_passive_opens_total"); d != 2 {
		t.Errorf("TcpPassiveOpens rose by %v, want 2 (the download and the echo)", d)
	}
	if d := rise("tunstack_tcp_active_opens_total"); d != 0 {
		t.Errorf("TcpActiveOpens rose by %v, want 0: serve opens nothing", d)
	}
	if n := value(t, after, "tunstack_tcp_connections", "state", "established"); n != 1 {
		t.Errorf("%v established connections, want 1 (the echo)", n)
	}
	for _, port := range []uint16{s.cfg.HTTPPort, s.cfg.EchoPort, s.cfg.DiscardPort, s.cfg.ChargenPort} {
		local := fmt.Sprintf("%s:%d", s.cfg.StackAddr, port)
		if n := value(t, after, "tunstack_tcp_listen_backlog", "local", local); n != float64(s.cfg.Backlog) {
			t.Errorf("listener %s: backlog %v, want %d", local, n, s.cfg.Backlog)
		}
		if n := value(t, after, "tunstack_tcp_listen_accept_queue", "local", local); n != 0 {
			t.Errorf("listener %s: accept queue %v, want 0", local, n)
		}
	}
	if h := after["tunstack_tcp_connection_lifetime_seconds"]; h == nil || h.GetMetric()[0].GetHistogram().GetSampleCount() < 1 {
		t.Errorf("no finished connection in the lifetime histogram after the download")
	}

	problems, err := promlint.New(bytes.NewReader(raw)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// nstatLine is a line of nstat's layout: the name in 32 columns, the value
// in 16, the rate in 6 with one decimal.
var nstatLine = regexp.MustCompile(`^(\S+) *(\d+) *(\d+\.\d)$`)

func TestNstatPrintsTheScrapedCountersInNstatsLayout(t *testing.T) {
	netns.RequireRoot(t)
	testtools.Need(t, "curl")
	s := startServe(t, "--metrics", "127.0.0.1:0")
	s.curl(t, s.url("/bytes/100000"))

	_, before := s.scrape(t)
	cmd := s.ns.Command(tunstackBinary(t), "nstat", "-az", "--metrics", s.sess.metrics.URL())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tunstack nstat -az: %v\n%s", err, stderr.Bytes())
	}
	_, after := s.scrape(t)

	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if lines[0] != "#kernel" {
		t.Fatalf("first line %q, want #kernel", lines[0])
	}
	printed := map[string]bool{}
	for _, l := range lines[1:] {
		m := nstatLine.FindStringSubmatch(l)
		if m == nil || len(l) < 38 || strings.TrimSpace(l[:32]) != m[1] || strings.TrimSpace(l[32:len(l)-6]) != m[2] {
			t.Fatalf("line %q is not in nstat's layout (name in 32 columns, value, rate)", l)
		}
		if m[3] != "0.0" {
			t.Errorf("%s: rate %s with -a, want 0.0", m[1], m[3])
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		name := metrics.PromName(m[1])
		lo, hi := value(t, before, name), value(t, after, name)
		if v < lo || v > hi {
			t.Errorf("%s = %v, but the scrapes around it say %v then %v", m[1], v, lo, hi)
		}
		printed[m[1]] = true
	}
	for _, c := range metrics.Counters {
		if _, exported := after[c.Name()]; exported != printed[c.Nstat] {
			t.Errorf("%s: exported %v, printed by nstat -az %v", c.Nstat, exported, printed[c.Nstat])
		}
	}
	// The TUN device's own counters come after the stack's, under their
	// Tun names.
	for _, c := range metrics.DeviceCounters {
		if !printed[c.Nstat] {
			t.Errorf("nstat -az lacks the device's %s (%s)", c.Nstat, c.Name())
		}
	}
	if !printed["TcpOutSegs"] || !printed["TcpPassiveOpens"] {
		t.Errorf("nstat -az lacks TcpOutSegs or TcpPassiveOpens:\n%s", out)
	}
}

// Without a running stack nstat says what it tried and how to start one,
// in one sentence, and exits 1.
func TestNstatWithoutAStackSaysHowToStartOne(t *testing.T) {
	bin := tunstackBinary(t)
	for _, args := range [][]string{
		{"nstat", "--metrics", "http://127.0.0.1:1/metrics"},
		{"nstat", "--dev", "tsnomtx0"},
	} {
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("%q: %v, want exit status 1; stderr:\n%s", args, err, stderr.Bytes())
		}
		msg := strings.TrimSpace(stderr.String())
		if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "tunstack serve") || !strings.Contains(msg, "--metrics") {
			t.Errorf("%q says %q, want one line naming what it tried and tunstack serve --metrics", args, msg)
		}
	}
}

// With gVisor's netstack, the counters its tcpip.Stats shares with Linux
// are exported under the same names, and those it lacks are absent.
func TestServeMetricsOnGVisorExportOnlyWhatItCounts(t *testing.T) {
	netns.RequireRoot(t)
	testtools.Need(t, "curl")
	s := startServe(t, "--stack", "gvisor", "--metrics", "127.0.0.1:0")
	_, before := s.scrape(t)
	s.curl(t, s.url("/bytes/1000000"))
	raw, after := s.scrape(t)
	if d := value(t, after, "tunstack_tcp_out_segs_total") - value(t, before, "tunstack_tcp_out_segs_total"); d < 691 {
		t.Errorf("TcpOutSegs rose by %v over a 1 MB download, want at least 691", d)
	}
	for _, c := range metrics.Counters {
		if _, ok := after[c.Name()]; ok != (c.GVisor != nil) {
			t.Errorf("%s exported %v, but gVisor counts it: %v", c.Nstat, ok, c.GVisor != nil)
		}
	}
	problems, err := promlint.New(bytes.NewReader(raw)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
