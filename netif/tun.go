package netif

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"tunstack/wire"
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
	// HostAddr6 is the kernel side's IPv6 address, e.g.
	// fd00:7475:6e73::1/64; none if invalid. With it, IPv6 is enabled on
	// the device whatever the namespace's default says, and the MTU must
	// be at least 1280 (RFC 8200 §5), below which Linux turns IPv6 off on
	// a device.
	HostAddr6 netip.Prefix
	MTU       int // bytes; default 1500
	// Queues is how many queues the device has (IFF_MULTI_QUEUE), each
	// read and written through its own descriptor (TUN.Queues); 0 or 1
	// opens a device of one queue, as without the flag.
	// tun_multiqueue.go says how the kernel spreads flows over them.
	Queues int
	// TxQueueLen is the device's queue of packets toward the reader, in
	// packets; 0 means DefaultTxQueueLen (tun_queue.go says why that
	// number).
	TxQueueLen int
	// Offload opens the device with virtio-net headers (IFF_VNET_HDR) so
	// that WritePackets can hand the kernel a run of TCP segments of one
	// flow as a single GSO packet, and the device advertises TSO so that a
	// read may bring the kernel's TSO packet of many segments, which
	// ReadPackets cuts back into segments (tun_gso.go). If the kernel
	// refuses, the device is opened without it and OpenTUN logs that once
	// per process; TUN.Offload says which.
	Offload bool
	// WholeTSO, with Offload, makes ReadPackets hand out each TSO packet
	// the kernel sends as it is, one IP packet of up to 64 KiB carrying
	// many segments' payload (the virtio header stripped, its TCP
	// checksum completed), instead of cutting it into segments; each
	// buffer given to ReadPackets must then hold 65535 bytes. The device
	// then also advertises TSO for ECN, which with TSO for both families
	// is the offload set of a typical Ethernet NIC, so that the kernel's
	// TCP sends the units it would send to such a NIC.
	WholeTSO bool
}

// TUN is a Link over a Linux TUN device in IFF_TUN|IFF_NO_PI mode: every read
// and write is one bare IP packet, or, with offload (TUNConfig.Offload), one
// IP packet behind a virtio-net header, where a write may carry a run of TCP
// segments that the kernel takes as one (tun_gso.go).
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

	// With several queues (TUNConfig.Queues): queues on the first is every
	// queue, itself first; queueOf on the others is the first.
	queues  []*TUN
	queueOf *TUN

	// Read state, guarded by readMu.
	readMu    sync.Mutex
	readFn    func(fd uintptr) bool
	readBufs  [][]byte
	readSizes []int
	readN     int
	readErr   error
	// readWaited says that the current read call found the device empty
	// and waited in the poller (readBatch, readDescBatch).
	readWaited bool
	onWait     func() // tests: called when a read call is about to wait
	noWait     bool   // after WakeRead: an empty queue ends the read (tun_wake.go)
	qlen       int    // the device's txqueuelen (QueueLen)

	// With offload, each read lands as [readHdr, buffer, readBig past the
	// buffer's length] (readIov): a packet that fits the buffer stays
	// there; a TSO packet spills into readBig, is gathered there and cut
	// into segments by split, which may hand them out over several calls.
	offload     bool
	wholeTSO    bool // hand TSO packets out whole (TUNConfig.WholeTSO)
	readHdr     [vnetHdrLen]byte
	readIov     [3]unix.Iovec
	readBig     []byte // gsoMaxRead+1, with read offload
	split       gsoSplit
	gsoReads    atomic.Uint64 // TSO packets read
	gsoReadSegs atomic.Uint64 // segments cut from them
	gsoDrops    atomic.Uint64 // packets read that could not be used

	// ReadDescs' state (tun_desc.go), guarded by readMu too.
	desc   descState
	descFn func(fd uintptr) bool

	writeMu    sync.Mutex
	writeFn    func(fd uintptr) bool
	writePkts  [][]byte
	writeDescs []Desc // with WriteDescs, what each of writePkts is; nil with WritePackets
	writeN     int
	writeErr   error

	// With offload: coalesce is cleared if the kernel refuses a GSO write;
	// writeHdr holds the virtio header (zero for a single packet) and, for
	// a run, the merged IP and TCP headers; writeIov points at it and the
	// packets or payloads, so payloads are not copied.
	coalesce    bool
	gsoPackets  atomic.Uint64 // coalesced writes
	gsoSegments atomic.Uint64 // packets they carried
	writeHdr    [vnetHdrLen + gsoMaxHdr]byte
	// wsplit cuts a GSO packet handed to WriteDescs into segments when
	// the kernel does not take it whole (no offload, or coalesce
	// cleared), one at a time into wsplitBuf; it keeps its place across
	// an EAGAIN.
	wsplit    gsoSplit
	wsplitBuf []byte
	// flatBuf holds a packet and its Desc.Tail copied together, for the
	// paths that need it in one piece (cutting it here, no offload).
	flatBuf  []byte
	writeIov [1 + gsoMaxSegs]unix.Iovec
}

