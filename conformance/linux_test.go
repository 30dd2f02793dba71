package conformance

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"tunstack/lab/netns"
)

// suiteTolerance is the timing tolerance the suite runs with under go test:
// test machines run other tests at the same time, and a real-time run
// through a TUN is only as punctual as the scheduler. The CLI keeps
// packetdrill's default (4 ms) unless --tolerance_usecs says otherwise.
const suiteToleranceUsecs = 25000

func suiteScripts(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("scripts/*/*.pkt")
	if err != nil || len(files) < 20 {
		t.Fatalf("expected at least 20 scripts under scripts/, found %d (%v)", len(files), err)
	}
	return files
}

// defaultFamily is the family a script runs in without --ip_version on
// the command line: its own option line's, else ipv4.
func defaultFamily(path string) string {
	if f, _ := ScriptFamily(path); f != "" {
		return f
	}
	return "ipv4"
}

func TestSuitePassesOnLinux(t *testing.T) {
	netns.RequireRoot(t)
	testSuitePasses(t, "linux")
}

// TestSuitePassesOnTunstack runs every script on our engine, in virtual
// time. Each must pass (a script marked tunstack-difference documents where
// Linux differs, and tunstack still passes it), except a known gap: a
// script listed under "tunstack" in differences.json, which says what Linux
// does that tunstack does not yet. Such a script must still fail, with the
// failure the entry's pattern names, so a gap that is closed, or that turns
// into another failure, is noticed and its entry removed or rewritten.
func TestSuitePassesOnTunstack(t *testing.T) {
	diffs, err := LoadDifferences("differences.json")
	if err != nil {
		t.Fatal(err)
	}
	gaps := map[string]Reason{}
	for key, byStack := range diffs.Cells {
		// The suite runs each script in its own family (ipv4 unless
		// its option lines say otherwise): a gap for another family is
		// not this test's.
		script, fam, _ := strings.Cut(key, "@")
		f := "scripts/" + script
		if own, _ := ScriptFamily(f); fam != "" && fam != own && !(own == "" && fam == "ipv4") {
			continue
		}
		if _, r, ok := diffs.explanation(&Row{Script: script, Family: defaultFamily(f)}, "tunstack"); ok && byStack["tunstack"] != "" {
			gaps[f] = r
		}
	}
	var plain []string
	for _, f := range suiteScripts(t) {
		r, gap := gaps[f]
		if !gap {
			plain = append(plain, f)
			continue
		}
		t.Run(strings.TrimSuffix(strings.TrimPrefix(f, "scripts/"), ".pkt"), func(t *testing.T) {
			res := Run(f, Options{Stack: "tunstack", ToleranceUsecs: suiteToleranceUsecs})
			switch {
			case res.Status == Pass:
				t.Fatalf("tunstack now passes this script: remove its gap from differences.json")
			case res.Status != Fail:
				t.Fatalf("status %s, want FAIL as its gap says", res.Status)
			case r.Match != "" && !regexp.MustCompile(r.Match).MatchString(failureText(&Cell{Status: Fail, Result: res})):
				t.Fatalf("tunstack fails otherwise than its gap in differences.json says (%q): %s", r.Match, res.Failure)
			}
		})
	}
	testSuitePassesScripts(t, "tunstack", plain)
}

// realTimeRetries is how many times a script that failed on a real-time
// target (linux) runs again before the failure counts, as make conformance
// does: on a loaded machine a packet can come a few milliseconds past the
// tolerance. Virtual-time targets get no retry.
const realTimeRetries = 2

func testSuitePasses(t *testing.T, stack string) {
	testSuitePassesScripts(t, stack, suiteScripts(t))
}

func testSuitePassesScripts(t *testing.T, stack string, scripts []string) {
	retries := 0
	if stack == "linux" {
		retries = realTimeRetries
	}
	for _, f := range scripts {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(f, "scripts/"), ".pkt"), func(t *testing.T) {
			var first string
			for try := 0; ; try++ {
				res := Run(f, Options{Stack: stack, ToleranceUsecs: suiteToleranceUsecs})
				if res.Status == Pass {
					if first != "" {
						t.Logf("passed on retry %d; the first run failed:\n%s", try, first)
					}
					return
				}
				var b strings.Builder
				res.Print(&b, true)
				if try == retries {
					t.Fatal(b.String())
				}
				if first == "" {
					first = b.String()
				}
			}
		})
	}
}

