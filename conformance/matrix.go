package conformance

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// The conformance matrix: every script on every stack, from the results of
// `tunstack drill --json`, with the reason behind each cell where tunstack
// and a reference stack (Linux, gVisor) disagree. docs/conformance.md is
// generated from it by `make conformance`.

// DifferenceMarker in a script's comments says the script checks a behaviour
// in which tunstack differs from Linux on purpose; the text after it, to the
// end of that block of comment lines, is the reason. A reference stack failing such a script is "DIFF (documented)",
// not a failure. tunstack itself must pass it.
const DifferenceMarker = "tunstack-difference:"

// ScriptInfo is what the matrix reads from a script's leading comments.
type ScriptInfo struct {
	RFC        string // the RFC sections the header cites, "; "-separated
	Summary    string // the header's first sentence, up to its first colon
	Difference string // the tunstack-difference reason, "" when none
	// Family is the script's own --ip_version option line: a script
	// that names one family runs in that family only ("" when none).
	Family string
}

// ScriptFamily is the family a script's option lines restrict it to, as
// the kernel's packetdrill selftests read it (a line --ip_version=F), or
// "" for a script that runs in every family.
func ScriptFamily(path string) (string, error) {
	info, err := ReadScriptInfo(path)
	return info.Family, err
}

var rfcRef = regexp.MustCompile(`RFC \d+(?:\s*(?:§|Appendix\s+)[0-9A-Z.\-]*[0-9A-Z](?:\s*(?:,|and|/|-)\s*§[0-9.\-]*[0-9])*)?`)

// ReadScriptInfo reads the leading comment block of a script (and a
// difference marker anywhere in its comments).
func ReadScriptInfo(path string) (ScriptInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return ScriptInfo{}, err
	}
	defer f.Close()
	var header []string
	inHeader, inMarker := true, false
	var info ScriptInfo
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "--ip_version="); ok && info.Family == "" {
			info.Family = v
		}
		c, isComment := strings.CutPrefix(line, "//")
		c = strings.TrimSpace(c)
		if isComment {
			r, ok := strings.CutPrefix(c, DifferenceMarker)
			if ok || inMarker && c != "" {
				info.Difference = strings.TrimSpace(info.Difference + " " + strings.TrimSpace(r))
				inMarker = true
				continue
			}
			inMarker = false
			if inHeader {
				header = append(header, c)
			}
			continue
		}
		inMarker = false
		if line != "" || len(header) > 0 {
			inHeader = false
		}
	}
	if err := sc.Err(); err != nil {
		return ScriptInfo{}, err
	}
	text := strings.Join(header, " ")
	var refs []string
	for _, m := range rfcRef.FindAllString(text, -1) {
		m = strings.Join(strings.Fields(m), " ")
		if !slices.Contains(refs, m) {
			refs = append(refs, m)
		}
	}
	info.RFC = strings.Join(refs, "; ")
	if i := strings.Index(text, ": "); i >= 0 {
		info.Summary = text[:i]
	} else {
		info.Summary = text
	}
	return info, nil
}

// Differences are the checked-in explanations of cells where a reference
// stack and tunstack disagree (conformance/differences.json).
type Differences struct {
	// Reasons are shared explanations, by id.
	Reasons map[string]Reason `json:"reasons"`
	// Cells maps a script (relative to the scripts directory) and a stack
	// to a reason id, or to the explanation itself. A key SCRIPT@FAMILY
	// (as handshake/x.pkt@ipv6) applies to that family's run only and
	// comes before the plain SCRIPT key, which applies to every family.
	Cells map[string]map[string]string `json:"cells"`
}

// Reason is one explanation of a difference.
type Reason struct {
	Title string `json:"title"`
	// Text says which behaviour is right and why.
	Text string `json:"text"`
	// Match, when set, is a regular expression that must match the
	// failure (message, expected or actual) of the cell it explains; if the
	// failure changes, the explanation no longer applies and the cell
	// counts as unexplained.
	Match string `json:"match,omitempty"`
	match *regexp.Regexp
}

