package netif

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// IPv6 on the TUN device: what OpenTUN does beyond adding the address.

// local6Timeout bounds the wait for the kernel to make the IPv6 address
// local. It takes a work-queue run, microseconds on an idle machine; the
// bound only turns a kernel that never does it into an error.
const local6Timeout = 10 * time.Second

// enableIPv6 clears disable_ipv6 on the device, in the calling thread's
// namespace (/proc/sys/net shows the namespace of the thread that opens
// it): a namespace whose default says disable_ipv6 = 1 would otherwise
// refuse the address. If the kernel has no IPv6 at all (booted with
// ipv6.disable=1), the file is missing and the error says so.
func enableIPv6(dev string) error {
	path := "/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6"
	err := os.WriteFile(path, []byte("0"), 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("this kernel has no IPv6 (%s is missing; was it booted with ipv6.disable=1?): give no IPv6 address", path)
	}
	return err
}

// subscribeRoutes6 opens a netlink socket, in the calling thread's
// namespace, that receives every change to the IPv6 routing tables.
func subscribeRoutes6() (*nl.NetlinkSocket, error) {
	return nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_IPV6_ROUTE)
}

// waitLocal6 returns once the kernel delivers packets to addr locally, or
// an error after timeout. Linux behaviour: addrconf_dad_completed() ->
// __ipv6_ifa_notify(): an IPv6 address's local route (table local, type
// local, addr/128) is inserted from addrconf's work queue once the link is
// up and duplicate address detection is over, even when IFA_F_NODAD skips
// detection; until then a packet to the address is not delivered, so a
// SYN sent right after OpenTUN returns would be lost. (IPv4's local route
// is inserted synchronously with the address.) routes was subscribed
// (subscribeRoutes6) before the address was added, so the insertion
// cannot slip between the check of the present route and the wait.
func (t *TUN) waitLocal6(routes *nl.NetlinkSocket, addr netip.Addr, timeout time.Duration) error {
	if rs, err := t.nl.RouteGet(addr.AsSlice()); err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("the kernel did not make %v a local address within %v", addr, timeout)
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		routes.SetReceiveTimeout(&tv)
		msgs, _, err := routes.Receive()
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("reading IPv6 route changes: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type == unix.RTM_NEWROUTE && isLocalRoute6(m.Data, addr) {
				return nil
			}
		}
	}
}

// isLocalRoute6 reports whether b, the body of an RTM_NEWROUTE message, is
// the local route of addr: an IPv6 route of type local to addr/128.
func isLocalRoute6(b []byte, addr netip.Addr) bool {
	if len(b) < unix.SizeofRtMsg {
		return false
	}
	rtm := nl.DeserializeRtMsg(b)
	if rtm.Family != unix.AF_INET6 || rtm.Type != unix.RTN_LOCAL || rtm.Dst_len != 128 {
		return false
	}
	attrs, err := nl.ParseRouteAttr(b[rtm.Len():])
	if err != nil {
		return false
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.RTA_DST && len(a.Value) == 16 {
			return netip.AddrFrom16([16]byte(a.Value)) == addr
		}
	}
	return false
}
