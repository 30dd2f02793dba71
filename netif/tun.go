package netif

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Errors OpenTUN returns, each a sentence a person can act on. The returned
// error also wraps the system call's error.
var (
	ErrNotPermitted = errors.New("creating a TUN device needs root or CAP_NET_ADMIN: run with sudo")
	ErrNoTunDevice  = errors.New("/dev/net/tun is missing: load the tun module (modprobe tun)")
	// ErrDeviceBusy is matched by errors.Is; the message returned names the
	// device.
	ErrDeviceBusy = errors.New("TUN device is busy: another program holds it; pick another --dev")
)

// TUNConfig describes the device OpenTUN creates.
type TUNConfig struct {
	Name     string       // interface name; default "tun0"
	HostAddr netip.Prefix // address of the kernel side, e.g. 198.18.0.1/24; none if invalid
	MTU      int          // bytes; default 1500
}

// TUN is a Link over a Linux TUN device in IFF_TUN|IFF_NO_PI mode: every read
// and write is one bare IP packet.
//
// The descriptor is non-blocking and registered with the Go runtime poller
// (os.NewFile does this for a non-blocking descriptor), so a blocked
// ReadPackets parks its goroutine rather than a thread, and Close wakes it.
// A blocking descriptor read in a system call would not be woken by close(2).
//
// The device is opened with TUNSETIFF directly rather than through
// github.com/songgao/water: water cannot pass IFF_TUN_EXCL, and without it
// TUNSETIFF attaches to an existing persistent device of the same name (and
// water then clears its persist flag), which would change, then delete,
// another program's device. It also leaks the descriptor when TUNSETIFF fails.
type TUN struct {
	name     string
	index    int
	mtuBytes int
	file     *os.File
	raw      syscall.RawConn
	nl       *netlink.Handle // bound to the namespace the device lives in
	closed   atomic.Bool

	closeOnce sync.Once

	// Read state, guarded by readMu. readFn is built once so that a
	// ReadPackets call does not allocate a closure.
	readMu    sync.Mutex
	readFn    func(fd uintptr) bool
	readBufs  [][]byte
	readSizes []int
	readN     int
	readErr   error

	writeMu   sync.Mutex
	writeFn   func(fd uintptr) bool
	writePkts [][]byte
	writeN    int
	writeErr  error
}

// OpenTUN creates a TUN device in the calling thread's network namespace,
// gives the kernel side cfg.HostAddr (which also installs the route to its
// prefix), sets the MTU and brings the link up, all through netlink. If a
// device of that name already exists, whoever made it, OpenTUN fails with
// ErrDeviceBusy and leaves it alone. Close removes the device.
func OpenTUN(cfg TUNConfig) (*TUN, error) {
	if cfg.Name == "" {
		cfg.Name = "tun0"
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openError(cfg.Name, "open /dev/net/tun", err)
	}
	ifr, err := unix.NewIfreq(cfg.Name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netif: bad TUN device name %q: %w", cfg.Name, err)
	}
	// IFF_TUN_EXCL makes the kernel refuse (EBUSY) any existing device of
	// this name instead of attaching to it.
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_TUN_EXCL)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, openError(cfg.Name, "TUNSETIFF", err)
	}
	// From here the device exists and is ours: closing fd removes it,
	// because it is not persistent.
	t := &TUN{name: cfg.Name, mtuBytes: cfg.MTU, file: os.NewFile(uintptr(fd), "/dev/net/tun")}
	fail := func(what string, err error) (*TUN, error) {
		t.Close()
		return nil, fmt.Errorf("netif: %s on %s: %w", what, cfg.Name, err)
	}
	if t.raw, err = t.file.SyscallConn(); err != nil {
		return fail("raw conn", err)
	}
	// A handle's sockets belong to the namespace they were opened in, so
	// Close finds the device even if called from another thread.
	if t.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		return fail("netlink", err)
	}
	link, err := t.nl.LinkByName(cfg.Name)
	if err != nil {
		return fail("find link", err)
	}
	t.index = link.Attrs().Index
	if cfg.HostAddr.IsValid() {
		addr := &netlink.Addr{IPNet: &net.IPNet{
			IP:   cfg.HostAddr.Addr().AsSlice(),
			Mask: net.CIDRMask(cfg.HostAddr.Bits(), cfg.HostAddr.Addr().BitLen()),
		}}
		if err := t.nl.AddrAdd(link, addr); err != nil {
			return fail("add address "+cfg.HostAddr.String(), err)
		}
	}
	if err := t.nl.LinkSetMTU(link, cfg.MTU); err != nil {
		return fail(fmt.Sprintf("set MTU %d", cfg.MTU), err)
	}
	if err := t.nl.LinkSetUp(link); err != nil {
		return fail("set link up", err)
	}
	t.readFn = t.readBatch
	t.writeFn = t.writeBatch
	return t, nil
}

