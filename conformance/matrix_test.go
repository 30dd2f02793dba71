package conformance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeScript(t *testing.T, dir, name, header string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(header+"\n 0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n// later comment\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadScriptInfo(t *testing.T) {
	dir := t.TempDir()
	p := writeScript(t, dir, "a.pkt", `// RFC 9293 §3.6 (active close) and §3.10.7.4 (TIME-WAIT), RFC 7323
// §5.3 (PAWS) and RFC 6298 §2.2-§2.5: close sends a FIN.
// tunstack-difference: tunstack sends the FIN
// at once.
`+"`../common/defaults.sh`")
	info, err := ReadScriptInfo(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "RFC 9293 §3.6; RFC 7323 §5.3; RFC 6298 §2.2-§2.5"; info.RFC != want {
		t.Errorf("RFC %q, want %q", info.RFC, want)
	}
	if want := "tunstack sends the FIN at once."; info.Difference != want {
		t.Errorf("difference %q, want %q", info.Difference, want)
	}
	if !strings.HasPrefix(info.Summary, "RFC 9293 §3.6 (active close)") || strings.Contains(info.Summary, "close sends") {
		t.Errorf("summary %q", info.Summary)
	}
}

func TestBuildMatrixExplainsEveryDifference(t *testing.T) {
	dir := t.TempDir()
	plain := writeScript(t, dir, "x/plain.pkt", "// RFC 1 §1: plain.")
	marked := writeScript(t, dir, "x/marked.pkt", "// RFC 2 §2: marked.\n// tunstack-difference: tunstack is right because of RFC 2.")
	broken := writeScript(t, dir, "x/broken.pkt", "// RFC 3: broken.")
	matched := writeScript(t, dir, "x/matched.pkt", "// RFC 4: matched.")
	fail := func(script, msg string) *Result {
		return &Result{Script: script, Status: Fail, Failure: &Failure{Where: script + ":7", Message: msg}}
	}
	pass := func(script string) *Result { return &Result{Script: script, Status: Pass} }
	results := map[string][]*Result{
		"linux":    {pass(plain), fail(marked, "flags ., expected F."), fail(broken, "late"), pass(matched)},
		"tunstack": {pass(plain), pass(marked), fail(broken, "late"), pass(matched)},
		"gvisor":   {fail(plain, "window 29184, expected 64240"), fail(marked, "x"), pass(broken), fail(matched, "ack 5, expected 6")},
	}
	diffs := &Differences{
		Reasons: map[string]Reason{
			"win":  {Title: "Window", Text: "gVisor's window.", Match: `window \d+, expected`},
			"win2": {Title: "Window again", Text: "gVisor's window.", Match: `window \d+, expected`},
		},
		Cells: map[string]map[string]string{
			"x/plain.pkt":   {"gvisor": "win", "linux": "never differs"},
			"x/matched.pkt": {"gvisor": "win2"},
		},
	}
	m, err := BuildMatrix([]string{"linux", "tunstack", "gvisor"}, results, nil, dir, diffs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range m.Problems {
		got = append(got, p.Script+" "+p.Stack)
	}
	want := []string{
		"x/broken.pkt linux",   // Linux fails an unmarked script
		"x/broken.pkt gvisor",  // gVisor passes where tunstack fails, unexplained
		"x/matched.pkt gvisor", // the explanation's match is not in the failure
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("problems %v, want %v", got, want)
	}
	if len(m.Stale) != 1 || m.Stale[0].Script != "x/plain.pkt" || m.Stale[0].Stack != "linux" {
		t.Errorf("stale %+v, want x/plain.pkt on linux", m.Stale)
	}
	row := func(name string) *Row {
		for _, r := range m.Rows {
			if r.Script == name {
				return r
			}
		}
		t.Fatalf("no row %s", name)
		return nil
	}
	if c := row("x/marked.pkt").Cells["linux"]; c.Status != Diff || c.Reason == nil {
		t.Errorf("marked script on linux: %+v, want DIFF with the marker's reason", c)
	}
	if c := row("x/marked.pkt").Cells["gvisor"]; c.Status != Diff {
		t.Errorf("marked script on gvisor: %s, want DIFF", c.Status)
	}
	if c := row("x/plain.pkt").Cells["gvisor"]; !c.Differs || c.ReasonID != "win" {
		t.Errorf("plain on gvisor: %+v, want explained by win", c)
	}
	if c := m.Count("gvisor"); c.Pass != 1 || c.Fail != 2 || c.Diff != 1 {
		t.Errorf("gvisor counts %+v", c)
	}
	md := m.Markdown("6.1.0-test")
	for _, s := range []string{
		"| gvisor | 1 | 2 | 1 | 0 | 0 | 4 |",
		"| `x/plain.pkt` | RFC 1 §1 | PASS | PASS | [FAIL](#why-win) |",
		"DIFF (documented)",
		"<a id=\"why-win\"></a>\n### Window\n\ngVisor's window.",
		"- `x/plain.pkt`: gvisor FAIL, tunstack PASS; line 7: `window 29184, expected 64240`\n",
		"`make conformance` fails while this list is not empty.\n\n- `x/broken.pkt` on linux: Linux fails this script",
		"**FAIL (unexplained)**",
		"Linux kernel of the linux column: 6.1.0-test.",
		"## Explanations that no longer apply",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

func TestBuildMatrixWithoutLinux(t *testing.T) {
	dir := t.TempDir()
	p := writeScript(t, dir, "a.pkt", "// RFC 1: a.")
	results := map[string][]*Result{
		"tunstack": {{Script: p, Status: Pass}},
		"gvisor":   {{Script: p, Status: Pass}},
	}
	diffs := &Differences{Cells: map[string]map[string]string{"a.pkt": {"linux": "explained"}}}
	m, err := BuildMatrix([]string{"linux", "tunstack", "gvisor"}, results, map[string]string{"linux": "not root"}, dir, diffs)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Problems) != 0 || len(m.Stale) != 0 {
		t.Errorf("problems %v stale %v, want none when linux did not run", m.Problems, m.Stale)
	}
	md := m.Markdown("")
	if !strings.Contains(md, "The linux column was not run: not root.") || !strings.Contains(md, "| linux | 0 | 0 | 0 | 0 | 1 | 1 |") {
		t.Errorf("markdown:\n%s", md)
	}
}

func TestLoadDifferencesRejectsBadEntries(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"no text":   `{"reasons": {"a": {"title": "A"}}}`,
		"bad regex": `{"reasons": {"a": {"text": "t", "match": "("}}}`,
		"empty":     `{"cells": {"x.pkt": {"gvisor": ""}}}`,
		"not json":  `{`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := LoadDifferences(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	d, err := LoadDifferences(filepath.Join(dir, "missing.json"))
	if err != nil || len(d.Cells) != 0 {
		t.Errorf("missing file: %v %v", d, err)
	}
}

func TestCheckedInDifferencesLoad(t *testing.T) {
	d, err := LoadDifferences("differences.json")
	if err != nil {
		t.Fatal(err)
	}
	for script, byStack := range d.Cells {
		if _, err := os.Stat(filepath.Join("scripts", script)); err != nil {
			t.Errorf("differences.json explains %s, which does not exist", script)
		}
		for stack := range byStack {
			if stack != "linux" && stack != "gvisor" {
				t.Errorf("differences.json: %s: stack %q is not a reference stack", script, stack)
			}
		}
	}
}

func TestBuildMatrixRetryReplacesFirstResult(t *testing.T) {
	dir := t.TempDir()
	p := writeScript(t, dir, "a.pkt", "// RFC 1: a.")
	results := map[string][]*Result{
		"linux":    {{Script: p, Status: Fail, Failure: &Failure{Where: p + ":3", Message: "late"}}, {Script: p, Status: Pass}},
		"tunstack": {{Script: p, Status: Pass}},
	}
	m, err := BuildMatrix([]string{"linux", "tunstack"}, results, nil, dir, &Differences{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Problems) != 0 {
		t.Errorf("problems %v, want none: the retry passed", m.Problems)
	}
	md := m.Markdown("")
	for _, s := range []string{"| PASS (on retry) | PASS |", "- `a.pkt` on linux: line 3: late (first try), PASS on retry."} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

func TestBuildMatrixJudgesScriptsByTheRealPacketdrill(t *testing.T) {
	dir := t.TempDir()
	agree := writeScript(t, dir, "agree.pkt", "// RFC 1: both pass.")
	invalid := writeScript(t, dir, "invalid.pkt", "// RFC 2: the real tool rejects it.")
	disagree := writeScript(t, dir, "disagree.pkt", "// RFC 3: our runner fails where the real tool passes.")
	known := writeScript(t, dir, "known.pkt", "// RFC 4: explained.")
	fail := func(script, msg string) *Result {
		return &Result{Script: script, Status: Fail, Failure: &Failure{Where: script + ":5", Message: msg}}
	}
	pass := func(script string) *Result { return &Result{Script: script, Status: Pass} }
	results := map[string][]*Result{
		OracleStack: {pass(agree), fail(invalid, "parse error"), pass(disagree), fail(known, "timing error")},
		"linux":     {pass(agree), pass(invalid), fail(disagree, "payload length 1460, expected 2920"), pass(known)},
		"tunstack":  {pass(agree), pass(invalid), pass(disagree), pass(known)},
	}
	diffs := &Differences{Cells: map[string]map[string]string{"known.pkt": {OracleStack: "The real tool's timer is coarser."}}}
	m, err := BuildMatrix([]string{"linux", "tunstack", OracleStack}, results, nil, dir, diffs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range m.Problems {
		got = append(got, p.Script+" "+p.Stack)
	}
	want := []string{
		"disagree.pkt packetdrill", // linux FAIL, real tool PASS: our runner is wrong
		"disagree.pkt linux",       // and tunstack passes where Linux (through our runner) fails
		"invalid.pkt packetdrill",  // the real tool fails the script: not valid packetdrill
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("problems %v, want %v", got, want)
	}
	md := m.Markdown("")
	for _, s := range []string{
		"| packetdrill | 2 | 2 | 0 | 0 | 0 | 4 |",
		"- `invalid.pkt` on packetdrill: the real packetdrill fails this script on Linux",
		"- `disagree.pkt` on packetdrill: the real packetdrill says PASS, our runner on the same kernel says FAIL",
		"- `known.pkt`: packetdrill FAIL, tunstack PASS; line 5: `timing error`",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

func TestMatrixShowsMatchedLinesOfAKeepGoingRun(t *testing.T) {
	dir := t.TempDir()
	a := writeScript(t, dir, "a.pkt", "// RFC 1: a.")
	b := writeScript(t, dir, "b.pkt", "// RFC 2: b.")
	first := &Failure{Where: a + ":4", Message: "bad outbound packet at 0.0000s: window 29184, expected 64240"}
	results := map[string][]*Result{
		"tunstack": {{Script: a, Status: Pass, Lines: 10, Matched: 10}, {Script: b, Status: Pass, Lines: 5, Matched: 5}},
		"gvisor": {
			{Script: a, Status: Fail, Failure: first, Lines: 10, Matched: 8, Mismatches: []*Failure{first, {Where: a + ":9", Message: "window 512, expected 502"}}},
			{Script: b, Status: Pass, Lines: 5, Matched: 5},
		},
	}
	diffs := &Differences{
		Reasons: map[string]Reason{"win": {Title: "Window", Text: "gVisor's window.", Match: `window \d+, expected`}},
		Cells:   map[string]map[string]string{"a.pkt": {"gvisor": "win"}},
	}
	m, err := BuildMatrix([]string{"tunstack", "gvisor"}, results, nil, dir, diffs)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Problems) != 0 {
		t.Errorf("problems %v, want none: the first mismatch is explained", m.Problems)
	}
	md := m.Markdown("")
	for _, s := range []string{
		"| `a.pkt` | RFC 1 | PASS | [FAIL (8/10 lines)](#why-win) |",
		"13 of its 15 script lines matched",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

func TestMatrixExplainsAKnownTunstackGapAndNoticesWhenItCloses(t *testing.T) {
	dir := t.TempDir()
	gap := writeScript(t, dir, "gap.pkt", "// RFC 6937: PRR.")
	closed := writeScript(t, dir, "closed.pkt", "// RFC 5682: F-RTO.")
	fail := &Failure{Where: gap + ":20", Message: "bad outbound packet at 0.1000s: sequence 7301, expected 14601"}
	results := map[string][]*Result{
		"linux":    {{Script: gap, Status: Pass}, {Script: closed, Status: Pass}},
		"tunstack": {{Script: gap, Status: Fail, Failure: fail}, {Script: closed, Status: Pass}},
	}
	diffs := &Differences{
		Reasons: map[string]Reason{"prr-gap": {Title: "PRR sends no new data on entry", Text: "Linux sends new data on entering recovery; tunstack does not yet.", Match: "sequence 7301, expected 14601"}},
		Cells:   map[string]map[string]string{"gap.pkt": {"tunstack": "prr-gap"}, "closed.pkt": {"tunstack": "prr-gap"}},
	}
	m, err := BuildMatrix([]string{"linux", "tunstack"}, results, nil, dir, diffs)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Problems) != 0 {
		t.Errorf("problems %v, want none: the gap is explained", m.Problems)
	}
	if len(m.Stale) != 1 || m.Stale[0].Script != "closed.pkt" || m.Stale[0].Stack != "tunstack" {
		t.Errorf("stale %+v, want closed.pkt's gap on tunstack", m.Stale)
	}
	if md := m.Markdown(""); !strings.Contains(md, "[PASS](#why-prr-gap)") {
		t.Errorf("markdown lacks the linux cell linked to the gap:\n%s", md)
	}
}