// OpenTUN creates a TUN device in the calling thread's network namespace,
// sets the MTU, gives the kernel side cfg.HostAddr and cfg.HostAddr6 (each
// also installs the route to its prefix) and brings the link up, all
// through netlink. If a
// device of that name already exists, whoever made it, OpenTUN fails with
// ErrDeviceBusy and leaves it alone. Close removes the device.
func OpenTUN(cfg TUNConfig) (*TUN, error) {
	if cfg.Name == "" {
		cfg.Name = "tun0"
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.TxQueueLen < 0 {
		return nil, fmt.Errorf("netif: TxQueueLen %d is negative: give a queue length in packets, or 0 for %d", cfg.TxQueueLen, DefaultTxQueueLen)
	}
	if cfg.TxQueueLen == 0 {
		cfg.TxQueueLen = DefaultTxQueueLen
	}
	if a := cfg.HostAddr6; a.IsValid() {
		if !a.Addr().Is6() || a.Addr().Is4In6() || a.Addr().IsUnspecified() || a.Addr().IsMulticast() {
			return nil, fmt.Errorf("netif: HostAddr6 %v is not a unicast IPv6 address: give one such as fd00:7475:6e73::1/64", a)
		}
		if cfg.MTU < wire.IPv6MinMTU {
			// RFC 8200 §5: every IPv6 link carries 1280-byte packets;
			// Linux's addrconf turns IPv6 off on a device with a smaller
			// MTU, taking its addresses away.
			return nil, fmt.Errorf("netif: MTU %d is below IPv6's minimum of %d: give an MTU of %d or more, or no IPv6 address", cfg.MTU, wire.IPv6MinMTU, wire.IPv6MinMTU)
		}
	}
	if cfg.Queues < 0 || cfg.Queues > MaxQueues {
		return nil, fmt.Errorf("netif: %d queues: give 1 to %d", cfg.Queues, MaxQueues)
	}
	fd, offload, err := openTUNDevice(cfg.Name, cfg.Offload, cfg.WholeTSO, cfg.Queues > 1)
	if err != nil {
		return nil, err
	}
	// From here the device exists and is ours: closing fd removes it,
	// because it is not persistent.
	t := newTUN(fd, cfg.Name, cfg.MTU, offload, offload && cfg.WholeTSO)
	t.qlen = cfg.TxQueueLen
	fail := func(what string, err error) (*TUN, error) {
		t.Close()
		return nil, fmt.Errorf("netif: %s on %s: %w", what, cfg.Name, err)
	}
	if t.raw, err = t.file.SyscallConn(); err != nil {
		return fail("raw conn", err)
	}
	if cfg.Queues > 1 {
		if err := t.attachQueues(cfg.Queues); err != nil {
			return fail(fmt.Sprintf("attach %d queues", cfg.Queues), err)
		}
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
	// The MTU first: set after the addresses, a value below 1280 would
	// take the IPv6 address away again (OpenTUN refuses that case anyway).
	if err := t.nl.LinkSetMTU(link, cfg.MTU); err != nil {
		return fail(fmt.Sprintf("set MTU %d", cfg.MTU), err)
	}
	if err := t.nl.LinkSetTxQLen(link, cfg.TxQueueLen); err != nil {
		return fail(fmt.Sprintf("set txqueuelen %d", cfg.TxQueueLen), err)
	}
	if cfg.HostAddr.IsValid() {
		if err := t.nl.AddrAdd(link, netlinkAddr(cfg.HostAddr, 0)); err != nil {
			return fail("add address "+cfg.HostAddr.String(), err)
		}
	}
	var routes *nl.NetlinkSocket
	if cfg.HostAddr6.IsValid() {
		if err := enableIPv6(cfg.Name); err != nil {
			return fail("enable IPv6", err)
		}
		// Subscribed before the address exists, so that the local route's
		// insertion cannot be missed (waitLocal6).
		if routes, err = subscribeRoutes6(); err != nil {
			return fail("subscribe to IPv6 routes", err)
		}
		defer routes.Close()
		// IFA_F_NODAD: the address is never tentative, so a program can
		// bind to it, and the kernel use it as a source, as soon as
		// OpenTUN returns. Without it the address stays tentative until
		// duplicate address detection (RFC 4862 §5.4) has run, and bind(2)
		// or a connect from it fails with EADDRNOTAVAIL meanwhile; a
		// point-to-point TUN has no other host whose address could
		// collide. (On a NOARP device like a TUN, Linux's
		// addrconf_dad_begin() skips the probes anyway, but still from a
		// work queue.)
		if err := t.nl.AddrAdd(link, netlinkAddr(cfg.HostAddr6, unix.IFA_F_NODAD)); err != nil {
			return fail("add address "+cfg.HostAddr6.String(), err)
		}
	}
	if err := t.nl.LinkSetUp(link); err != nil {
		return fail("set link up", err)
	}
	if routes != nil {
		if err := t.waitLocal6(routes, cfg.HostAddr6.Addr(), local6Timeout); err != nil {
			return fail("configure "+cfg.HostAddr6.String(), err)
		}
	}
	return t, nil
}

// newTUN is the TUN over fd, a queue of the device name; its raw conn is
// the caller's to set.
func newTUN(fd int, name string, mtu int, offload, wholeTSO bool) *TUN {
	t := &TUN{name: name, mtuBytes: mtu, offload: offload, wholeTSO: wholeTSO,
		coalesce: offload, file: os.NewFile(uintptr(fd), "/dev/net/tun")}
	if offload && !wholeTSO {
		t.readBig = make([]byte, gsoMaxRead+1)
	}
	// The callbacks are built once, so that a read or write does not
	// allocate a closure.
	t.readFn, t.descFn, t.writeFn = t.readBatch, t.readDescBatch, t.writeBatch
	return t
}

// netlinkAddr is p as netlink's address, with IFA_F_* flags.
func netlinkAddr(p netip.Prefix, flags int) *netlink.Addr {
	return &netlink.Addr{Flags: flags, IPNet: &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
}

// openTUNDevice opens /dev/net/tun and creates the device name on it, with
// several queues if multiQueue (IFF_MULTI_QUEUE; this is the first). With
// offload it asks for virtio-net headers of 10 bytes and for TSO packets
// of either family with partial checksums on reads (with wholeTSO, ECN TSO
// packets too); if the kernel refuses any of that, it closes the device,
// opens it again without, logs once and reports offload false.
func openTUNDevice(name string, offload, wholeTSO, multiQueue bool) (fd int, withOffload bool, err error) {
	var mq uint16
	if multiQueue {
		mq = unix.IFF_MULTI_QUEUE
	}
	if offload {
		fd, err := createTUN(name, unix.IFF_VNET_HDR|mq)
		if err != nil {
			if !errors.Is(err, unix.EINVAL) {
				return -1, false, err
			}
			logNoOffload(name, err)
		} else {
			// TUNSETOFFLOAD says what the kernel may hand us on a read:
			// packets whose checksum it left to us (TUN_F_CSUM) and TCP
			// TSO packets over IPv4 and IPv6 (TUN_F_TSO4, TUN_F_TSO6),
			// which readBatch cuts into segments. Writes of GSO packets
			// do not depend on these flags. Packets handed out whole may
			// also be ECN TSO packets (CWR set), which gsoSplit does not
			// cut.
			flags := unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
			if wholeTSO {
				flags |= unix.TUN_F_TSO_ECN
			}
			if err = unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err == nil {
				err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, flags)
			}
			if err == nil {
				return fd, true, nil
			}
			// Closing the descriptor removes the device (it is not
			// persistent), so the name is free again.
			unix.Close(fd)
			logNoOffload(name, err)
		}
	}
	fd, err = createTUN(name, mq)
	return fd, false, err
}

// createTUN opens /dev/net/tun and creates the device with TUNSETIFF.
func createTUN(name string, extraFlags uint16) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, openError(name, "open /dev/net/tun", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("netif: bad TUN device name %q: %w", name, err)
	}
	// IFF_TUN_EXCL makes the kernel refuse (EBUSY) any existing device of
	// this name instead of attaching to it.
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_TUN_EXCL | extraFlags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if extraFlags&unix.IFF_VNET_HDR != 0 && errors.Is(err, unix.EINVAL) {
			return -1, err // the caller retries without IFF_VNET_HDR
		}
		return -1, openError(name, "TUNSETIFF", err)
	}
	return fd, nil
}