// LoadDifferences reads a differences file; a missing file is an empty one.
func LoadDifferences(path string) (*Differences, error) {
	d := &Differences{Reasons: map[string]Reason{}, Cells: map[string]map[string]string{}}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return d, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for id, r := range d.Reasons {
		if r.Text == "" {
			return nil, fmt.Errorf("%s: reason %q has no text", path, id)
		}
		if r.Match != "" {
			re, err := regexp.Compile(r.Match)
			if err != nil {
				return nil, fmt.Errorf("%s: reason %q: match: %w", path, id, err)
			}
			r.match = re
			d.Reasons[id] = r
		}
	}
	for script, m := range d.Cells {
		for stack, v := range m {
			if strings.TrimSpace(v) == "" {
				return nil, fmt.Errorf("%s: cells[%q][%q] is empty", path, script, stack)
			}
		}
	}
	return d, nil
}

// explanation resolves a cell's entry to a reason (id "" for inline text):
// the row's family's own entry, else the script's.
func (d *Differences) explanation(row *Row, stack string) (id string, r Reason, ok bool) {
	v, ok := d.Cells[row.Script+"@"+row.Family][stack]
	if !ok {
		v, ok = d.Cells[row.Script][stack]
	}
	if !ok {
		return "", Reason{}, false
	}
	if r, isID := d.Reasons[v]; isID {
		return v, r, true
	}
	return "", Reason{Text: v}, true
}

// Cell statuses beyond PASS, FAIL and SKIP.
const (
	Diff   Status = "DIFF" // a reference stack fails a script marked tunstack-difference
	NotRun Status = "not run"
)

// Cell is one script on one stack.
type Cell struct {
	Status Status
	Result *Result // nil when not run
	// Retried says Result is a rerun; FirstTry is the result it replaced.
	Retried  bool
	FirstTry *Result
	// For cells of a reference stack that disagree with tunstack:
	Differs  bool
	ReasonID string // shared reason, "" when inline or none
	Reason   *Reason
}

// Row is one script in one family.
type Row struct {
	Script string // relative to the scripts directory
	Family string // the --ip_version it ran with
	Info   ScriptInfo
	Cells  map[string]*Cell
}

// Label names the row in messages: the script, with its family unless
// that is ipv4.
func (r *Row) Label() string {
	if r.Family == "ipv4" {
		return r.Script
	}
	return r.Script + " (" + r.Family + ")"
}

// Problem is a cell that makes the matrix unacceptable.
type Problem struct {
	Script, Stack, Message string
}

// Matrix is the whole table.
type Matrix struct {
	Stacks []string
	// Families are the families the results ran in, ipv4 first.
	Families []string
	Rows     []*Row
	Problems []Problem
	// Stale lists explanations whose cell no longer differs.
	Stale []Problem
	Diffs *Differences
	// NotRun says, per stack that did not run, why.
	NotRun map[string]string

	plainUse map[[2]string]*plainUse // staleUnless's record, by script and stack
}

// Reference stack names; tunstack is compared with each of the others.
const tunstackName = "tunstack"

// familyOrder is the order of the families' columns.
var familyOrder = []string{"ipv4", "ipv6", "ipv4-mapped-ipv6"}

// familyOf is a result's family: ipv4 when the result does not say.
func familyOf(r *Result) string {
	if r.Family == "" {
		return "ipv4"
	}
	return r.Family
}

