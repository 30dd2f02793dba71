package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"tunstack/metrics"
)

func init() {
	commands["nstat"] = func(args []string) error {
		cfg, err := parseNstatFlags(args)
		if err != nil {
			return err
		}
		return runNstat(context.Background(), cfg, os.Stdout, time.Now())
	}
}

// nstatConfig is a `tunstack nstat` command line.
type nstatConfig struct {
	All      bool     // -a: absolute values, ignoring the history
	Zeros    bool     // -z: counters that are zero too
	Dev      string   // --dev: the device whose recorded metrics URL to use
	URL      string   // --metrics: the URL to scrape, overriding --dev
	Patterns []string // names to show, with * and ? as in nstat
	History  string   // the history file; "" for the default
}

// parseNstatFlags parses the arguments after `tunstack nstat`. nstat's
// short flags may be run together, as in -az.
func parseNstatFlags(args []string) (nstatConfig, error) {
	cfg := nstatConfig{Dev: "tun0"}
	var expanded []string
	for _, a := range args {
		if len(a) > 2 && a[0] == '-' && a[1] != '-' && strings.Trim(a[1:], "az") == "" {
			for _, f := range a[1:] {
				expanded = append(expanded, "-"+string(f))
			}
			continue
		}
		expanded = append(expanded, a)
	}
	defs := []flagDef{
		boolFlag("a", &cfg.All), boolFlag("ignore", &cfg.All),
		boolFlag("z", &cfg.Zeros), boolFlag("zeros", &cfg.Zeros),
		stringFlag("dev", &cfg.Dev, checkDevName),
		stringFlag("metrics", &cfg.URL, checkMetricsURL),
	}
	rest, err := parseFlags("nstat", expanded, defs)
	if err != nil {
		return nstatConfig{}, err
	}
	for _, p := range rest {
		if _, err := path.Match(p, ""); err != nil {
			return nstatConfig{}, usagef("pattern %q is malformed; give a counter name, with * and ? for any characters, as in TcpExt*.", p)
		}
	}
	cfg.Patterns = rest
	return cfg, nil
}

func checkMetricsURL(v string) error {
	if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
		return usagef("--metrics takes the URL of a serve's metrics, as in --metrics http://127.0.0.1:9464/metrics, not %q.", v)
	}
	return nil
}

// nstatValue is one counter as nstat prints it.
type nstatValue struct {
	name  string
	value uint64
}

