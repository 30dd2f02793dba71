package netif

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenErrorMapsSystemErrorsToSentencesAPersonCanActOn(t *testing.T) {
	cases := []struct {
		errno unix.Errno
		want  error
		text  string
	}{
		{unix.EPERM, ErrNotPermitted, "needs root or CAP_NET_ADMIN: run with sudo"},
		{unix.EACCES, ErrNotPermitted, "needs root or CAP_NET_ADMIN"},
		{unix.ENOENT, ErrNoTunDevice, "/dev/net/tun is missing: load the tun module (modprobe tun)"},
		{unix.ENODEV, ErrNoTunDevice, "modprobe tun"},
		{unix.EBUSY, ErrDeviceBusy, "device tunx9 is busy: another program holds it; pick another --dev"},
	}
	for _, c := range cases {
		err := openError("tunx9", "TUNSETIFF", c.errno)
		if !errors.Is(err, c.want) {
			t.Errorf("%v: errors.Is(%v, %v) = false", c.errno, err, c.want)
		}
		if !errors.Is(err, c.errno) {
			t.Errorf("%v: the cause is not wrapped in %v", c.errno, err)
		}
		if !strings.HasPrefix(err.Error(), c.text) && !strings.Contains(err.Error(), c.text) {
			t.Errorf("%v: message %q lacks %q", c.errno, err, c.text)
		}
	}
	other := openError("tunx9", "TUNSETIFF", unix.EINVAL)
	for _, s := range []error{ErrNotPermitted, ErrNoTunDevice, ErrDeviceBusy} {
		if errors.Is(other, s) {
			t.Errorf("EINVAL mapped to %v", s)
		}
	}
	if !errors.Is(other, unix.EINVAL) {
		t.Errorf("EINVAL not wrapped in %v", other)
	}
}