// BuildMatrix assembles the results of each stack (by stack name) for the
// scripts under root. Stacks without results are "not run" (notRun says
// why). Rows are keyed by the script's path relative to root and the
// family it ran in; each family's row is compared on its own.
func BuildMatrix(stacks []string, results map[string][]*Result, notRun map[string]string, root string, diffs *Differences) (*Matrix, error) {
	m := &Matrix{Stacks: stacks, Diffs: diffs, NotRun: notRun}
	rows := map[string]*Row{}
	rel := func(p string) string {
		if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
			return filepath.ToSlash(r)
		}
		return filepath.ToSlash(p)
	}
	families := map[string]bool{}
	for _, st := range stacks {
		for _, r := range results[st] {
			fam := familyOf(r)
			families[fam] = true
			key := rel(r.Script) + "@" + fam
			if row := rows[key]; row != nil && row.Cells[st] != nil {
				// A later result for the same script replaces the
				// earlier one: a rerun of a failed script.
				first := row.Cells[st].FirstTry
				if first == nil {
					first = row.Cells[st].Result
				}
				row.Cells[st] = &Cell{Status: r.Status, Result: r, Retried: true, FirstTry: first}
				continue
			}
			row := rows[key]
			if row == nil {
				info, err := ReadScriptInfo(r.Script)
				if err != nil {
					return nil, err
				}
				row = &Row{Script: rel(r.Script), Family: fam, Info: info, Cells: map[string]*Cell{}}
				rows[key] = row
			}
			row.Cells[st] = &Cell{Status: r.Status, Result: r}
		}
	}
	for _, row := range rows {
		for _, st := range stacks {
			if row.Cells[st] == nil {
				row.Cells[st] = &Cell{Status: NotRun}
			}
		}
		m.Rows = append(m.Rows, row)
	}
	for _, f := range familyOrder {
		if families[f] {
			m.Families = append(m.Families, f)
		}
	}
	slices.SortFunc(m.Rows, func(a, b *Row) int {
		if c := strings.Compare(a.Script, b.Script); c != 0 {
			return c
		}
		return slices.Index(familyOrder, a.Family) - slices.Index(familyOrder, b.Family)
	})
	ranScript := map[string]bool{}
	for _, row := range m.Rows {
		m.compare(row)
		ranScript[row.Script] = true
		ranScript[row.Script+"@"+row.Family] = true
	}
	m.finishStale()
	// Explanations for scripts that did not run at all are stale too.
	for script, byStack := range diffs.Cells {
		if ranScript[script] {
			continue
		}
		for st := range byStack {
			if results[st] != nil {
				m.Stale = append(m.Stale, Problem{script, st, "no such script was run"})
			}
		}
	}
	slices.SortFunc(m.Stale, func(a, b Problem) int { return strings.Compare(a.Script+a.Stack, b.Script+b.Stack) })
	return m, nil
}

// failureText is what a reason's Match is looked for in.
func failureText(c *Cell) string {
	if c.Result == nil || c.Result.Failure == nil {
		return ""
	}
	f := c.Result.Failure
	return f.Message + "\n" + f.Expected + "\n" + f.Actual
}

func ran(c *Cell) bool { return c.Status == Pass || c.Status == Fail }

// staleUnless notes whether the explanation of row on stack is in use. One
// under the row's own SCRIPT@FAMILY key is stale at once when not in use;
// one under the plain SCRIPT key serves every family, so it is stale (msg)
// only when no family's row uses it (finishStale).
func (m *Matrix) staleUnless(row *Row, stack string, used bool, msg string) {
	if _, specific := m.Diffs.Cells[row.Script+"@"+row.Family][stack]; specific {
		if !used {
			m.Stale = append(m.Stale, Problem{row.Label(), stack, msg})
		}
		return
	}
	k := [2]string{row.Script, stack}
	if m.plainUse == nil {
		m.plainUse = map[[2]string]*plainUse{}
	}
	u := m.plainUse[k]
	if u == nil {
		u = &plainUse{}
		m.plainUse[k] = u
	}
	u.used = u.used || used
	if !used && u.msg == "" {
		u.msg = msg
	}
}

// plainUse is whether a plain SCRIPT key's explanation is used by some
// family's row, and the message when none does.
type plainUse struct {
	msg  string
	used bool
}

// finishStale lists the plain explanations no family's row used.
func (m *Matrix) finishStale() {
	for k, u := range m.plainUse {
		if !u.used {
			m.Stale = append(m.Stale, Problem{k[0], k[1], u.msg})
		}
	}
}

