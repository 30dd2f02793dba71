package netns

import (
	"os"
	"testing"
)

// RequireRoot skips the test unless it runs as root, which creating network
// namespaces and TUN devices needs. CI runs as root, so there these tests
// run; on a laptop they skip with a message that says how to run them.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN) to create network namespaces; run as root or via `sudo make test`")
	}
}
