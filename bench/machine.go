package bench

import (
	"bufio"
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
