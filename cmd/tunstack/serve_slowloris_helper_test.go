package main

// The helper processes of the slow-loris test: this test binary run again,
// inside a namespace, as a population of client sockets or as one of
// Linux's HTTP servers. Each holds its own descriptors: the process's
// RLIMIT_NOFILE (20,000 here, and it cannot be raised without
// CAP_SYS_RESOURCE) is less than a 10,000 + 10,000 population with its
// servers' sockets. The parent drives a helper with one command a line on
// its stdin; the helper answers each with one line, "ok ..." or
// "err ...".

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tunstack/demo"
	"tunstack/lab/netns"
)

// testHelperEnv names the helper this test binary is to run as, instead
// of its tests (TestMain reads it).
const testHelperEnv = "TUNSTACK_TEST_HELPER"

// runTestHelper runs the helper kind and returns the exit status.
func runTestHelper(kind string) int {
	var err error
	switch kind {
	case "loris-clients":
		err = lorisClientsHelper(os.Stdin, os.Stdout)
	case "loris-server":
		err = lorisServerHelper(os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("no test helper %q", kind)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// lorisClientsHelper holds kernel sockets connected to LORIS_DST, made in
// the namespace it runs in; with LORIS_TRICKLE=1 each sends lorisPrefix
// once established and then, once started, a byte every lorisEvery.
// Commands:
//
//	open N        start N connects; answer once all are established
//	open-nowait N start N connects and answer at once
//	states K      the last K sockets (0: all) by kernel TCP state, as JSON
//	start, stop   start and stop the trickle; stop answers the bytes
//	              written, the writes that failed and the first failure
func lorisClientsHelper(in io.Reader, out io.Writer) error {
	dst, err := netip.ParseAddrPort(os.Getenv("LORIS_DST"))
	if err != nil {
		return fmt.Errorf("LORIS_DST: %v", err)
	}
	trickle := os.Getenv("LORIS_TRICKLE") == "1"
	sa := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	states := func(fds []int) (map[uint8]int, error) {
		n := map[uint8]int{}
		for _, fd := range fds {
			ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				return nil, fmt.Errorf("TCP_INFO: %v", err)
			}
			n[ti.State]++
		}
		return n, nil
	}
	open := func(n int) ([]int, error) {
		from := len(fds)
		for range n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("socket %d: %w", len(fds), err)
			}
			fds = append(fds, fd)
			if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
				return nil, fmt.Errorf("connect %d to %s: %w", len(fds), dst, err)
			}
		}
		return fds[from:], nil
	}
	var tr *trickler
	w := bufio.NewWriter(out)
	answer := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\n", args...)
		w.Flush()
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.Atoi(arg)
		switch verb {
		case "open", "open-nowait":
			batch, err := open(n)
			if err != nil {
				answer("err %v", err)
				continue
			}
			if verb == "open-nowait" {
				answer("ok")
				continue
			}
			var st map[uint8]int
			if !awaitCondition(60*time.Second, func() bool {
				st, err = states(batch)
				return err != nil || st[linuxEstablished] == len(batch)
			}) || err != nil {
				answer("err after a minute the %d sockets are by state %v (%v)", len(batch), st, err)
				continue
			}
			if trickle {
				for _, fd := range batch {
					if _, err := unix.Write(fd, []byte(lorisPrefix)); err != nil {
						answer("err writing the request's start: %v", err)
						break
					}
				}
			}
			answer("ok")
		case "states":
			from := 0
			if n > 0 {
				from = max(len(fds)-n, 0)
			}
			st, err := states(fds[from:])
			if err != nil {
				answer("err %v", err)
				continue
			}
			b, _ := json.Marshal(st)
			answer("ok %s", b)
		case "start":
			tr = startTrickler(fds)
			answer("ok")
		case "stop":
			if tr == nil {
				answer("err not started")
				continue
			}
			tr.end()
			first := ""
			if p := tr.first.Load(); p != nil {
				first = *p
			}
			answer("ok %d %d %s", tr.writes.Load(), tr.errs.Load(), first)
		default:
			answer("err no command %q", verb)
		}
	}
	return sc.Err()
}

