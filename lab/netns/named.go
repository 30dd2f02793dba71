package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
)

// OpenNamed opens the namespace called name, creating it (with loopback
// up) if it does not exist. created says whether this call made it; only
// then should the caller delete it with Close when done, and otherwise
// release it with Release so someone else's namespace survives.
func OpenNamed(name string) (ns *NS, created bool, err error) {
	if name == "" || strings.ContainsAny(name, "/ \t") {
		return nil, false, fmt.Errorf("netns: %q is not a usable namespace name", name)
	}
	if _, err := os.Stat("/run/netns/" + name); err == nil {
		h, err := vnetns.GetFromName(name)
		if err != nil {
			return nil, false, fmt.Errorf("netns: open %s: %w", name, err)
		}
		return &NS{name: name, handle: h}, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, false, fmt.Errorf("netns: ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	h, err := vnetns.GetFromName(name)
	if err != nil {
		exec.Command("ip", "netns", "delete", name).Run()
		return nil, false, fmt.Errorf("netns: open %s: %w", name, err)
	}
	ns = &NS{name: name, handle: h}
	if err := ns.Do(bringUpLoopback); err != nil {
		ns.Close()
		return nil, false, err
	}
	return ns, true, nil
}

// Release closes our handle on a namespace without deleting it.
func (ns *NS) Release() {
	ns.closeOnce.Do(func() { ns.handle.Close() })
}

func bringUpLoopback() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("netns: find loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("netns: bring up loopback: %w", err)
	}
	return nil
}