func (m *Matrix) compare(row *Row) {
	t := row.Cells[tunstackName]
	marked := row.Info.Difference != ""
	if t != nil && marked && t.Status == Fail {
		m.Problems = append(m.Problems, Problem{row.Label(), tunstackName, "tunstack fails a script marked tunstack-difference: " + failureMessage(t)})
	}
	m.compareOracle(row)
	if _, _, gap := m.Diffs.explanation(row, tunstackName); gap && t != nil {
		m.staleUnless(row, tunstackName, t.Status != Pass, "tunstack passes, but differences.json still lists a tunstack gap")
	}
	for _, st := range m.Stacks {
		if st == tunstackName || st == OracleStack {
			continue
		}
		c := row.Cells[st]
		_, _, hasExpl := m.Diffs.explanation(row, st)
		if t == nil || !ran(t) || !ran(c) {
			continue
		}
		if c.Status == t.Status {
			if st == "linux" && c.Status == Fail && !marked {
				m.Problems = append(m.Problems, Problem{row.Label(), st, "Linux fails this script (and so does tunstack): the script is wrong, or must be marked tunstack-difference: " + failureMessage(c)})
			}
			if hasExpl {
				m.staleUnless(row, st, false, "explained, but "+st+" and tunstack agree ("+string(c.Status)+")")
			}
			continue
		}
		if hasExpl {
			m.staleUnless(row, st, true, "")
		}
		c.Differs = true
		if marked && c.Status == Fail {
			c.Status = Diff
			r := Reason{Title: "Documented difference", Text: row.Info.Difference}
			c.Reason = &r
			continue
		}
		id, r, ok := m.Diffs.explanation(row, st)
		if !ok && t.Status == Fail {
			// A known tunstack gap: tunstack fails where this stack
			// passes, and the entry under "tunstack" says what is
			// missing (TestSuitePassesOnTunstack holds it to that).
			id, r, ok = m.Diffs.explanation(row, tunstackName)
		}
		if !ok {
			m.Problems = append(m.Problems, Problem{row.Label(), st, fmt.Sprintf("%s %s, tunstack %s, and conformance/differences.json does not say why: %s", st, c.Status, t.Status, failureMessage(c, t))})
			continue
		}
		if r.Match != "" {
			failing := c
			if c.Status != Fail {
				failing = t
			}
			re := r.match
			if re == nil {
				re = regexp.MustCompile(r.Match)
			}
			if !re.MatchString(failureText(failing)) {
				m.Problems = append(m.Problems, Problem{row.Label(), st, fmt.Sprintf("explained by %q, whose match %q is not in the failure any more: %s", id, r.Match, failureMessage(failing))})
				continue
			}
		}
		c.ReasonID, c.Reason = id, &r
	}
}

// compareOracle checks the real packetdrill's column, which is compared with
// Linux rather than with tunstack: the real tool must pass the script (it is
// the judge of what a script means), and our runner's linux target must give
// the same verdict on the same kernel. A disagreement is a problem unless
// conformance/differences.json explains it for the "packetdrill" stack.
func (m *Matrix) compareOracle(row *Row) {
	o, ok := row.Cells[OracleStack]
	if !ok || !ran(o) {
		return
	}
	l := row.Cells["linux"]
	var problem string
	switch {
	case o.Status == Fail:
		problem = "the real packetdrill fails this script on Linux, so the script is not valid packetdrill: " + failureMessage(o)
	case l != nil && ran(l) && l.Status != o.Status:
		problem = fmt.Sprintf("the real packetdrill says %s, our runner on the same kernel says %s: %s", o.Status, l.Status, failureMessage(l))
	default:
		return
	}
	o.Differs = true
	id, r, ok := m.Diffs.explanation(row, OracleStack)
	if !ok {
		m.Problems = append(m.Problems, Problem{row.Label(), OracleStack, problem})
		return
	}
	o.ReasonID, o.Reason = id, &r
}

// failureMessage is the first failure among cells, one line.
func failureMessage(cells ...*Cell) string {
	for _, c := range cells {
		if c.Result != nil && c.Result.Failure != nil {
			f := c.Result.Failure
			return fmt.Sprintf("line %s: %s", lineOf(f.Where), f.Message)
		}
	}
	return "no failure recorded"
}

func lineOf(where string) string {
	if i := strings.LastIndexByte(where, ':'); i >= 0 {
		return where[i+1:]
	}
	return "?"
}

