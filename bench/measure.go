package bench

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cpuTimes is the process's CPU time so far (getrusage RUSAGE_SELF): every
// thread, user and system. For the user-space stacks that is the stack, the
// Go code on both sides, the kernel peer's TCP (run in our system calls and
// in softirqs that land on our threads) and the TUN; for linux it is both
// kernels' TCP as far as it runs in our threads' context plus the Go code.
type cpuTimes struct{ user, sys time.Duration }

func readCPU() cpuTimes {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return cpuTimes{}
	}
	return cpuTimes{
		user: time.Duration(ru.Utime.Nano()),
		sys:  time.Duration(ru.Stime.Nano()),
	}
}

func (c cpuTimes) sub(o cpuTimes) cpuTimes { return cpuTimes{c.user - o.user, c.sys - o.sys} }
func (c cpuTimes) total() time.Duration    { return c.user + c.sys }

// memSnapshot is the process's memory after a full collection: the live Go
// heap and the resident set.
type memSnapshot struct {
	heapBytes uint64 // runtime.MemStats.HeapAlloc after GC: live heap objects
	rssBytes  uint64 // VmRSS of /proc/self/status
}

// readMem collects garbage, returns freed memory to the OS so that RSS
// follows the heap, and reads both.
func readMem() memSnapshot {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{heapBytes: ms.HeapAlloc, rssBytes: procStatusKB("VmRSS") * 1024}
}

// procStatusKB reads a "Name:  N kB" line of /proc/self/status.
func procStatusKB(name string) uint64 {
	return fieldKB("/proc/self/status", name)
}

func fieldKB(path, name string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return n
	}
	return 0
}

// socketSlabs are the slab caches a connected kernel TCP socket with a file
// descriptor occupies: the tcp_sock, its socket inode, the struct file and
// its dentry. Bind buckets and the like are too small to matter.
// An IPv6 socket's tcp6_sock is in the cache TCPv6 instead of TCP.
var socketSlabs = []string{"TCP", "sock_inode_cache", "filp", "dentry"}

// slabsFor is socketSlabs for sockets of the family.
func slabsFor(fam family) []string {
	if fam == 6 {
		return append([]string{"TCPv6"}, socketSlabs[1:]...)
	}
	return socketSlabs
}

// readSlabBytes sums num_objs*objsize of the named caches in /proc/slabinfo
// (root only). Slab memory is machine-wide: other processes' activity shows
// up in it too.
func readSlabBytes(names []string) (uint64, bool) {
	f, err := os.Open("/proc/slabinfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var total uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// name active_objs num_objs objsize objperslab pagesperslab : ...
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 || !want[fs[0]] {
			continue
		}
		objs, _ := strconv.ParseUint(fs[1], 10, 64) // active objects
		size, _ := strconv.ParseUint(fs[3], 10, 64)
		total += objs * size
	}
	return total, true
}

// readSockstatMemPages reads the "mem" field of the TCP line of
// /proc/net/sockstat (pages of socket buffer memory, counted machine-wide)
// from the calling thread's view.
func readSockstatMemPages() uint64 {
	f, err := os.Open("/proc/thread-self/net/sockstat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 || fs[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(fs); i += 2 {
			if fs[i] == "mem" {
				n, _ := strconv.ParseUint(fs[i+1], 10, 64)
				return n
			}
		}
	}
	return 0
}

// fileLimitFor raises RLIMIT_NOFILE toward want descriptors and returns
// how many the process may now hold: want, or less if the hard limit
// cannot be raised (raising it needs CAP_SYS_RESOURCE, which a container's
// root may lack).
func fileLimitFor(want uint64) (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	raised := lim
	raised.Cur = want
	raised.Max = max(lim.Max, want)
	if unix.Setrlimit(unix.RLIMIT_NOFILE, &raised) == nil {
		return want, nil
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}