var noOffloadOnce sync.Once

// logNoOffload says once per process that TUN offload is unavailable.
func logNoOffload(name string, err error) {
	noOffloadOnce.Do(func() {
		log.Printf("netif: the kernel refused virtio-net offload on TUN %s (%v): one write(2) per packet", name, err)
	})
}

// Offload reports whether the device carries virtio-net headers, so that
// WritePackets coalesces TCP segments (it stops doing so, for good, if the
// kernel ever refuses a coalesced write).
func (t *TUN) Offload() bool { return t.offload }

// GSOStats returns how many GSO packets WritePackets and WriteDescs have
// written and how many segments they carried in all. On the first queue
// of a multiqueue device (TUNConfig.Queues) these and the counters below
// are the sums over its queues, the device's; on another queue, that
// queue's own.
func (t *TUN) GSOStats() (packets, segments uint64) {
	for _, q := range t.Queues() {
		packets += q.gsoPackets.Load()
		segments += q.gsoSegments.Load()
	}
	return packets, segments
}

// GSOReadStats returns how many TSO packets ReadPackets or ReadDescs has
// read and how many segments they carried (ReadPackets cuts them,
// ReadDescs hands them over whole).
func (t *TUN) GSOReadStats() (packets, segments uint64) {
	for _, q := range t.Queues() {
		packets += q.gsoReads.Load()
		segments += q.gsoReadSegs.Load()
	}
	return packets, segments
}