// keptGoing sums the script lines and matched lines of a stack whose
// scripts ran with KeepGoing (ok is false when none did).
func (m *Matrix) keptGoing(stack string) (lines, matched int, ok bool) {
	for _, r := range m.Rows {
		res := r.Cells[stack].Result
		if res == nil || res.Lines == 0 {
			continue
		}
		lines += res.Lines
		matched += res.Matched
		if len(res.Mismatches) > 0 {
			ok = true
		}
	}
	return lines, matched, ok
}

// Counts are a stack's totals.
type Counts struct{ Pass, Fail, Diff, Skip, NotRun int }

// Count totals a stack's column, every family's rows.
func (m *Matrix) Count(stack string) Counts { return m.CountFamily(stack, "") }

// CountFamily totals a stack's column over one family's rows (every
// family's for "").
func (m *Matrix) CountFamily(stack, family string) Counts {
	var c Counts
	for _, r := range m.Rows {
		if family != "" && r.Family != family {
			continue
		}
		switch r.Cells[stack].Status {
		case Pass:
			c.Pass++
		case Fail:
			c.Fail++
		case Diff:
			c.Diff++
		case Skip:
			c.Skip++
		default:
			c.NotRun++
		}
	}
	return c
}

// tsVal hides the random TS val numbers in failure messages, so that the
// document does not change from run to run.
var tsVal = regexp.MustCompile(`TS val \d+`)