// Scripts that must fail on Linux, with the message they must fail with.
var mustFail = []struct{ name, body, want string }{
	{"wrong-flag", `+0 < F. 1:1(0) ack 1 win 512
+0 > P. 1:1(0) ack 2`, "flags ., expected P."},
	{"wrong-ack", `+0 < P. 1:101(100) ack 1 win 512
+0 > . 1:1(0) ack 100`, "ack 101, expected 100"},
	{"early-packet", `+0 write(4, ..., 100) = 100
+.5 > P. 1:101(100) ack 1`, "packet arrived too early"},
	{"late-packet", `+0 write(4, ..., 100) = 100
+0 > P. 1:101(100) ack 1
+.1 > P. 1:101(100) ack 1`, "expected packet did not arrive by"},
	{"missing-packet", `+0 < P. 1:101(100) ack 1 win 512
+0 > . 1:1(0) ack 101
+0 > . 1:1(0) ack 101`, "expected packet did not arrive"},
	{"wrong-errno", `+0 < R. 1:1(0) ack 1 win 0
+0 read(4, ..., 100) = -1 EPIPE (Broken pipe)`, "read failed with ECONNRESET, expected EPIPE"},
	{"wrong-errno-nonblocking", `+0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 read(4, ..., 100) = -1 ECONNRESET (Connection reset by peer)`, "read failed with EAGAIN, expected ECONNRESET"},
	{"unexpected-extra", `+0 < P. 1:101(100) ack 1 win 512
+.1 close(4) = 0`, "unexpected packet from the stack"},
	{"blocking-without-end", `+0 read(4, ..., 100) = 100`, "read blocked for more than"},
}

const established = "`../common/defaults.sh`\n" + `
 0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop,nop,wscale 7>
+0 > S. 0:0(0) ack 1 <...>
+.01 < . 1:1(0) ack 1 win 512
+0 accept(3, ..., ...) = 4
`

func TestBrokenScriptsFailOnLinux(t *testing.T) {
	netns.RequireRoot(t)
	testBrokenScriptsFail(t, "linux")
}

// TestBrokenScriptsFailOnTunstack: the in-process target reports the same
// mismatches, with the same messages, as the Linux one.
func TestBrokenScriptsFailOnTunstack(t *testing.T) {
	testBrokenScriptsFail(t, "tunstack")
}

func testBrokenScriptsFail(t *testing.T, stack string) {
	dir := t.TempDir()
	abs, _ := filepath.Abs("scripts/common")
	if err := os.Symlink(abs, filepath.Join(dir, "common")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "x"), 0o755)
	for _, c := range mustFail {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "x", c.name+".pkt")
			os.WriteFile(path, []byte(established+c.body+"\n"), 0o644)
			res := Run(path, Options{Stack: stack, ToleranceUsecs: suiteToleranceUsecs})
			if res.Status != Fail || res.Failure == nil || !strings.Contains(res.Failure.Message, c.want) {
				var b strings.Builder
				res.Print(&b, true)
				t.Fatalf("want FAIL with %q, got:\n%s", c.want, b.String())
			}
			if !strings.HasPrefix(res.Failure.Where, path+":") {
				t.Errorf("failure does not name the script line: %q", res.Failure.Where)
			}
		})
	}
}

// TestSuiteOnGvisorDiffersOnlyWhereExplained runs the whole suite on
// gVisor in process (virtual time). gVisor is a reference, not a target:
// where it fails a script, conformance/differences.json must say why
// (which behaviour is right), and the reason's pattern must still match
// the failure, so an explanation cannot outlive the difference it
// explains. Where it passes, there must be no stale explanation.
func TestSuiteOnGvisorDiffersOnlyWhereExplained(t *testing.T) {
	diffs, err := LoadDifferences("differences.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range suiteScripts(t) {
		script := strings.TrimPrefix(f, "scripts/")
		res := Run(f, Options{Stack: "gvisor"}) // as make conformance runs it
		id, r, explained := diffs.explanation(&Row{Script: script, Family: familyOf(res)}, "gvisor")
		switch {
		case res.Status == Pass && explained:
			t.Errorf("%s passes on gVisor, but differences.json still explains a difference (%q)", script, id)
		case res.Status == Fail && !explained:
			t.Errorf("%s fails on gVisor and differences.json does not say why: %s", script, res.Failure.Message)
		case res.Status == Fail && r.Match != "":
			if !regexp.MustCompile(r.Match).MatchString(failureText(&Cell{Status: Fail, Result: res})) {
				t.Errorf("%s: gVisor's failure is no longer the one %q explains: %s", script, id, res.Failure.Message)
			}
		case res.Status != Pass && res.Status != Fail:
			t.Errorf("%s on gVisor: %s", script, res.Status)
		}
	}
}