// GSODrops is the number of packets the kernel handed us on a read that
// could not be used: a GSO packet of a kind we did not ask for, or one that
// does not parse or whose segments do not fit the caller's buffers. It
// stays zero unless the kernel misbehaves.
func (t *TUN) GSODrops() uint64 {
	var n uint64
	for _, q := range t.Queues() {
		n += q.gsoDrops.Load()
	}
	return n
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
// a burst costs one wake-up; but a call that found the device empty and
// waited returns with the packet that woke it (endsBatch). TUN reads one packet per read(2), or with
// offload per readv(2) of the virtio header and the buffer, where a TSO
// packet brings many segments at once: they fill the following buffers,
// and what does not fit is returned by the next call before anything is
// read. Each buffer should hold MTU() bytes: the kernel truncates a packet
// that does not fit.
func (t *TUN) ReadPackets(bufs [][]byte, sizes []int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	t.readMu.Lock()
	defer t.readMu.Unlock()
	t.readBufs, t.readSizes = bufs, sizes
	n, err := t.read(t.readFn)
	t.readBufs, t.readSizes = nil, nil
	return n, err
}

// read runs fn, a RawConn read callback that counts what it reads in
// readN and leaves an error in readErr, and returns how many packets it
// read: an error only if none, net.ErrClosed after Close. The caller
// holds readMu.
func (t *TUN) read(fn func(fd uintptr) bool) (int, error) {
	t.readN, t.readErr, t.readWaited = 0, nil, false
	err := t.raw.Read(fn)
	if t.woken(err) {
		// WakeRead: take what is queued now, without waiting for more,
		// and up to a full batch (not only a packet that woke a wait).
		t.noWait, t.readWaited = true, false
		err = t.raw.Read(fn)
		t.noWait = false
	}
	n := t.readN
	if err == nil {
		err = t.readErr
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
		buf := t.readBufs[t.readN]
		var n int
		var ok bool
		if t.split.pending() {
			n, ok = t.nextSegment(buf)
		} else {
			r, err := t.readOne(fd, buf)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return t.endsBatch()
			case err != nil:
				t.readErr = err
				return true
			}
			n, ok = r, true
			if t.offload {
				n, ok = t.finishOffloadRead(buf, r)
			}
		}
		if ok {
			t.readSizes[t.readN] = n
			t.readN++
			// The segments of a TSO packet still being cut need no
			// read: they join the batch.
			if t.readWaited && !t.split.pending() {
				return true
			}
		}
	}
	return true
}