func mdEscape(s string) string {
	s = tsVal.ReplaceAllString(s, "TS val …")
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

func anchor(id string) string { return "why-" + id }

// Markdown renders the matrix as docs/conformance.md. kernel names the Linux
// kernel the linux column ran on ("" to leave it out).
func (m *Matrix) Markdown(kernel string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Conformance matrix\n\n")
	p("Generated by `make conformance` from `tunstack drill --json` on each stack\n")
	p("(`tunstack conformance-doc`); do not edit by hand. The explanations come from\n")
	p("`conformance/differences.json` and from `// %s` markers in the scripts.\n", DifferenceMarker)
	p("Linux grounds the expectations: every script is written against a real Linux\n")
	p("kernel, and a script Linux fails is wrong unless it is marked as checking a\n")
	p("documented difference.\n\n")
	p("- **linux**: the kernel through a TUN in a fresh network namespace, in real time.\n")
	p("- **tunstack**: our engine in-process, driven directly, in virtual time.\n")
	p("- **gvisor**: gVisor's netstack in-process with gvisorstack's options, on a\n")
	p("  synchronous link endpoint and a faketime.ManualClock; after each packet,\n")
	p("  call or clock step the target drains gVisor's processor goroutines\n")
	p("  (Stack.Pause) before time moves on, so runs are deterministic and every\n")
	p("  packet carries the virtual time of its cause (conformance/target_gvisor.go).\n")
	p("  System calls follow gVisor's own syscall layer (the sentry's socket code).\n")
	p("- **packetdrill** (when run): Google's real packetdrill on the same Linux, each\n")
	p("  script in a namespace of its own (`tunstack oracle`, `make conformance\n")
	p("  PACKETDRILL=path`). It is the judge of what a script means: it must pass\n")
	p("  every script, and the linux column must agree with it.\n\n")
	if kernel != "" {
		p("Linux kernel of the linux column: %s.\n\n", kernel)
	}
	for _, st := range m.Stacks {
		if why, ok := m.NotRun[st]; ok {
			p("The %s column was not run: %s.\n\n", st, why)
		}
	}
	multi := len(m.Families) > 1
	if multi {
		p("Every script ran in each family of IP (`--ip_version`) but those whose option\n")
		p("lines name one (`--ip_version=ipv4` for a script about IPv4 alone, as the\n")
		p("kernel's packetdrill selftests mark them), which ran in that family only (— in\n")
		p("the other columns). ipv6 runs with `--mtu=1520`, the kernel selftests' IPv6\n")
		p("link, whose MSS of 1460 is that of IPv4 on a 1500-byte link.\n\n")
		p("## Totals\n\n| stack | family | PASS | FAIL | DIFF (documented) | SKIP | not run | scripts |\n|---|---|---|---|---|---|---|---|\n")
		for _, st := range m.Stacks {
			for _, f := range m.Families {
				c := m.CountFamily(st, f)
				p("| %s | %s | %d | %d | %d | %d | %d | %d |\n", st, f, c.Pass, c.Fail, c.Diff, c.Skip, c.NotRun, c.Pass+c.Fail+c.Diff+c.Skip+c.NotRun)
			}
		}
	} else {
		p("## Totals\n\n| stack | PASS | FAIL | DIFF (documented) | SKIP | not run | scripts |\n|---|---|---|---|---|---|---|\n")
		for _, st := range m.Stacks {
			c := m.Count(st)
			p("| %s | %d | %d | %d | %d | %d | %d |\n", st, c.Pass, c.Fail, c.Diff, c.Skip, c.NotRun, len(m.Rows))
		}
	}
	for _, st := range m.Stacks {
		if lines, matched, ok := m.keptGoing(st); ok {
			p("\nThe %s column ran each script to its end past mismatches (`tunstack drill\n", st)
			p("--keep-going`): a packet that differs is taken as sent and the next line is\n")
			p("compared from there. %d of its %d script lines matched; a FAIL cell shows\n", matched, lines)
			p("matched/total lines, and its explanation is about the first mismatch.\n")
		}
	}
	p("\n## Matrix\n\n")
	p("A cell where a reference stack disagrees with tunstack links to its explanation.\n\n")
	// One column per stack, or per stack and family; one line per script.
	type column struct{ stack, family string }
	var cols []column
	var heads []string
	for _, st := range m.Stacks {
		for _, f := range m.Families {
			cols = append(cols, column{st, f})
			if multi {
				heads = append(heads, st+" "+f)
			} else {
				heads = append(heads, st)
			}
		}
	}
	p("| script | RFC | %s |\n|---|---|%s\n", strings.Join(heads, " | "), strings.Repeat("---|", len(cols)))
	for i := 0; i < len(m.Rows); {
		byFamily := map[string]*Row{}
		first := m.Rows[i]
		for ; i < len(m.Rows) && m.Rows[i].Script == first.Script; i++ {
			byFamily[m.Rows[i].Family] = m.Rows[i]
		}
		rfc := first.Info.RFC
		if rfc == "" {
			// No RFC cited: the header's own words, shortened.
			rfc = first.Info.Summary
			if rs := []rune(rfc); len(rs) > 70 {
				rfc = string(rs[:69]) + "…"
			}
		}
		p("| `%s` | %s |", first.Script, mdEscape(rfc))
		for _, col := range cols {
			r := byFamily[col.family]
			if r == nil {
				if first.Info.Family != "" && first.Info.Family != col.family {
					p(" — |")
				} else {
					p(" %s |", NotRun)
				}
				continue
			}
			p(" %s |", m.cellText(r, col.stack))
		}
		p("\n")
	}

	// Explanations, grouped by reason.
	type item struct {
		row  *Row
		st   string
		cell *Cell
	}
	groups := map[string][]item{}
	var order []string
	for _, r := range m.Rows {
		for _, st := range m.Stacks {
			c := r.Cells[st]
			if !c.Differs || c.Reason == nil {
				continue
			}
			id := c.ReasonID
			if id == "" {
				id = slug(r.Label() + "-" + st)
			}
			if _, ok := groups[id]; !ok {
				order = append(order, id)
			}
			groups[id] = append(groups[id], item{r, st, c})
		}
	}
	slices.Sort(order)
	p("\n## Differences and which behaviour is right\n\n")
	if len(order) == 0 {
		p("None: where the stacks ran, they agree with tunstack on every script.\n")
	}
	for _, id := range order {
		its := groups[id]
		rs := its[0].cell.Reason
		title := rs.Title
		if title == "" {
			title = fmt.Sprintf("`%s` on %s", its[0].row.Label(), its[0].st)
		}
		p("<a id=\"%s\"></a>\n### %s\n\n%s\n\n", anchor(id), title, strings.TrimSpace(rs.Text))
		for _, it := range its {
			c := it.cell
			t := it.row.Cells[tunstackName]
			what := fmt.Sprintf("%s %s, tunstack %s", it.st, c.Status, t.Status)
			if c.Status == Diff {
				what = fmt.Sprintf("%s FAIL (documented difference), tunstack %s", it.st, t.Status)
			}
			failing := c
			if c.Result == nil || c.Result.Failure == nil {
				failing = t
			}
			p("- `%s`: %s", it.row.Label(), what)
			if f := failing.Result; f != nil && f.Failure != nil {
				p("; line %s: `%s`", lineOf(f.Failure.Where), mdEscape(f.Failure.Message))
			}
			p("\n")
		}
		p("\n")
	}
	var retried []string
	for _, r := range m.Rows {
		for _, st := range m.Stacks {
			if c := r.Cells[st]; c.Retried && c.FirstTry != nil && c.FirstTry.Failure != nil {
				retried = append(retried, fmt.Sprintf("- `%s` on %s: %s (first try), %s on retry.\n", r.Label(), st,
					mdEscape(failureMessage(&Cell{Result: c.FirstTry})), c.Status))
			}
		}
	}
	if len(retried) > 0 {
		p("## Retried\n\nA real-time stack's failures are run again, twice at most (timing on a loaded\nmachine); the last result counts. First failures:\n\n%s\n", strings.Join(retried, ""))
	}
	p("## Unexplained differences\n\n")
	if len(m.Problems) > 0 {
		p("Cells where a stack disagrees with tunstack and nothing says why: where Linux\n")
		p("passes and tunstack fails, a tunstack bug to fix (or an intended difference to\n")
		p("mark in the script); otherwise a reason to add to `conformance/differences.json`.\n")
		p("`make conformance` fails while this list is not empty.\n\n")
	}
	if len(m.Problems) == 0 {
		p("None.\n")
	}
	for _, pr := range m.Problems {
		p("- `%s` on %s: %s\n", pr.Script, pr.Stack, mdEscape(pr.Message))
	}
	if len(m.Stale) > 0 {
		p("\n## Explanations that no longer apply\n\n")
		for _, pr := range m.Stale {
			p("- `%s` on %s: %s\n", pr.Script, pr.Stack, mdEscape(pr.Message))
		}
	}
	return b.String()
}

// cellText is the matrix cell of row r on stack st.
func (m *Matrix) cellText(r *Row, st string) string {
	// An unexplained difference marks the failing side: tunstack's cell
	// when tunstack fails where a reference stack passes.
	tunstackUnexplained := false
	if t := r.Cells[tunstackName]; t != nil && t.Status == Fail {
		for _, o := range m.Stacks {
			if c := r.Cells[o]; o != tunstackName && o != OracleStack && c.Differs && c.Reason == nil {
				tunstackUnexplained = true
			}
		}
	}
	c := r.Cells[st]
	s := string(c.Status)
	if c.Status == Diff {
		s = "DIFF (documented)"
	}
	if c.Retried && c.Status == Pass {
		s += " (on retry)"
	}
	if c.Result != nil && c.Status == Pass && len(c.Result.Skipped) > 0 {
		s += fmt.Sprintf(" (%d line(s) not evaluated)", len(c.Result.Skipped))
	}
	if c.Result != nil && c.Status != Pass && len(c.Result.Mismatches) > 0 {
		s += fmt.Sprintf(" (%d/%d lines)", c.Result.Matched, c.Result.Lines)
	}
	switch {
	case c.Differs && c.ReasonID != "":
		s = fmt.Sprintf("[%s](#%s)", s, anchor(c.ReasonID))
	case c.Differs && c.Reason != nil:
		s = fmt.Sprintf("[%s](#%s)", s, anchor(slug(r.Label()+"-"+st)))
	case c.Differs && c.Status == Fail:
		s = "**" + s + " (unexplained)**"
	case st == tunstackName && tunstackUnexplained:
		s = "**" + s + " (unexplained)**"
	}
	return s
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	return strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(s), "-"), "-")
}
