// Package netns gives tests, labs and benchmarks a private network namespace
// each, so that TUN devices, addresses, routes and kernel peers never touch
// the machine's own network. Namespaces are created with `ip netns add`, so
// they show in `ip netns list` and a person can inspect a running lab with
// `ip netns exec NAME ...`.
package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"tunstack/internal/testtools"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
)

// NS is a named network namespace owned by this process.
type NS struct {
	name   string
	handle vnetns.NsHandle

	closeOnce sync.Once
	closeErr  error
}

// seq makes names unique within the process; the pid makes them unique
// between concurrent test binaries.
var seq atomic.Uint64

// New creates a network namespace named prefix-<pid>-<n> with its loopback
// interface up. The caller must Close it, on failure paths too.
func New(prefix string) (*NS, error) {
	var name string
	for {
		name = fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
		// A stale namespace from an earlier process with the same pid is
		// skipped, not reused: it may hold someone's leftovers.
		if _, err := os.Stat("/run/netns/" + name); errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("netns: ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	h, err := vnetns.GetFromName(name)
	if err != nil {
		exec.Command("ip", "netns", "delete", name).Run()
		return nil, fmt.Errorf("netns: open %s: %w", name, err)
	}
	ns := &NS{name: name, handle: h}
	err = ns.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netns: bring up loopback in %s: %w", name, err)
	}
	return ns, nil
}

// Name is the namespace's name, as `ip netns list` shows it.
func (ns *NS) Name() string { return ns.name }

// Do runs fn on an OS thread switched into the namespace, and waits for it.
// Sockets, netlink handles and TUN devices fn creates belong to the
// namespace and stay there after Do returns; goroutines fn starts do not run
// in it (they may be scheduled on any thread).
//
// fn runs on a goroutine of its own locked to its thread, so that if the
// thread cannot be switched back it is thrown away instead of returned to
// the scheduler in the wrong namespace. A panic in fn is re-raised in the
// caller.
func (ns *NS) Do(fn func() error) error {
	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("netns: current namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := vnetns.Set(ns.handle); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("netns: enter %s: %w", ns.name, err)}
			return
		}
		var r result
		func() {
			defer func() { r.panic = recover() }()
			r.err = fn()
		}()
		// Unlock only on a thread back in its own namespace; a goroutine
		// that exits locked takes its thread with it.
		if err := vnetns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		} else if r.err == nil {
			r.err = fmt.Errorf("netns: leave %s: %w", ns.name, err)
		}
		done <- r
	}()
	r := <-done
	if r.panic != nil {
		panic(r.panic)
	}
	return r.err
}

// Command returns a command that runs name inside the namespace, through
// `ip netns exec`, which also gives it the namespace's /etc/netns files and
// a matching /sys.
// A program that is not installed makes Start fail with an error that
// names it, rather than with ip's exit status.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
	if err := testtools.Missing(name); err != nil {
		cmd.Err = err
	}
	return cmd
}

// LoadGenerator is what a namespace whose kernel clients open connections
// at a high rate needs, as any load generator is set up: the whole
// ephemeral port range (net.ipv4.ip_local_port_range, 32768-60999 by
// default), and connect may take over a port whose connection waits in
// TIME-WAIT for more than a second (net.ipv4.tcp_tw_reuse=1; timestamps
// on), for a client that closes first keeps each port in TIME-WAIT for
// 60 s. Both apply to IPv6 sockets too.
var LoadGenerator = [][2]string{
	{"net/ipv4/ip_local_port_range", "1024 65535"},
	{"net/ipv4/tcp_tw_reuse", "1"},
}

// SetSysctls writes each setting, a path under /proc/sys such as
// net/ipv4/tcp_tw_reuse and its value, inside the namespace: the net
// sysctls are the namespace's own.
func (ns *NS) SetSysctls(kv [][2]string) error {
	return ns.Do(func() error {
		for _, s := range kv {
			if err := os.WriteFile("/proc/sys/"+s[0], []byte(s[1]), 0o644); err != nil {
				return fmt.Errorf("netns %s: sysctl %s=%s: %w", ns.name, strings.ReplaceAll(s[0], "/", "."), s[1], err)
			}
		}
		return nil
	})
}

// Close deletes the namespace; the devices in it go with it. It is safe to
// call more than once and returns the first call's result.
func (ns *NS) Close() error {
	ns.closeOnce.Do(func() {
		ns.handle.Close()
		if out, err := exec.Command("ip", "netns", "delete", ns.name).CombinedOutput(); err != nil {
			ns.closeErr = fmt.Errorf("netns: ip netns delete %s: %v: %s", ns.name, err, strings.TrimSpace(string(out)))
		}
	})
	return ns.closeErr
}