// endsBatch is what a read callback returns on EAGAIN: true (done) if it
// read something, else false, asking the poller to wait, and noting that
// this call waited. A call that waited returns with the first packet that
// arrives rather than reading on until EAGAIN: the device was empty a
// moment before, so the next read would most likely find it empty again,
// and that read(2) would stand between the packet and whoever waits for
// it (a request/response exchange paid three reads per request: the
// request, the empty one ending the batch, and the one the next call must
// make before it waits, since Go's poller forgets a readiness between two
// RawConn.Read calls). What a burst brings beyond the first packet is read
// by the next call, which finds it without waiting.
func (t *TUN) endsBatch() bool {
	if t.readN > 0 || t.noWait {
		return true // after WakeRead: an empty queue ends the read
	}
	t.readWaited = true
	if t.onWait != nil {
		t.onWait()
	}
	return false
}

// finishOffloadRead takes a read of n bytes, virtio header included, and
// returns the size of the packet now in buf: the packet itself, its
// checksum completed, or the first segment cut from a TSO packet, whose
// others follow through nextSegment. With wholeTSO a TSO packet is
// returned as it is, its checksum completed like any other's. ok is false
// for a read that yields nothing usable (counted in gsoDrops).
func (t *TUN) finishOffloadRead(buf []byte, n int) (int, bool) {
	if n < vnetHdrLen {
		return 0, false
	}
	n -= vnetHdrLen
	h := parseVnetHdr(t.readHdr[:])
	if t.wholeTSO && h.gsoType != vnetGSONone {
		// The checksum of a TSO packet is completed over the whole packet,
		// exactly as a single packet's: the kernel put the pseudo-header
		// sum over its full length in the field.
		h.gsoType = vnetGSONone
	}
	if h.gsoType == vnetGSONone {
		if n > len(buf) || !finishReadPacket(h, buf[:n]) {
			t.gsoDrops.Add(1) // larger than the buffer, or unusable
			return 0, false
		}
		return n, true
	}
	// The packet's head is in buf, the rest at its place in readBig:
	// gather it there and cut it.
	copy(t.readBig, buf[:min(n, len(buf))])
	if n > len(t.readBig) || !t.split.start(h, t.readBig[:n]) {
		t.gsoDrops.Add(1)
		return 0, false
	}
	t.gsoReads.Add(1)
	return t.nextSegment(buf)
}

// nextSegment cuts the next segment of the TSO packet being split into buf.
// A segment that does not fit drops the rest of the packet.
func (t *TUN) nextSegment(buf []byte) (int, bool) {
	n, ok := t.split.next(buf)
	if !ok {
		t.split.drop()
		t.gsoDrops.Add(1)
		return 0, false
	}
	t.gsoReadSegs.Add(1)
	return n, true
}

