package netns

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
)

// TCPCounters are a namespace's TCP MIB counters by name, as nstat shows
// them: the Tcp line of /proc/net/snmp (RetransSegs, OutSegs, OutRsts...)
// and the TcpExt line of /proc/net/netstat (ListenOverflows, TCPTimeouts,
// TCPOrigDataSent...). Linux keeps them per network namespace.
type TCPCounters struct {
	Tcp    map[string]uint64
	TcpExt map[string]uint64
}

// TCPCounters reads the namespace's TCP counters from inside it. A file
// that cannot be read leaves its map empty; the error is Do's, when the
// namespace could not be entered or left.
func (ns *NS) TCPCounters() (TCPCounters, error) {
	var c TCPCounters
	err := ns.Do(func() error {
		c.Tcp = readSNMP("/proc/thread-self/net/snmp", "Tcp")
		c.TcpExt = readSNMP("/proc/thread-self/net/netstat", "TcpExt")
		return nil
	})
	return c, err
}

// readSNMP reads the prefix's counters from a file in the two-line
// "Prefix: names" / "Prefix: values" format of /proc/net/snmp and
// /proc/net/netstat; an empty map if the file cannot be read.
func readSNMP(path, prefix string) map[string]uint64 {
	f, err := os.Open(path)
	if err != nil {
		return map[string]uint64{}
	}
	defer f.Close()
	return parseSNMP(f, prefix)
}

func parseSNMP(r io.Reader, prefix string) map[string]uint64 {
	out := map[string]uint64{}
	var names []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != prefix+":" {
			continue
		}
		if names == nil {
			names = fields[1:]
			continue
		}
		for i, v := range fields[1:] {
			if i < len(names) {
				n, _ := strconv.ParseUint(v, 10, 64)
				out[names[i]] = n
			}
		}
		break
	}
	return out
}
