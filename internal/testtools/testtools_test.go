package testtools

import (
	"strings"
	"testing"
)

func TestPackageNamesTheDebianPackageOfEachListedProgram(t *testing.T) {
	for name, want := range map[string]string{"ping": "iputils-ping", "ip": "iproute2", "tshark": "tshark", "sysctl": "procps"} {
		if got, ok := Package(name); !ok || got != want {
			t.Errorf("Package(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if _, ok := Package("no-such-program"); ok {
		t.Error("Package found a program the list does not name")
	}
}

func TestMissingNamesProgramAndPackage(t *testing.T) {
	// The list names the program; PATH cannot have it under this name.
	saved := list
	defer func() { list = saved }()
	list = "tunstack-absent-tool  tunstack-absent-pkg\n"
	err := Missing("tunstack-absent-tool")
	if err == nil || !strings.Contains(err.Error(), "tunstack-absent-tool is not installed (Debian package tunstack-absent-pkg") {
		t.Errorf("Missing = %v; want the program and its package named", err)
	}
	if err := Missing("go"); err != nil {
		t.Errorf("Missing(go) = %v; go runs this test, so it is on PATH", err)
	}
}