// readOne reads one packet into buf, with offload its virtio header into
// readHdr first. n counts the header.
func (t *TUN) readOne(fd uintptr, buf []byte) (int, error) {
	if !t.offload {
		return unix.Read(int(fd), buf)
	}
	if len(buf) == 0 {
		return 0, unix.EINVAL
	}
	t.readIov[0].Base = &t.readHdr[0]
	t.readIov[0].SetLen(vnetHdrLen)
	t.readIov[1].Base = &buf[0]
	t.readIov[1].SetLen(len(buf))
	iovs := 2
	if len(buf) < len(t.readBig) {
		// A TSO packet continues past buf, at its place in readBig.
		t.readIov[2].Base = &t.readBig[len(buf)]
		t.readIov[2].SetLen(len(t.readBig) - len(buf))
		iovs = 3
	}
	n, _, errno := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&t.readIov[0])), uintptr(iovs))
	t.readIov[1].Base = nil // do not keep the caller's buffer reachable
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// WritePackets implements Link. Without offload it makes one write(2) per
// packet. With offload, runs of TCP segments that the kernel can take as one
// GSO packet (gsoRun) go in one writev(2), the rest one by one behind a zero
// virtio header.
func (t *TUN) WritePackets(pkts [][]byte) (int, error) {
	return t.write(pkts, nil)
}

// WriteDescs implements DescWriter: WritePackets, where a packet with a
// partial checksum goes to the kernel with NEEDS_CSUM for it to finish
// (inside a GSO packet it is finished like any other), or without
// offload is finished here first, and a GSO packet goes whole behind a
// virtio header saying so (writeGSO).
func (t *TUN) WriteDescs(pkts [][]byte, descs []Desc) (int, error) {
	if len(descs) < len(pkts) {
		return 0, fmt.Errorf("netif: WriteDescs with %d packets and %d descriptors: give one descriptor per packet", len(pkts), len(descs))
	}
	return t.write(pkts, descs)
}

func (t *TUN) write(pkts [][]byte, descs []Desc) (int, error) {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	t.writePkts, t.writeDescs, t.writeN, t.writeErr = pkts, descs, 0, nil
	err := t.raw.Write(t.writeFn)
	n, werr := t.writeN, t.writeErr
	t.writePkts, t.writeDescs = nil, nil
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
		var descs []Desc
		if t.writeDescs != nil {
			descs = t.writeDescs[t.writeN:]
		}
		var sent int
		var err error
		if descs != nil && descs[0].GSO != GSONone {
			sent, err = 1, t.writeGSO(fd, t.writePkts[t.writeN], descs[0])
		} else {
			sent, err = t.writeOne(fd, t.writePkts[t.writeN:], descs)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err == errGSORefused || err == unix.EINVAL && sent > 1:
			// The kernel refused the GSO packet: send segments one by
			// one from now on.
			t.coalesce = false
			logNoGSOWrite(t.name, err)
			continue
		case err != nil:
			t.writeErr = err
			return true
		}
		if sent > 1 {
			t.gsoPackets.Add(1)
			t.gsoSegments.Add(uint64(sent))
		}
		t.writeN += sent
	}
	return true
}

// errGSORefused is writeGSO's EINVAL from the kernel on a GSO packet,
// which makes the TUN cut the packets itself from then on.
var errGSORefused = errors.New("the kernel refused a GSO packet (EINVAL)")

// WritesGSO implements GSOWriter: a TUN with offload takes GSO packets
// and hands them to the kernel whole. Without offload it would have to cut
// them, one more copy of every segment than writing the segments the
// engine makes, so it says no, though WriteDescs cuts any it is given
// (writeSplit).
func (t *TUN) WritesGSO() bool { return t.offload }