// runNstat scrapes the stack's metrics, translates them back to nstat's
// names through metrics.Counters, and prints them in nstat's layout: a
// "#kernel" line, then per counter its name, value and rate. Without -a
// the values are the increments since the previous run on the same
// metrics (kept in a history file, as nstat keeps one), and the rate is
// that increment per second; with -a, or with no usable history, they
// are the totals and the rate is 0.0.
func runNstat(ctx context.Context, cfg nstatConfig, out io.Writer, now time.Time) error {
	url := cfg.URL
	if url == "" {
		u, file, err := metrics.Lookup(cfg.Dev)
		if errors.Is(err, metrics.ErrNotPublished) {
			return fmt.Errorf("no running stack recorded metrics for %s in this network namespace (looked for %s); start one with sudo tunstack serve --dev %s --metrics 127.0.0.1:9464, or give --metrics URL", cfg.Dev, file, cfg.Dev)
		}
		if errors.Is(err, fs.ErrPermission) {
			// serve keeps the file in a root-only directory, as it keeps
			// its control socket.
			return fmt.Errorf("cannot read %s, where a running tunstack serve records its --metrics address for %s: permission denied; run sudo tunstack nstat, or give --metrics URL", file, cfg.Dev)
		}
		if err != nil {
			return fmt.Errorf("cannot read the metrics address recorded for %s: %v; give --metrics URL", cfg.Dev, err)
		}
		url = u
	}
	vals, err := scrapeNstat(ctx, url)
	if err != nil {
		return fmt.Errorf("no stack answered at %s (%v); start one with sudo tunstack serve --metrics 127.0.0.1:9464, or point --metrics at a running one", url, err)
	}

	histPath := cfg.History
	if histPath == "" {
		h := fnv.New64a()
		h.Write([]byte(url))
		histPath = filepath.Join(os.TempDir(), fmt.Sprintf(".tunstack-nstat.u%d.%x", os.Getuid(), h.Sum64()))
	}
	var hist map[string]uint64
	var histAt time.Time
	if !cfg.All {
		hist, histAt = readNstatHistory(histPath, vals)
	}
	secs := now.Sub(histAt).Seconds()

	w := bufio.NewWriter(out)
	fmt.Fprintln(w, "#kernel")
	for _, v := range vals {
		if !nstatMatch(cfg.Patterns, v.name) {
			continue
		}
		n, rate := v.value, 0.0
		if hist != nil {
			n -= hist[v.name]
			if secs > 0 {
				rate = float64(n) / secs
			}
		}
		if n == 0 && !cfg.Zeros {
			continue
		}
		// nstat's own layout: name in 32 columns, value in 16, rate in 6.
		fmt.Fprintf(w, "%-32s%-16d%6.1f\n", v.name, n, rate)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	writeNstatHistory(histPath, vals, now)
	return nil
}

// scrapeNstat fetches url and returns, in the table's order, every
// counter of metrics.Counters the stack exported, then those of
// metrics.DeviceCounters.
func scrapeNstat(ctx context.Context, url string) ([]nstatValue, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fams, err := fetchMetrics(ctx, http.DefaultClient, url)
	if err != nil {
		return nil, err
	}
	var vals []nstatValue
	add := func(name, nstat string) {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetCounter() == nil {
			return
		}
		vals = append(vals, nstatValue{nstat, uint64(f.GetMetric()[0].GetCounter().GetValue())})
	}
	for _, c := range metrics.Counters {
		add(c.Name(), c.Nstat)
	}
	// Then the device's own counters, under their Tun names.
	for _, c := range metrics.DeviceCounters {
		add(c.Name(), c.Nstat)
	}
	if len(vals) == 0 {
		return nil, errors.New("none of the counters tunstack exports is there")
	}
	return vals, nil
}

// fetchMetrics GETs url with c and parses the answer as Prometheus text
// (what serve's --metrics endpoint writes), by metric family name.
func fetchMetrics(ctx context.Context, c *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("not Prometheus metrics: %v", err)
	}
	return fams, nil
}

// nstatMatch reports whether name matches one of patterns (all match
// when there are none).
func nstatMatch(patterns []string, name string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// readNstatHistory reads the values of the previous run and when it was.
// It returns nil if there is none, or if a counter went down since, which
// means the stack was restarted and the history describes another one.
func readNstatHistory(file string, now []nstatValue) (map[string]uint64, time.Time) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, time.Time{}
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "#tunstack ") {
		return nil, time.Time{}
	}
	ns, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "#tunstack "), 10, 64)
	if err != nil {
		return nil, time.Time{}
	}
	hist := make(map[string]uint64)
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, time.Time{}
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, time.Time{}
		}
		hist[f[0]] = v
	}
	for _, v := range now {
		if v.value < hist[v.name] {
			return nil, time.Time{}
		}
	}
	return hist, time.Unix(0, ns)
}

// writeNstatHistory records this run's values for the next, as nstat
// updates its history on every run. A failure only costs the next run its
// increments, so it is not reported.
func writeNstatHistory(file string, vals []nstatValue, now time.Time) {
	var b strings.Builder
	fmt.Fprintf(&b, "#tunstack %d\n", now.UnixNano())
	for _, v := range vals {
		fmt.Fprintf(&b, "%s %d\n", v.name, v.value)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return
	}
	os.Rename(tmp, file)
}
