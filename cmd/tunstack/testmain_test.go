package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// binDir holds the tunstack binary that tests run as a separate process,
// built on first use by tunstackBinary and removed when the tests end.
var binDir string

func TestMain(m *testing.M) {
	if kind := os.Getenv(testHelperEnv); kind != "" {
		os.Exit(runTestHelper(kind))
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// tunstackBinary builds ./cmd/tunstack once per test run and returns the
// binary's path. Its directory is world-readable and searchable so that the
// binary can run as an unprivileged user too.
func tunstackBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tunstack-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		if err := os.Chmod(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			// sudo may reset PATH; the toolchain that built this test knows
			// where it lives.
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		path := filepath.Join(dir, "tunstack")
		out, err := exec.Command(goTool, "build", "-o", path, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, strings.TrimSpace(string(out)))
			return
		}
		binPath = path
	})
	if buildErr != nil {
		t.Fatalf("building tunstack: %v", buildErr)
	}
	return binPath
}