// writeGSO writes p, a GSO packet d describes: with offload as one packet
// behind a virtio header with its gso_type and gso_size (the kernel
// delivers it whole or cuts it as tcp_gso_segment does), else, or once the
// kernel refused one, cut into segments here.
func (t *TUN) writeGSO(fd uintptr, p []byte, d Desc) error {
	start := d.CsumStart
	if d.Csum != CsumPartial || d.GSOSize <= 0 || d.GSOSize > 0xffff || start < 0 || start+wire.TCPHeaderLen > len(p) {
		return unix.EINVAL
	}
	total := len(p) + d.TailLen()
	hdrLen := start + wire.TCP(p[start:]).DataOffset()
	if hdrLen < start+wire.TCPHeaderLen || hdrLen > len(p) || hdrLen >= total || total > gsoMaxRead {
		return unix.EINVAL
	}
	if !t.offload || !t.coalesce || t.wsplit.pending() {
		if !t.wsplit.pending() {
			p = t.flatten(p, d)
		}
		return t.writeSplit(fd, p, d)
	}
	gsoType := uint8(vnetGSOTCPv4)
	if d.GSO == GSOTCPv6 {
		gsoType = vnetGSOTCPv6
	}
	// The TCP checksum field holds the pseudo-header sum over the whole
	// TCP length (CsumPartial): NEEDS_CSUM from csum_start, as a GSO
	// packet of coalesced segments carries it (putGSOHeader).
	vnetHdr{
		flags: vnetFlagNeedsCsum, gsoType: gsoType, hdrLen: uint16(hdrLen), gsoSize: uint16(d.GSOSize),
		csumStart: uint16(start), csumOffset: tcpCsumOffset,
	}.put(t.writeHdr[:])
	t.writeIov[0].Base = &t.writeHdr[0]
	t.writeIov[0].SetLen(vnetHdrLen)
	iovs := t.packetIovs(p, d)
	_, _, errno := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&t.writeIov[0])), uintptr(iovs))
	t.dropIovs(iovs)
	switch {
	case errno == unix.EINVAL:
		return errGSORefused
	case errno != 0:
		return errno
	}
	t.gsoPackets.Add(1)
	t.gsoSegments.Add(uint64(d.Segments(hdrLen, total)))
	return nil
}

// packetIovs points writeIov[1:] at p and the spans of d.Tail behind it
// (writeIov[0], the virtio header, is the caller's) and returns how many
// iovecs the write takes: a zero-copy chunk goes out as header, packet
// and one or two spans of the engine's send buffer, copied by the kernel
// alone.
func (t *TUN) packetIovs(p []byte, d Desc) int {
	t.writeIov[1].Base = unsafe.SliceData(p)
	t.writeIov[1].SetLen(len(p))
	iovs := 2
	for _, s := range d.Tail {
		if len(s) > 0 {
			t.writeIov[iovs].Base = unsafe.SliceData(s)
			t.writeIov[iovs].SetLen(len(s))
			iovs++
		}
	}
	return iovs
}

// dropIovs clears the packet pointers of the first iovs iovecs, so that
// the caller's packets do not stay reachable from the TUN.
func (t *TUN) dropIovs(iovs int) {
	for i := 1; i < iovs; i++ {
		t.writeIov[i].Base = nil
	}
}

// flatten returns p with d.Tail behind it in one slice: p itself when
// there is no tail, else a copy in flatBuf (valid until the next call),
// for the paths that need the packet in one piece.
func (t *TUN) flatten(p []byte, d Desc) []byte {
	if d.TailLen() == 0 {
		return p
	}
	if t.flatBuf == nil {
		t.flatBuf = make([]byte, gsoMaxRead)
	}
	n := copy(t.flatBuf, p)
	n += copy(t.flatBuf[n:], d.Tail[0])
	n += copy(t.flatBuf[n:], d.Tail[1])
	return t.flatBuf[:n]
}