// lorisServerHelper serves the site on LORIS_ADDR from a SO_REUSEPORT
// listener in the namespace it runs in, as the kernel's HTTP server:
// several such processes share the port, the kernel spreading the
// connections between them. It answers "ok" once listening; then the
// command "mem" answers the process's live heap, goroutine stacks and
// resident set in bytes. It ends when its stdin closes.
func lorisServerHelper(in io.Reader, out io.Writer) error {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", os.Getenv("LORIS_ADDR"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: demo.NewSiteHandler(demo.SiteConfig{StackName: "linux"}), ReadHeaderTimeout: serveReadHeaderTimeout}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	w := bufio.NewWriter(out)
	answer := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\n", args...)
		w.Flush()
	}
	answer("ok")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case "mem":
			ms := liveHeap()
			rss, err := readVmRSS()
			if err != nil {
				answer("err %v", err)
				continue
			}
			answer("ok %d %d %d", ms.HeapAlloc, ms.StackInuse, rss)
		default:
			answer("err no command %q", sc.Text())
		}
	}
	srv.Close()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return sc.Err()
}

// helperProc is a helper process the test drives.
type helperProc struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
}

// startHelper runs this test binary as the helper kind inside ns with env
// added to its environment, and waits for nothing; it is ended (its stdin
// closed, then waited for) when the test ends.
func startHelper(t *testing.T, ns *netns.NS, kind, name string, env ...string) *helperProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &helperProc{name: name, cmd: ns.Command(exe)}
	h.cmd.Env = append(append(os.Environ(), testHelperEnv+"="+kind), env...)
	h.cmd.Stderr = os.Stderr
	if h.in, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.out = bufio.NewScanner(stdout)
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("starting the %s helper: %v", name, err)
	}
	var ended atomic.Bool
	t.Cleanup(func() {
		if ended.Swap(true) {
			return
		}
		h.in.Close()
		if err := h.cmd.Wait(); err != nil {
			t.Errorf("the %s helper: %v", name, err)
		}
	})
	return h
}

// do sends one command and returns the answer after "ok", or the error the
// helper answered.
func (h *helperProc) do(cmd string) (string, error) {
	if _, err := fmt.Fprintln(h.in, cmd); err != nil {
		return "", fmt.Errorf("%s helper, %q: %v", h.name, cmd, err)
	}
	return h.answer(cmd)
}

func (h *helperProc) answer(cmd string) (string, error) {
	if !h.out.Scan() {
		return "", fmt.Errorf("%s helper, %q: no answer (%v)", h.name, cmd, h.out.Err())
	}
	line := h.out.Text()
	if rest, ok := strings.CutPrefix(line, "ok"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", fmt.Errorf("%s helper, %q: %s", h.name, cmd, strings.TrimPrefix(line, "err "))
}

// states asks a clients helper for its last k sockets (0: all) by state.
func (h *helperProc) states(t *testing.T, k int) map[uint8]int {
	t.Helper()
	a, err := h.do("states " + strconv.Itoa(k))
	if err != nil {
		t.Fatal(err)
	}
	st := map[uint8]int{}
	if err := json.Unmarshal([]byte(a), &st); err != nil {
		t.Fatalf("%s helper's states %q: %v", h.name, a, err)
	}
	return st
}

// readVmRSS is the process's resident set in bytes.
func readVmRSS() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %v", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}

// trickler writes one byte to each of its sockets every lorisEvery,
// spread evenly over the interval.
type trickler struct {
	fds    []int
	stop   chan struct{}
	done   chan struct{}
	writes atomic.Int64
	errs   atomic.Int64
	first  atomic.Pointer[string]
}

func startTrickler(fds []int) *trickler {
	tr := &trickler{fds: fds, stop: make(chan struct{}), done: make(chan struct{})}
	const tickEvery = 100 * time.Millisecond
	perTick := (len(fds)*int(tickEvery/time.Millisecond) + int(lorisEvery/time.Millisecond) - 1) / int(lorisEvery/time.Millisecond)
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(tickEvery)
		defer tick.Stop()
		next := 0
		for {
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
			for range perTick {
				if _, err := unix.Write(tr.fds[next], []byte{'a'}); err != nil {
					tr.errs.Add(1)
					msg := fmt.Sprintf("socket %d: %v", next, err)
					tr.first.CompareAndSwap(nil, &msg)
				} else {
					tr.writes.Add(1)
				}
				next = (next + 1) % len(tr.fds)
			}
		}
	}()
	return tr
}

func (tr *trickler) end() {
	close(tr.stop)
	<-tr.done
}
