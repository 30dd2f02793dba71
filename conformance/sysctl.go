package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"tunstack/congestion"
	"tunstack/policy"
)

// Sysctl is one setting a shell line makes.
type Sysctl struct {
	Name  string // dotted: net.ipv4.tcp_sack
	Value string // as written, quotes removed, whitespace collapsed
	Where string // file:line of the command that sets it
}

func (s Sysctl) String() string { return s.Name + "=" + s.Value }

// ShellScan is what a shell line does, as far as the runner can tell.
type ShellScan struct {
	Sysctls []Sysctl
	// Other lists commands that are neither sysctl writes nor scripts we
	// could read (tc qdisc ..., ip link ...): reported, never dropped.
	Other []string
}

// ScanShell finds the sysctl writes in a shell line: `sysctl -q n=v`,
// `sysctl -w n=v`, `echo v > /proc/sys/n/...`, and the same inside scripts
// the line runs (paths relative to dir, the script's directory).
func ScanShell(command, dir, where string) ShellScan {
	var sc ShellScan
	scanShell(command, dir, where, &sc, 0)
	return sc
}

func scanShell(text, dir, where string, sc *ShellScan, depth int) {
	for _, cmd := range splitCommands(text) {
		words := shellWords(cmd)
		if len(words) == 0 || strings.HasPrefix(words[0], "#") {
			continue
		}
		// Leading VAR=value assignments and "exec" do not change the command.
		for len(words) > 1 && (strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") || words[0] == "exec") {
			words = words[1:]
		}
		switch {
		case filepath.Base(words[0]) == "sysctl":
			for _, w := range words[1:] {
				if strings.HasPrefix(w, "-") {
					continue
				}
				if k, v, ok := strings.Cut(w, "="); ok {
					sc.Sysctls = append(sc.Sysctls, Sysctl{normSysctl(k), collapse(v), where})
				}
			}
		case words[0] == "echo" || words[0] == "printf":
			if s, ok := echoToProc(words); ok {
				s.Where = where
				sc.Sysctls = append(sc.Sysctls, s)
			} else {
				sc.Other = append(sc.Other, cmd)
			}
		case (words[0] == "sh" || words[0] == "bash") && len(words) > 1 && !strings.HasPrefix(words[1], "-"):
			scanFile(words[1], dir, sc, depth, cmd)
		case strings.HasSuffix(words[0], ".sh") || strings.HasPrefix(words[0], "./") || strings.HasPrefix(words[0], "../") || strings.HasPrefix(words[0], "/"):
			scanFile(words[0], dir, sc, depth, cmd)
		case words[0] == "true" || words[0] == ":" || words[0] == "set" || words[0] == "cd":
		default:
			sc.Other = append(sc.Other, cmd)
		}
	}
}

func scanFile(path, dir string, sc *ShellScan, depth int, cmd string) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil || depth > 4 {
		sc.Other = append(sc.Other, cmd)
		return
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		scanShell(line, filepath.Dir(path), fmt.Sprintf("%s:%d", path, i+1), sc, depth+1)
	}
}

// splitCommands splits on ; && || | and newlines outside quotes.
func splitCommands(s string) []string {
	var out []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
			cur.WriteByte(c)
		case c == '\'' || c == '"':
			quote = c
			cur.WriteByte(c)
		case c == ';' || c == '\n' || c == '|' || c == '&':
			if c == '|' && i+1 < len(s) && s[i+1] == '|' || c == '&' && i+1 < len(s) && s[i+1] == '&' {
				i++
			}
			if t := strings.TrimSpace(cur.String()); t != "" {
				out = append(out, t)
			}
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if t := strings.TrimSpace(cur.String()); t != "" {
		out = append(out, t)
	}
	return out
}