// writeSplit writes the GSO packet p as the segments the kernel's
// tcp_gso_segment would cut from it, each with a complete checksum. An
// EAGAIN or EINTR keeps its place: the next call goes on from the segment
// that was not written.
func (t *TUN) writeSplit(fd uintptr, p []byte, d Desc) error {
	if !t.wsplit.pending() {
		gsoType := uint8(vnetGSOTCPv4)
		if d.GSO == GSOTCPv6 {
			gsoType = vnetGSOTCPv6
		}
		if !t.wsplit.start(vnetHdr{gsoType: gsoType, gsoSize: uint16(d.GSOSize)}, p) {
			return unix.EINVAL
		}
		if t.wsplitBuf == nil {
			t.wsplitBuf = make([]byte, gsoMaxHdr+0xffff)
		}
	}
	for t.wsplit.pending() {
		at := t.wsplit
		n, ok := t.wsplit.next(t.wsplitBuf)
		if !ok {
			t.wsplit.drop()
			return unix.EINVAL
		}
		var err error
		if t.offload {
			clear(t.writeHdr[:vnetHdrLen]) // gso_type NONE, checksum complete
			t.writeIov[0].Base = &t.writeHdr[0]
			t.writeIov[0].SetLen(vnetHdrLen)
			t.writeIov[1].Base = &t.wsplitBuf[0]
			t.writeIov[1].SetLen(n)
			_, _, errno := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&t.writeIov[0])), 2)
			if errno != 0 {
				err = errno
			}
		} else {
			_, err = unix.Write(int(fd), t.wsplitBuf[:n])
		}
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			t.wsplit = at
			return err
		case err != nil:
			t.wsplit.drop()
			return err
		}
	}
	t.wsplit.pkt = nil // do not keep the caller's packet reachable
	return nil
}

// writeOne writes the first packet of pkts, or the run that starts there,
// and returns how many packets it covered (or tried to). descs, if not
// nil, describe pkts.
func (t *TUN) writeOne(fd uintptr, pkts [][]byte, descs []Desc) (int, error) {
	var d Desc
	if descs != nil {
		d = descs[0]
	}
	if !t.offload {
		p := t.flatten(pkts[0], d)
		if !finishPartial(p, d) {
			return 1, unix.EINVAL
		}
		_, err := unix.Write(int(fd), p)
		return 1, err
	}
	run := 1
	if t.coalesce {
		plain := pkts
		for i := range min(len(pkts), len(descs)) {
			if descs[i].GSO != GSONone || descs[i].TailLen() > 0 {
				// A GSO packet goes alone (writeGSO), and so does one
				// with a tail, whose header gsoRun cannot compare.
				plain = pkts[:i]
				break
			}
		}
		run = max(gsoRun(plain), 1)
	}
	var iovs int
	if run == 1 {
		clear(t.writeHdr[:vnetHdrLen]) // gso_type NONE, checksum complete
		if d.Csum == CsumPartial {
			// The kernel finishes the sum from csum_start
			// (virtio_net_hdr_to_skb: CHECKSUM_PARTIAL).
			if d.CsumStart < 0 || d.CsumStart+wire.TCPHeaderLen > len(pkts[0]) {
				return 1, unix.EINVAL
			}
			vnetHdr{flags: vnetFlagNeedsCsum, csumStart: uint16(d.CsumStart), csumOffset: tcpCsumOffset}.put(t.writeHdr[:])
		}
		t.writeIov[0].Base = &t.writeHdr[0]
		t.writeIov[0].SetLen(vnetHdrLen)
		iovs = t.packetIovs(pkts[0], d)
	} else {
		hdr := putGSOHeader(t.writeHdr[:], pkts[:run])
		t.writeIov[0].Base = &t.writeHdr[0]
		t.writeIov[0].SetLen(hdr)
		hdrLen := hdr - vnetHdrLen
		for i, p := range pkts[:run] {
			t.writeIov[1+i].Base = &p[hdrLen]
			t.writeIov[1+i].SetLen(len(p) - hdrLen)
		}
		iovs = 1 + run
	}
	_, _, errno := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&t.writeIov[0])), uintptr(iovs))
	t.dropIovs(iovs)
	if errno != 0 {
		return run, errno
	}
	return run, nil
}

var noGSOWriteOnce sync.Once

// logNoGSOWrite says once per process that a coalesced write was refused.
func logNoGSOWrite(name string, err error) {
	noGSOWriteOnce.Do(func() {
		log.Printf("netif: the kernel refused a GSO write on TUN %s (%v): writing segments one by one", name, err)
	})
}

// Close implements Link. Closing the descriptor removes the device, its
// address and its route; blocked reads return net.ErrClosed. os.File.Close
// on a polled descriptor waits until the descriptor is really closed, so the
// device is gone when Close returns.
func (t *TUN) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		if t.queueOf != nil {
			// Another queue of a device: the device stays with the first.
			err = t.file.Close()
			return
		}
		t.closeQueues()
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
