package bench

import (
	"bufio"
	"compress/gzip"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine describes where the figures were taken.
type Machine struct {
	Cores      int    `json:"cores"`       // runtime.NumCPU
	CPUModel   string `json:"cpu_model"`   // /proc/cpuinfo "model name"
	Kernel     string `json:"kernel"`      // uname -sr
	GoVersion  string `json:"go_version"`  // of the binary
	MemTotal   string `json:"mem_total"`   // /proc/meminfo
	LoadBefore string `json:"load_before"` // /proc/loadavg 1, 5, 15 min at the start
	LoadAfter  string `json:"load_after"`  // and at the end
	// IRQTimeAccounting is CONFIG_IRQ_TIME_ACCOUNTING from /proc/config.gz:
	// "y", "n" or "" (unknown). Without it, softirq work done in a thread's
	// context is charged to that thread as system time, so getrusage sees
	// the kernel's TCP receive processing on the veth too.
	IRQTimeAccounting string `json:"irq_time_accounting,omitempty"`
}

// ReadMachine fills in everything but LoadAfter.
func ReadMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: LoadAverage()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	m.IRQTimeAccounting = kernelConfig("CONFIG_IRQ_TIME_ACCOUNTING")
	if kb := fieldKB("/proc/meminfo", "MemTotal"); kb > 0 {
		m.MemTotal = formatNum(float64(kb)/(1<<20)) + " GiB"
	}
	return m
}

// LoadAverage is the first three fields of /proc/loadavg.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// kernelConfig returns "y" (or "m") if /proc/config.gz sets name, "n" if it
// says it is not set, "" if there is no such file.
func kernelConfig(name string) string {
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		return ""
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		l := sc.Text()
		if v, ok := strings.CutPrefix(l, name+"="); ok {
			return v
		}
		if l == "# "+name+" is not set" {
			return "n"
		}
	}
	return "n"
}