// tunError is the error OpenTUN returns for the failures a person can fix:
// its message is one sentence, and errors.Is matches both the sentinel and
// the system call's error.
type tunError struct {
	kind  error
	msg   string
	cause error
}

func (e *tunError) Error() string   { return e.msg }
func (e *tunError) Unwrap() []error { return []error{e.kind, e.cause} }

// openError maps a system call failure while creating the device to one of
// the sentinel errors when it is one a person can fix.
func openError(name, op string, err error) error {
	cause := &os.SyscallError{Syscall: op, Err: err}
	var kind error
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		kind = ErrNotPermitted
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
		kind = ErrNoTunDevice
	case errors.Is(err, unix.EBUSY):
		return &tunError{ErrDeviceBusy, fmt.Sprintf("device %s is busy: another program holds it; pick another --dev (%v)", name, cause), cause}
	default:
		return fmt.Errorf("netif: create TUN device %s: %w", name, cause)
	}
	return &tunError{kind, fmt.Sprintf("%v (%v)", kind, cause), cause}
}

// Name is the interface name.
func (t *TUN) Name() string { return t.name }

// MTU implements Link.
func (t *TUN) MTU() int { return t.mtuBytes }

// ReadPackets implements Link. It waits for the first packet, then keeps
// reading without waiting until the kernel has no more or bufs are full, so
// a burst costs one wake-up. TUN reads one packet per read(2) (there is no
// recvmmsg for it without virtio headers). Each buffer should hold MTU()
// bytes: the kernel truncates a packet that does not fit.
func (t *TUN) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	t.readMu.Lock()
	defer t.readMu.Unlock()
	t.readBufs, t.readSizes, t.readN, t.readErr = bufs, sizes, 0, nil
	err := t.raw.Read(t.readFn)
	n, rerr := t.readN, t.readErr
	t.readBufs, t.readSizes = nil, nil
	if err == nil {
		err = rerr
	}
	if err != nil && n == 0 {
		if t.closed.Load() {
			return 0, net.ErrClosed
		}
		return 0, fmt.Errorf("netif: read %s: %w", t.name, err)
	}
	return n, nil
}

// readBatch is the RawConn callback: it returns false to ask the poller to
// wait for readability, true when done.
func (t *TUN) readBatch(fd uintptr) bool {
	for t.readN < len(t.readBufs) && t.readN < len(t.readSizes) {
		n, err := unix.Read(int(fd), t.readBufs[t.readN])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return t.readN > 0
		case err != nil:
			t.readErr = err
			return true
		}
		t.readSizes[t.readN] = n
		t.readN++
	}
	return true
}

// WritePackets implements Link, one write(2) per packet: TUN has no batched
// write without virtio headers.
func (t *TUN) WritePackets(pkts [][]byte) (int, error) {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	t.writePkts, t.writeN, t.writeErr = pkts, 0, nil
	err := t.raw.Write(t.writeFn)
	n, werr := t.writeN, t.writeErr
	t.writePkts = nil
	if err == nil {
		err = werr
	}
	if err != nil {
		if t.closed.Load() {
			return n, net.ErrClosed
		}
		return n, fmt.Errorf("netif: write %s: %w", t.name, err)
	}
	return n, nil
}

func (t *TUN) writeBatch(fd uintptr) bool {
	for t.writeN < len(t.writePkts) {
		_, err := unix.Write(int(fd), t.writePkts[t.writeN])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err != nil:
			t.writeErr = err
			return true
		}
		t.writeN++
	}
	return true
}

// Close implements Link. Closing the descriptor removes the device, its
// address and its route; blocked reads return net.ErrClosed. os.File.Close
// on a polled descriptor waits until the descriptor is really closed, so the
// device is gone when Close returns.
func (t *TUN) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		err = t.file.Close()
		if t.nl != nil {
			// The device is not persistent, so this finds nothing; it is
			// here so that Close never leaves a device behind. The index
			// check keeps it from deleting a newer device of the same name.
			if l, lerr := t.nl.LinkByName(t.name); lerr == nil && l.Attrs().Index == t.index {
				t.nl.LinkDel(l)
			}
			t.nl.Close()
		}
	})
	return err
}