// shellWords splits a simple command into words, removing quotes and
// treating ">" as its own word.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	in := false
	var quote byte
	flush := func() {
		if in {
			out = append(out, cur.String())
			cur.Reset()
			in = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote = c
			in = true
		case c == ' ' || c == '\t':
			flush()
		case c == '>':
			flush()
			out = append(out, ">")
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	flush()
	return out
}

func echoToProc(words []string) (Sysctl, bool) {
	for i, w := range words {
		if w == ">" && i+1 < len(words) && strings.HasPrefix(words[i+1], "/proc/sys/") {
			var vals []string
			for _, v := range words[1:i] {
				if !strings.HasPrefix(v, "-") {
					vals = append(vals, v)
				}
			}
			name := strings.ReplaceAll(strings.TrimPrefix(words[i+1], "/proc/sys/"), "/", ".")
			return Sysctl{Name: name, Value: collapse(strings.Join(vals, " "))}, true
		}
	}
	return Sysctl{}, false
}

func normSysctl(k string) string { return strings.ReplaceAll(strings.TrimSpace(k), "/", ".") }
func collapse(v string) string   { return strings.Join(strings.Fields(strings.Trim(v, `"'`)), " ") }

// Applied is a knob the runner set from a sysctl.
type Applied struct {
	Sysctl Sysctl
	Knob   string // policy field(s) set
}

// ApplySysctls sets p's knobs from the sysctls it knows and returns what it
// set and the settings that have no knob (reported as unmapped).
func ApplySysctls(p *policy.Profile, ss []Sysctl) (applied []Applied, unmapped []Sysctl) {
	for _, s := range ss {
		knob, err := applyOne(p, s)
		switch {
		case err != nil:
			unmapped = append(unmapped, Sysctl{s.Name, s.Value + " (" + err.Error() + ")", s.Where})
		case knob == "":
			unmapped = append(unmapped, s)
		default:
			applied = append(applied, Applied{s, knob})
		}
	}
	return applied, unmapped
}

func applyOne(p *policy.Profile, s Sysctl) (string, error) {
	name := s.Name
	ints := func(n int) ([]int, error) {
		f := strings.Fields(s.Value)
		if len(f) != n {
			return nil, fmt.Errorf("expected %d integers", n)
		}
		out := make([]int, n)
		for i, x := range f {
			v, err := strconv.Atoi(x)
			if err != nil {
				return nil, fmt.Errorf("expected an integer, found %q", x)
			}
			out[i] = v
		}
		return out, nil
	}
	one := func() (int, error) {
		v, err := ints(1)
		if err != nil {
			return 0, err
		}
		return v[0], nil
	}
	boolean := func(dst *bool) error {
		v, err := one()
		*dst = v != 0
		return err
	}
	secs := func(dst *time.Duration) error {
		v, err := one()
		*dst = time.Duration(v) * time.Second
		return err
	}
	integer := func(dst *int) error {
		v, err := one()
		*dst = v
		return err
	}
	switch name {
	case "net.ipv4.tcp_rmem":
		v, err := ints(3)
		if err != nil {
			return "", err
		}
		p.RcvBuf, p.RcvBufMax = v[1], v[2]
		return "RcvBuf, RcvBufMax", nil
	case "net.ipv4.tcp_wmem":
		v, err := ints(3)
		if err != nil {
			return "", err
		}
		p.SndBuf, p.SndBufMax = v[1], v[2]
		return "SndBuf, SndBufMax", nil
	case "net.ipv4.tcp_timestamps":
		return "Timestamps", boolean(&p.Timestamps)
	case "net.ipv4.tcp_sack":
		return "SACK", boolean(&p.SACK)
	case "net.ipv4.tcp_dsack":
		return "DSACK", boolean(&p.DSACK)
	case "net.ipv4.tcp_window_scaling":
		return "WindowScaling", boolean(&p.WindowScaling)
	case "net.ipv4.tcp_syn_retries":
		return "SynRetries", integer(&p.SynRetries)
	case "net.ipv4.tcp_syn_linear_timeouts":
		return "SynLinearTimeouts", integer(&p.SynLinearTimeouts)
	case "net.ipv4.tcp_synack_retries":
		return "SynAckRetries", integer(&p.SynAckRetries)
	case "net.ipv4.tcp_retries2":
		return "Retries2", integer(&p.Retries2)
	case "net.ipv4.tcp_congestion_control":
		if !slices.Contains(congestion.Names(), s.Value) {
			return "", fmt.Errorf("no controller named %q (known: %s)", s.Value, strings.Join(congestion.Names(), ", "))
		}
		p.Congestion = s.Value
		return "Congestion", nil
	case "net.ipv4.tcp_syncookies":
		v, err := one()
		// 1: cookies when the SYN queue overflows; 2: always (no knob for that).
		if v == 2 {
			return "", nil
		}
		p.SynCookies = v != 0
		return "SynCookies", err
	case "net.ipv4.tcp_slow_start_after_idle":
		return "SlowStartAfterIdle", boolean(&p.SlowStartAfterIdle)
	case "net.ipv4.tcp_abort_on_overflow":
		return "AbortOnOverflow", boolean(&p.AbortOnOverflow)
	case "net.ipv4.tcp_max_syn_backlog":
		return "MaxSynBacklog", integer(&p.MaxSynBacklog)
	case "net.core.somaxconn":
		return "Somaxconn", integer(&p.Somaxconn)
	case "net.ipv4.tcp_fin_timeout":
		return "FinTimeout", secs(&p.FinTimeout)
	case "net.ipv4.tcp_keepalive_time":
		return "KeepAliveIdle", secs(&p.KeepAliveIdle)
	case "net.ipv4.tcp_keepalive_intvl":
		return "KeepAliveInterval", secs(&p.KeepAliveInterval)
	case "net.ipv4.tcp_keepalive_probes":
		return "KeepAliveProbes", integer(&p.KeepAliveProbes)
	case "net.ipv4.tcp_min_snd_mss":
		return "MinSendMSS", integer(&p.MinSendMSS)
	case "net.ipv4.tcp_invalid_ratelimit":
		v, err := one()
		p.InvalidRateLimit = time.Duration(v) * time.Millisecond
		return "InvalidRateLimit", err
	case "net.ipv4.ip_local_port_range":
		v, err := ints(2)
		if err != nil {
			return "", err
		}
		p.LocalPortMin, p.LocalPortMax = uint16(v[0]), uint16(v[1])
		return "LocalPortMin, LocalPortMax", nil
	}
	return "", nil
}

// notPerNamespace lists the TCP-related sysctls that Linux 6.x keeps only
// in the initial network namespace (measured: they are absent from
// /proc/sys/net in a new namespace). The linux target cannot set them: the
// write fails inside the test namespace, and the runner reports it rather
// than touch the host. Everything else under net.ipv4.tcp_* and
// net.core.somaxconn/rmem_*/wmem_* is per namespace; note that a new
// namespace inherits tcp_rmem, tcp_wmem and tcp_congestion_control from the
// host, which is why the defaults file sets them.
var notPerNamespace = map[string]bool{
	"net.ipv4.tcp_mem":            true,
	"net.ipv4.tcp_max_orphans":    true,
	"net.ipv4.tcp_low_latency":    true,
	"net.ipv4.tcp_available_ulp":  true,
	"net.core.default_qdisc":      true,
	"net.core.netdev_max_backlog": true,
	"net.core.netdev_budget":      true,
	"net.core.busy_poll":          true,
	"net.core.busy_read":          true,
}

// PerNamespace reports whether a sysctl can be set inside a test namespace.
func PerNamespace(name string) bool { return !notPerNamespace[name] }
