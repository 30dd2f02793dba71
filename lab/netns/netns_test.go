package netns

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
)

func listed(t *testing.T, name string) bool {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

func TestNewCreatesUniquelyNamedListedNamespaces(t *testing.T) {
	RequireRoot(t)
	a, err := New("nstest")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New("nstest")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Name() == b.Name() || !strings.HasPrefix(a.Name(), "nstest-") {
		t.Fatalf("names %q and %q: want distinct, prefixed nstest-", a.Name(), b.Name())
	}
	if !listed(t, a.Name()) || !listed(t, b.Name()) {
		t.Fatalf("namespaces %q, %q missing from ip netns list", a.Name(), b.Name())
	}
}

func TestDoRunsInsideTheNamespaceWithLoopbackUpAndSwitchesBack(t *testing.T) {
	RequireRoot(t)
	ns, err := New("nstest")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	host, err := vnetns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	err = ns.Do(func() error {
		cur, err := vnetns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if !cur.Equal(ns.handle) {
			return errors.New("fn is not running in the namespace")
		}
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		if len(links) != 1 || links[0].Attrs().Name != "lo" {
			return errors.New("a fresh namespace should hold only lo")
		}
		if links[0].Attrs().Flags&(1<<0) == 0 { // net.FlagUp
			return errors.New("lo is not up")
		}
		// Something configured here must not appear on the host.
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "nstestv0"}, PeerName: "nstestv1"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName("nstestv0"); err == nil {
		t.Fatal("veth created inside Do appeared in the host namespace")
	}
	if err := ns.Do(func() error { _, err := netlink.LinkByName("nstestv0"); return err }); err != nil {
		t.Fatalf("veth created by the first Do is gone in the second: %v", err)
	}
	// Do runs fn on a thread of its own; the caller's thread never moved, and
	// the netns the calling goroutine sees is still the host's.
	cur, err := vnetns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if !cur.Equal(host) {
		t.Fatal("caller is no longer in the host namespace after Do")
	}
}

func TestDoReturnsFnErrorAndReraisesPanic(t *testing.T) {
	RequireRoot(t)
	ns, err := New("nstest")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	sentinel := errors.New("from fn")
	if err := ns.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("Do = %v, want fn's error", err)
	}
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("recovered %v, want the panic from fn", r)
		}
	}()
	ns.Do(func() error { panic("boom") })
	t.Fatal("Do returned after fn panicked")
}

func TestCommandRunsInsideTheNamespace(t *testing.T) {
	RequireRoot(t)
	ns, err := New("nstest")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	out, err := ns.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link show in namespace: %v", err)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], " lo:") {
		t.Fatalf("links inside the namespace:\n%s\nwant only lo", out)
	}
}

func TestCloseDeletesTheNamespaceAndIsIdempotent(t *testing.T) {
	RequireRoot(t)
	ns, err := New("nstest")
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if listed(t, ns.Name()) {
		t.Fatalf("%s still listed after Close", ns.Name())
	}
	if err := ns.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
}

// TestSetSysctlsChangesTheNamespaceAlone: a load generator's settings
// hold inside the namespace, the machine's own are untouched, and a
// setting the kernel refuses is an error that names it.
func TestSetSysctlsChangesTheNamespaceAlone(t *testing.T) {
	RequireRoot(t)
	read := func(path string) string {
		b, err := os.ReadFile("/proc/sys/" + path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(strings.Fields(string(b)), " ")
	}
	host := map[string]string{}
	for _, s := range LoadGenerator {
		host[s[0]] = read(s[0])
	}
	ns, err := New("nstest")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ns.SetSysctls(LoadGenerator); err != nil {
		t.Fatal(err)
	}
	ns.Do(func() error {
		for _, s := range LoadGenerator {
			if got := read(s[0]); got != s[1] {
				t.Errorf("%s is %q inside the namespace, want %q", s[0], got, s[1])
			}
		}
		return nil
	})
	for _, s := range LoadGenerator {
		if got := read(s[0]); got != host[s[0]] {
			t.Errorf("%s became %q in the machine's namespace, was %q", s[0], got, host[s[0]])
		}
	}
	err = ns.SetSysctls([][2]string{{"net/ipv4/tcp_tw_reuse", "7"}})
	if err == nil || !strings.Contains(err.Error(), "net.ipv4.tcp_tw_reuse=7") {
		t.Errorf("an out-of-range tcp_tw_reuse: %v, want an error naming it", err)
	}
}
