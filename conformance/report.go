package conformance

import (
	"fmt"
	"io"
	"strings"
)

// Status is a script's verdict on one stack.
type Status string

const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP" // the script could not be run on this stack here
)

// Result is the outcome of one script on one stack.
type Result struct {
	Script string `json:"script"`
	Stack  string `json:"stack"`
	// Family is the --ip_version the script ran with: "ipv4", "ipv6" or
	// "ipv4-mapped-ipv6" ("" in results from before both families, read
	// as ipv4).
	Family  string   `json:"family,omitempty"`
	Status  Status   `json:"status"`
	Failure *Failure `json:"failure,omitempty"`
	// Reason says why a script was skipped as a whole.
	Reason string `json:"reason,omitempty"`
	// Skipped lists lines that were not evaluated (code blocks), file:line:
	// what. A PASS with skipped lines says so when printed.
	Skipped []string `json:"skipped_lines,omitempty"`
	// Applied are sysctls mapped onto policy knobs; Unmapped have no knob.
	Applied  []string `json:"sysctls_applied,omitempty"`
	Unmapped []string `json:"unmapped,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Seconds  float64  `json:"seconds"`
	// Lines and Matched count a script's lines and those that matched
	// (every one for a PASS; with KeepGoing, the lines past the first
	// mismatch are compared too). Mismatches lists every mismatch of a
	// KeepGoing run, the first one being Failure.
	Lines      int        `json:"lines,omitempty"`
	Matched    int        `json:"matched,omitempty"`
	Mismatches []*Failure `json:"mismatches,omitempty"`
}

// Failure is the first mismatch of a failed script.
type Failure struct {
	Where    string  `json:"where"` // file:line
	Message  string  `json:"message"`
	Expected string  `json:"expected,omitempty"`
	Actual   string  `json:"actual,omitempty"`
	Time     float64 `json:"time"` // script seconds when it was noticed
}

func (f *Failure) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s (at %.4fs)", f.Where, f.Message, f.Time)
	if f.Expected != "" {
		fmt.Fprintf(&b, "\n    expected: %s", f.Expected)
	}
	if f.Actual != "" {
		fmt.Fprintf(&b, "\n    actual:   %s", f.Actual)
	}
	return b.String()
}

// Print writes a human-readable report of r.
func (r *Result) Print(w io.Writer, verbose bool) {
	head := string(r.Status)
	if r.Status == Pass && len(r.Skipped) > 0 {
		head += fmt.Sprintf(" (%d line(s) skipped)", len(r.Skipped))
	}
	fmt.Fprintf(w, "%-4s %s [%s] %.2fs\n", head, r.Script, r.Stack, r.Seconds)
	if r.Reason != "" {
		fmt.Fprintf(w, "     %s\n", r.Reason)
	}
	if r.Failure != nil {
		fmt.Fprintf(w, "     %s\n", strings.ReplaceAll(r.Failure.String(), "\n", "\n     "))
	}
	if len(r.Mismatches) > 0 {
		fmt.Fprintf(w, "     %d of %d lines matched; %d mismatch(es):\n", r.Matched, r.Lines, len(r.Mismatches))
		for _, f := range r.Mismatches[1:] {
			fmt.Fprintf(w, "     %s\n", strings.ReplaceAll(f.String(), "\n", "\n     "))
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "     skipped: %s\n", s)
	}
	for _, s := range r.Unmapped {
		fmt.Fprintf(w, "     unmapped: %s\n", s)
	}
	if verbose {
		for _, s := range r.Applied {
			fmt.Fprintf(w, "     sysctl: %s\n", s)
		}
		for _, s := range r.Notes {
			fmt.Fprintf(w, "     note: %s\n", s)
		}
	}
}
