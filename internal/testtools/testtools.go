// Package testtools tells tests whether a program they run is installed and,
// when it is not, skips them with the program's name and the Debian package
// that provides it. The list of programs lives in tools.list beside this
// file; scripts/test-tools.sh reads the same list to install them, so the
// tests and the installer cannot disagree about what is needed.
package testtools

import (
	_ "embed"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

//go:embed tools.list
var list string

// Package returns the Debian package that provides the program name, from
// tools.list, and false for a program the list does not name.
func Package(name string) (string, bool) {
	for line := range strings.Lines(list) {
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && f[0] == name {
			return f[1], true
		}
	}
	return "", false
}

// Missing returns nil when the program name is on PATH, and otherwise an
// error that names it, its package and how to install it.
func Missing(name string) error {
	if _, err := exec.LookPath(name); err == nil {
		return nil
	}
	pkg, ok := Package(name)
	if !ok {
		// A test that runs a program the list does not name is a bug in the
		// test: the installer would never install it.
		return fmt.Errorf("%s is not installed, and internal/testtools/tools.list does not name it: add it there with its Debian package", name)
	}
	return fmt.Errorf("%s is not installed (Debian package %s; `sudo make test` installs it)", name, pkg)
}

// Need skips the test unless every named program is installed.
func Need(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if err := Missing(name); err != nil {
			if _, listed := Package(name); !listed {
				t.Fatal(err)
			}
			t.Skip(err)
		}
	}
}
