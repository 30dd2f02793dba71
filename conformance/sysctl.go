package conformance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"tunstack/congestion"
	"tunstack/policy"
)

// Shell commands. packetdrill runs each backquoted command with /bin/sh
// -c, in its own working directory (the script's, by convention), with its
// environment plus PACKETDRILL_PID; the linux target does the same inside
// the test's namespace. The in-process targets have no system to run them
// in: the runner reads the text instead, for the settings it makes. That
// reading is what this file does: it understands the shell well enough to
// find sysctl writes in their usual forms, follows the scripts a command
// runs, and reports everything else.

// Sysctl is one setting a shell line makes.
type Sysctl struct {
	Name  string // dotted: net.ipv4.tcp_sack
	Value string // as the shell passes it: quotes removed, $VAR and $((...)) expanded, whitespace collapsed
	Where string // file:line of the command that sets it
}

func (s Sysctl) String() string { return s.Name + "=" + s.Value }

// ShellScan is what a shell line does, as far as the runner can tell.
type ShellScan struct {
	Sysctls []Sysctl
	// NoOps are commands that change nothing an in-process stack has
	// (traffic control, NIC offloads, the kernel's TCP metrics cache, a
	// sleep before the script starts), each with why: noted, not run.
	NoOps []string
	// Other lists commands that are neither sysctl writes nor scripts we
	// could read (ip link ..., a command we cannot expand): reported,
	// never dropped.
	Other []string
}

// ScanShell finds the sysctl writes in a shell command: `sysctl [-q] [-w]
// n=v ...`, `sysctl -p FILE`, `echo v > /proc/sys/n/...`, `echo v | tee
// /proc/sys/...`, with $VAR, ${VAR} and $((arithmetic)) expanded, and the
// same inside scripts the command runs or sources (paths relative to dir,
// the script's directory).
func ScanShell(command, dir, where string) ShellScan {
	var sc ShellScan
	sh := &shellScanner{sc: &sc, vars: map[string]string{}}
	sh.scan(command, dir, func(int) string { return where })
	return sc
}

// shellScanner reads shell text. vars are the variables assigned so far
// in the current shell (a sourced file shares them; a script run as a
// command starts without them, as a child shell would).
type shellScanner struct {
	sc    *ShellScan
	vars  map[string]string
	depth int
}

// scan reads text, whose line n (from 1) is at where(n).
func (sh *shellScanner) scan(text, dir string, where func(line int) string) {
	for _, c := range splitList(text) {
		sh.pipeline(c.text, dir, where(c.line))
	}
}

// shellItem is one pipeline of a command list and the line it starts on.
type shellItem struct {
	text string
	line int
}

// splitList splits shell text into pipelines at ; & && || and newlines
// outside quotes, $(...), $((...)) and backquotes, dropping # comments and
// joining lines continued with a backslash.
func splitList(s string) []shellItem {
	var out []shellItem
	var cur strings.Builder
	line, start := 1, 1
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			out = append(out, shellItem{t, start})
		}
		cur.Reset()
	}
	var quote byte
	depth := 0 // inside $( ... ) or $(( ... ))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if cur.Len() == 0 || strings.TrimSpace(cur.String()) == "" {
			start = line
		}
		switch {
		case c == '\\' && i+1 < len(s) && quote != '\'':
			if s[i+1] == '\n' {
				line++
				i++
				continue
			}
			cur.WriteByte(c)
			cur.WriteByte(s[i+1])
			i++
			continue
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '$' && i+1 < len(s) && s[i+1] == '(':
			depth++
			cur.WriteString("$(")
			i++
			continue
		case c == '(' && depth > 0:
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == '#' && (cur.Len() == 0 || strings.ContainsRune(" \t\n;&|", rune(s[i-1]))):
			for i < len(s) && s[i] != '\n' {
				i++
			}
			i--
			continue
		case c == '&' && (i > 0 && (s[i-1] == '>' || s[i-1] == '<') || i+1 < len(s) && s[i+1] == '>'):
			// A redirection (>&2, &>file), not a separator.
		case c == '|' && i+1 < len(s) && s[i+1] == '|', c == '&' && i+1 < len(s) && s[i+1] == '&':
			i++
			flush()
			continue
		case c == ';' || c == '&':
			flush()
			continue
		case c == '\n':
			flush()
			line++
			continue
		}
		if c == '\n' {
			line++
		}
		cur.WriteByte(c)
	}
	flush()
	return out
}

// splitPipe splits a pipeline at single '|' outside quotes and $(...).
func splitPipe(s string) []string {
	var out []string
	var quote byte
	depth, last := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quote != '\'':
			i++
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == '|' && depth == 0:
			out = append(out, strings.TrimSpace(s[last:i]))
			last = i + 1
		}
	}
	return append(out, strings.TrimSpace(s[last:]))
}

// simpleCommand is a command with its words expanded.
type simpleCommand struct {
	text    string
	assigns [][2]string // NAME=value before the command word
	words   []string
	// redirects are the output redirections, file names expanded: ">"
	// or ">>" and the target.
	redirects [][2]string
}

// pipeline reads one pipeline: a command, or commands joined by |.
func (sh *shellScanner) pipeline(text, dir, where string) {
	parts := splitPipe(text)
	cmds := make([]simpleCommand, 0, len(parts))
	for _, p := range parts {
		c, err := sh.parseCommand(p)
		if err != nil {
			sh.sc.Other = append(sh.sc.Other, fmt.Sprintf("%s (%v)", p, err))
			return
		}
		cmds = append(cmds, c)
	}
	// echo VALUE | tee [-a] /proc/sys/...: the value goes to each file.
	if len(cmds) == 2 && len(cmds[0].words) > 0 && len(cmds[1].words) > 0 && cmds[0].words[0] == "echo" && filepath.Base(cmds[1].words[0]) == "tee" {
		val := echoValue(cmds[0].words)
		found := false
		for _, f := range cmds[1].words[1:] {
			if n, ok := procSysName(f); ok {
				sh.sc.Sysctls = append(sh.sc.Sysctls, Sysctl{n, collapse(val), where})
				found = true
			}
		}
		if found {
			return
		}
	}
	for _, c := range cmds {
		sh.command(c, dir, where)
	}
}

// command reads one simple command.
func (sh *shellScanner) command(c simpleCommand, dir, where string) {
	if len(c.words) == 0 {
		// NAME=value alone sets a shell variable.
		for _, a := range c.assigns {
			sh.vars[a[0]] = a[1]
		}
		return
	}
	w := c.words
	if w[0] == "exec" || w[0] == "command" {
		w = w[1:]
		if len(w) == 0 {
			return
		}
	}
	// Output redirected into /proc/sys: the command's output is the value.
	for _, r := range c.redirects {
		if n, ok := procSysName(r[1]); ok && r[0] != "<" {
			if w[0] == "echo" || w[0] == "printf" {
				sh.sc.Sysctls = append(sh.sc.Sysctls, Sysctl{n, collapse(echoValue(w)), where})
			} else {
				sh.sc.Other = append(sh.sc.Other, c.text+" (cannot tell what it writes to "+r[1]+")")
			}
			return
		}
	}
	name := filepath.Base(w[0])
	switch {
	case name == "sysctl":
		sh.sysctl(c, w[1:], dir, where)
	case name == "sh" || name == "bash" || name == "dash":
		script := ""
		for _, a := range w[1:] {
			if !strings.HasPrefix(a, "-") {
				script = a
				break
			}
		}
		if script == "" || slices.Contains(w[1:], "-c") {
			sh.sc.Other = append(sh.sc.Other, c.text)
			return
		}
		sh.file(script, dir, c.text, false)
	case w[0] == "." || w[0] == "source":
		if len(w) < 2 {
			sh.sc.Other = append(sh.sc.Other, c.text)
			return
		}
		sh.file(w[1], dir, c.text, true)
	case name == "export":
		for _, a := range w[1:] {
			if k, v, ok := strings.Cut(a, "="); ok && isShellName(k) {
				sh.vars[k] = v
			}
		}
	case name == "true" || name == ":" || name == "set" || name == "cd" || (name == "echo" || name == "printf") && len(c.redirects) == 0:
		// No effect on a stack (echo without redirection only prints).
	case name == "tc":
		sh.sc.NoOps = append(sh.sc.NoOps, c.text+": traffic control has no equivalent between an in-process stack and the script")
	case name == "ethtool":
		sh.sc.NoOps = append(sh.sc.NoOps, c.text+": NIC settings have no equivalent on an in-process stack")
	case name == "ip" && len(w) > 1 && (strings.HasPrefix(w[1], "tcp_m") || strings.HasPrefix(w[1], "tcpm")):
		sh.sc.NoOps = append(sh.sc.NoOps, c.text+": the kernel's TCP metrics cache; an in-process stack keeps no metrics between connections")
	case name == "sleep":
		sh.sc.NoOps = append(sh.sc.NoOps, c.text+": a pause in a shell line is not script time")
	case strings.HasSuffix(w[0], ".sh") || strings.ContainsRune(w[0], '/'):
		sh.file(w[0], dir, c.text, false)
	default:
		sh.sc.Other = append(sh.sc.Other, c.text)
	}
}

// sysctl reads sysctl's arguments: NAME=VALUE writes, and -p/--load FILE
// (sysctl.conf lines NAME = VALUE); other options and reads are ignored.
func (sh *shellScanner) sysctl(c simpleCommand, args []string, dir, where string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-p" || a == "--load" || a == "-f":
			if i+1 >= len(args) || strings.Contains(args[i+1], "=") {
				sh.sc.Other = append(sh.sc.Other, c.text+" (loads /etc/sysctl.conf)")
				continue
			}
			i++
			sh.sysctlConf(args[i], dir, c.text)
		case strings.HasPrefix(a, "-p") && len(a) > 2 && !strings.HasPrefix(a, "--"):
			sh.sysctlConf(a[2:], dir, c.text)
		case strings.HasPrefix(a, "--load="):
			sh.sysctlConf(strings.TrimPrefix(a, "--load="), dir, c.text)
		case strings.HasPrefix(a, "-"):
		default:
			if k, v, ok := strings.Cut(a, "="); ok {
				sh.sc.Sysctls = append(sh.sc.Sysctls, Sysctl{normSysctl(k), collapse(v), where})
			}
		}
	}
}

// sysctlConf reads a sysctl.conf file: NAME = VALUE lines, # and ;
// comments, a leading '-' meaning errors are ignored.
func (sh *shellScanner) sysctlConf(path, dir, cmd string) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		sh.sc.Other = append(sh.sc.Other, cmd+" (cannot read "+path+")")
		return
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "-"), "=")
		if !ok {
			continue
		}
		sh.sc.Sysctls = append(sh.sc.Sysctls, Sysctl{normSysctl(k), collapse(v), fmt.Sprintf("%s:%d", path, i+1)})
	}
}

// file reads a script a command runs (or sources, sharing variables).
func (sh *shellScanner) file(path, dir, cmd string, source bool) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil || sh.depth > 4 {
		sh.sc.Other = append(sh.sc.Other, cmd)
		return
	}
	child := &shellScanner{sc: sh.sc, vars: map[string]string{}, depth: sh.depth + 1}
	if source {
		child.vars = sh.vars
	}
	child.scan(string(b), filepath.Dir(path), func(line int) string { return fmt.Sprintf("%s:%d", path, line) })
}

// procSysName maps /proc/sys/net/ipv4/x to net.ipv4.x.
func procSysName(path string) (string, bool) {
	rest, ok := strings.CutPrefix(filepath.Clean(path), "/proc/sys/")
	if !ok || rest == "" {
		return "", false
	}
	return strings.ReplaceAll(rest, "/", "."), true
}

// echoValue is what echo or printf writes: echo's arguments after its
// options; printf's arguments after the format, or the format itself.
func echoValue(w []string) string {
	args := w[1:]
	if w[0] == "printf" {
		if len(args) > 1 {
			return strings.Join(args[1:], " ")
		}
		if len(args) == 1 {
			return strings.NewReplacer(`\n`, "", `\t`, " ").Replace(args[0])
		}
		return ""
	}
	for len(args) > 0 && (args[0] == "-n" || args[0] == "-e" || args[0] == "-E" || args[0] == "-ne" || args[0] == "-en") {
		args = args[1:]
	}
	return strings.Join(args, " ")
}

// parseCommand splits a simple command into words as the shell does:
// quotes removed, backslash escapes undone, $NAME, ${NAME} and $((...))
// expanded; leading NAME=value words are assignments; > and >>
// redirections are taken out. A value it cannot know (a command
// substitution, a variable never assigned) is an error.
func (sh *shellScanner) parseCommand(s string) (simpleCommand, error) {
	c := simpleCommand{text: s}
	var words []string
	var cur strings.Builder
	inWord := false
	redirect := "" // the operator waiting for its target
	flush := func() {
		if !inWord {
			return
		}
		w := cur.String()
		cur.Reset()
		inWord = false
		if redirect != "" {
			c.redirects = append(c.redirects, [2]string{redirect, w})
			redirect = ""
			return
		}
		words = append(words, w)
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			flush()
		case ch == '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
			inWord = true
		case ch == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return c, errors.New("unterminated quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case ch == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				switch {
				case s[j] == '\\' && j+1 < len(s) && strings.ContainsRune("$`\"\\\n", rune(s[j+1])):
					j++
					cur.WriteByte(s[j])
				case s[j] == '$':
					n, v, err := sh.expand(s[j:])
					if err != nil {
						return c, err
					}
					cur.WriteString(v)
					j += n - 1
				case s[j] == '`':
					return c, errors.New("command substitution")
				default:
					cur.WriteByte(s[j])
				}
			}
			if j >= len(s) {
				return c, errors.New("unterminated quote")
			}
			i = j
			inWord = true
		case ch == '$':
			n, v, err := sh.expand(s[i:])
			if err != nil {
				return c, err
			}
			cur.WriteString(v)
			i += n - 1
			inWord = true
		case ch == '`':
			return c, errors.New("command substitution")
		case ch == '>' || ch == '<':
			// [N]> [N]>> >& &> <: a redirection, its target the next word.
			if inWord && cur.Len() == 1 && isDigit(cur.String()[0]) {
				cur.Reset()
				inWord = false
			}
			flush()
			op := string(ch)
			if ch == '>' && i+1 < len(s) && s[i+1] == '>' {
				op, i = ">>", i+1
			}
			if i+1 < len(s) && s[i+1] == '&' {
				i++ // >&2: a descriptor, not a file
				j := i + 1
				for j < len(s) && isDigit(s[j]) {
					j++
				}
				i = j - 1
				continue
			}
			if ch == '<' {
				op = "<"
			}
			redirect = op
		case ch == '&' && i+1 < len(s) && s[i+1] == '>':
			flush()
			i++
			redirect = ">"
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	flush()
	if redirect != "" {
		return c, errors.New("redirection without a target")
	}
	// Leading NAME=value words are assignments.
	for len(words) > 0 {
		k, v, ok := strings.Cut(words[0], "=")
		if !ok || !isShellName(k) {
			break
		}
		c.assigns = append(c.assigns, [2]string{k, v})
		words = words[1:]
	}
	c.words = words
	return c, nil
}

func isShellName(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isWordByte(s[i]) {
			return false
		}
	}
	return true
}

// expand reads the expansion at the start of s ($NAME, ${NAME},
// $((expression))) and returns how many bytes it took and its value.
func (sh *shellScanner) expand(s string) (int, string, error) {
	switch {
	case strings.HasPrefix(s, "$(("):
		depth := 0
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					if i < 2 || s[i-1] != ')' {
						return 0, "", errors.New("unbalanced $((")
					}
					v, err := sh.arith(s[3 : i-1])
					return i + 1, strconv.FormatInt(v, 10), err
				}
			}
		}
		return 0, "", errors.New("unterminated $((")
	case strings.HasPrefix(s, "$("):
		return 0, "", errors.New("command substitution")
	case strings.HasPrefix(s, "${"):
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return 0, "", errors.New("unterminated ${")
		}
		name := s[2:end]
		if !isShellName(name) {
			return 0, "", fmt.Errorf("cannot expand ${%s}", name)
		}
		v, err := sh.variable(name)
		return end + 1, v, err
	}
	n := 1
	for n < len(s) && isWordByte(s[n]) && (n > 1 || isIdentStart(s[n])) {
		n++
	}
	if n == 1 {
		if n < len(s) && (isDigit(s[1]) || strings.ContainsRune("?#$!@*-", rune(s[1]))) {
			return 0, "", fmt.Errorf("cannot expand $%c", s[1])
		}
		return 1, "$", nil // a lone $
	}
	v, err := sh.variable(s[1:n])
	return n, v, err
}

// variable is a shell variable's value: one assigned in the text read so
// far. Others (the environment's, PACKETDRILL_PID) are not known ahead of
// the run.
func (sh *shellScanner) variable(name string) (string, error) {
	if v, ok := sh.vars[name]; ok {
		return v, nil
	}
	return "", fmt.Errorf("$%s is not set by the script", name)
}

// arith evaluates shell arithmetic ($((...))): integers (decimal, 0x hex,
// 0 octal), variables, ( ), unary + - ~ !, ** * / % + - << >> < <= > >=
// == != & ^ | && ||, with C's precedence. The conditional ?: and
// assignments are not read: a line using them is reported, not guessed.
func (sh *shellScanner) arith(expr string) (int64, error) {
	a := &arithParser{s: expr, sh: sh}
	v, err := a.binary(0)
	if err != nil {
		return 0, err
	}
	a.space()
	if a.i != len(a.s) {
		return 0, fmt.Errorf("cannot evaluate $((%s)) at %q", expr, a.s[a.i:])
	}
	return v, nil
}

type arithParser struct {
	s  string
	i  int
	sh *shellScanner
}

func (a *arithParser) space() {
	for a.i < len(a.s) && (a.s[a.i] == ' ' || a.s[a.i] == '\t' || a.s[a.i] == '\n') {
		a.i++
	}
}

// arithOps are the binary operators by precedence, lowest first.
var arithOps = [][]string{{"||"}, {"&&"}, {"|"}, {"^"}, {"&"}, {"==", "!="}, {"<=", ">=", "<", ">"}, {"<<", ">>"}, {"+", "-"}, {"*", "/", "%"}, {"**"}}

func (a *arithParser) op(level int) string {
	a.space()
	for _, o := range arithOps[level] {
		if strings.HasPrefix(a.s[a.i:], o) {
			// "|" is not the start of "||", "&" not of "&&", "*" not of "**".
			if len(o) == 1 && a.i+1 < len(a.s) && a.s[a.i+1] == o[0] && (o == "|" || o == "&" || o == "*") {
				continue
			}
			if (o == "<" || o == ">") && a.i+1 < len(a.s) && (a.s[a.i+1] == o[0] || a.s[a.i+1] == '=') {
				continue
			}
			return o
		}
	}
	return ""
}

func (a *arithParser) binary(level int) (int64, error) {
	if level == len(arithOps) {
		return a.unary()
	}
	l, err := a.binary(level + 1)
	if err != nil {
		return 0, err
	}
	for {
		o := a.op(level)
		if o == "" {
			return l, nil
		}
		a.i += len(o)
		next := level + 1
		if o == "**" {
			next = level // right associative
		}
		r, err := a.binary(next)
		if err != nil {
			return 0, err
		}
		if l, err = arithApply(o, l, r); err != nil {
			return 0, err
		}
	}
}

func arithApply(o string, l, r int64) (int64, error) {
	b := func(x bool) int64 {
		if x {
			return 1
		}
		return 0
	}
	switch o {
	case "||":
		return b(l != 0 || r != 0), nil
	case "&&":
		return b(l != 0 && r != 0), nil
	case "|":
		return l | r, nil
	case "^":
		return l ^ r, nil
	case "&":
		return l & r, nil
	case "==":
		return b(l == r), nil
	case "!=":
		return b(l != r), nil
	case "<":
		return b(l < r), nil
	case "<=":
		return b(l <= r), nil
	case ">":
		return b(l > r), nil
	case ">=":
		return b(l >= r), nil
	case "<<":
		return l << uint64(r&63), nil
	case ">>":
		return l >> uint64(r&63), nil
	case "+":
		return l + r, nil
	case "-":
		return l - r, nil
	case "*":
		return l * r, nil
	case "/", "%":
		if r == 0 {
			return 0, errors.New("division by zero in $((...))")
		}
		if o == "/" {
			return l / r, nil
		}
		return l % r, nil
	case "**":
		if r < 0 {
			return 0, errors.New("negative exponent in $((...))")
		}
		v := int64(1)
		for ; r > 0; r-- {
			v *= l
		}
		return v, nil
	}
	return 0, fmt.Errorf("unknown operator %s", o)
}

func (a *arithParser) unary() (int64, error) {
	a.space()
	if a.i >= len(a.s) {
		return 0, errors.New("incomplete $((...))")
	}
	switch c := a.s[a.i]; {
	case c == '+' || c == '-' || c == '~' || c == '!':
		a.i++
		v, err := a.unary()
		switch c {
		case '-':
			v = -v
		case '~':
			v = ^v
		case '!':
			if v == 0 {
				v = 1
			} else {
				v = 0
			}
		}
		return v, err
	case c == '(':
		a.i++
		v, err := a.binary(0)
		if err != nil {
			return 0, err
		}
		a.space()
		if a.i >= len(a.s) || a.s[a.i] != ')' {
			return 0, errors.New("missing ) in $((...))")
		}
		a.i++
		return v, nil
	case isDigit(c):
		j := a.i
		for j < len(a.s) && isWordByte(a.s[j]) {
			j++
		}
		lit := a.s[a.i:j]
		a.i = j
		v, ok := strtolFull(lit)
		if !ok {
			return 0, fmt.Errorf("bad number %q in $((...))", lit)
		}
		return v, nil
	case c == '$' || isIdentStart(c):
		if c == '$' {
			a.i++
		}
		j := a.i
		for j < len(a.s) && isWordByte(a.s[j]) {
			j++
		}
		name := a.s[a.i:j]
		a.i = j
		v, err := a.sh.variable(name)
		if err != nil {
			return 0, err
		}
		if v == "" {
			return 0, nil
		}
		n, ok := strtolFull(strings.TrimSpace(v))
		if !ok {
			return 0, fmt.Errorf("$%s is %q, not a number", name, v)
		}
		return n, nil
	}
	return 0, fmt.Errorf("cannot evaluate %q in $((...))", a.s[a.i:])
}

func normSysctl(k string) string { return strings.ReplaceAll(strings.TrimSpace(k), "/", ".") }
func collapse(v string) string   { return strings.Join(strings.Fields(v), " ") }

// applyShellSysctls gives the profile the settings of the commands that
// run before the script starts (--init_scripts, the init command) and of
// its timed shell lines (an in-process target is created once, so those
// take effect from the start too). The cleanup command runs after the
// last event, so its settings are only listed.
func (r *runner) applyShellSysctls(p *policy.Profile) {
	dir := filepath.Dir(r.s.Path)
	var lines []*Shell
	for _, c := range r.s.Config.InitScripts {
		lines = append(lines, &Shell{Command: c})
	}
	if r.s.Init != nil {
		lines = append(lines, r.s.Init)
	}
	for _, ev := range r.s.Events {
		if ev.Shell != nil {
			lines = append(lines, ev.Shell)
		}
	}
	where := func(l *Shell) string {
		if l.Line == 0 {
			return "--init_scripts"
		}
		return fmt.Sprintf("%s:%d", r.s.Path, l.Line)
	}
	for _, l := range lines {
		sc := ScanShell(l.Command, dir, where(l))
		applied, unmapped := ApplySysctls(p, sc.Sysctls)
		for _, a := range applied {
			r.res.Applied = append(r.res.Applied, fmt.Sprintf("%s -> %s", a.Sysctl, a.Knob))
		}
		for _, u := range unmapped {
			r.res.Unmapped = append(r.res.Unmapped, fmt.Sprintf("%s (%s)", u, u.Where))
		}
		for _, s := range sc.Sysctls {
			if !PerNamespace(s.Name) {
				r.res.Notes = append(r.res.Notes, fmt.Sprintf("%s (%s) exists only in the initial network namespace: the linux target cannot set it", s, s.Where))
			}
		}
		for _, n := range sc.NoOps {
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("%s: not run on an in-process stack: %s", where(l), n))
		}
		for _, o := range sc.Other {
			r.res.Unmapped = append(r.res.Unmapped, fmt.Sprintf("shell command %q (%s)", o, where(l)))
		}
	}
	if c := r.s.Cleanup; c != nil {
		for _, s := range ScanShell(c.Command, dir, where(c)).Sysctls {
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("%s (%s): in the cleanup command, which runs after the last event; not applied", s, s.Where))
		}
	}
}

// runInit runs the --init_scripts commands and the script's init command,
// in that order, before time 0, as packetdrill does. A command that fails
// fails the script.
func (r *runner) runInit() bool {
	dir := filepath.Dir(r.s.Path)
	for _, c := range r.s.Config.InitScripts {
		if err := r.t.Shell(c, dir); err != nil && !errors.Is(err, ErrNoShell) {
			r.failAt(0, fmt.Sprintf("error executing init script '%s': %v", c, err), "", "")
			return false
		}
	}
	in := r.s.Init
	if in == nil {
		return true
	}
	err := r.t.Shell(in.Command, dir)
	switch {
	case errors.Is(err, ErrNoShell):
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("%s:%d: init command not run on %s; its sysctls were applied to the profile", r.s.Path, in.Line, r.t.Name()))
	case err != nil:
		r.res.Status = Fail
		r.res.Failure = &Failure{Where: fmt.Sprintf("%s:%d", r.s.Path, in.Line), Message: "error executing init command: " + err.Error(), Expected: "`" + in.Command + "`"}
		return false
	}
	return true
}

// runCleanup runs the cleanup command after the last event, whatever the
// verdict. packetdrill runs it only when the script also has an init
// command; so does the runner.
func (r *runner) runCleanup() {
	c := r.s.Cleanup
	if c == nil {
		return
	}
	if r.s.Init == nil {
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("%s:%d: cleanup command not run: packetdrill runs it only in a script with an init command", r.s.Path, c.Line))
		return
	}
	err := r.t.Shell(c.Command, filepath.Dir(r.s.Path))
	switch {
	case errors.Is(err, ErrNoShell):
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("%s:%d: cleanup command not run on %s", r.s.Path, c.Line, r.t.Name()))
	case err != nil && r.res.Status == Pass:
		r.res.Status = Fail
		r.res.Failure = &Failure{Where: fmt.Sprintf("%s:%d", r.s.Path, c.Line), Message: "error executing cleanup command: " + err.Error(), Expected: "`" + c.Command + "`", Time: r.now().Seconds()}
	case err != nil:
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("%s:%d: error executing cleanup command: %v", r.s.Path, c.Line, err))
	}
}

// Applied is a knob the runner set from a sysctl.
type Applied struct {
	Sysctl Sysctl
	Knob   string // policy field(s) set
}

// ApplySysctls sets p's knobs from the sysctls it knows and returns what it
// set and the settings that have no knob (reported as unmapped).
func ApplySysctls(p *policy.Profile, ss []Sysctl) (applied []Applied, unmapped []Sysctl) {
	for _, s := range ss {
		knob, err := applyOne(p, s)
		switch {
		case err != nil:
			unmapped = append(unmapped, Sysctl{s.Name, s.Value + " (" + err.Error() + ")", s.Where})
		case knob == "":
			unmapped = append(unmapped, s)
		default:
			applied = append(applied, Applied{s, knob})
		}
	}
	return applied, unmapped
}

func applyOne(p *policy.Profile, s Sysctl) (string, error) {
	name := s.Name
	ints := func(n int) ([]int, error) {
		f := strings.Fields(s.Value)
		if len(f) != n {
			return nil, fmt.Errorf("expected %d integers", n)
		}
		out := make([]int, n)
		for i, x := range f {
			v, err := strconv.Atoi(x)
			if err != nil {
				return nil, fmt.Errorf("expected an integer, found %q", x)
			}
			out[i] = v
		}
		return out, nil
	}
	one := func() (int, error) {
		v, err := ints(1)
		if err != nil {
			return 0, err
		}
		return v[0], nil
	}
	boolean := func(dst *bool) error {
		v, err := one()
		*dst = v != 0
		return err
	}
	secs := func(dst *time.Duration) error {
		v, err := one()
		*dst = time.Duration(v) * time.Second
		return err
	}
	integer := func(dst *int) error {
		v, err := one()
		*dst = v
		return err
	}
	switch name {
	case "net.ipv4.tcp_rmem":
		v, err := ints(3)
		if err != nil {
			return "", err
		}
		p.RcvBuf, p.RcvBufMax = v[1], v[2]
		return "RcvBuf, RcvBufMax", nil
	case "net.ipv4.tcp_wmem":
		v, err := ints(3)
		if err != nil {
			return "", err
		}
		p.SndBuf, p.SndBufMax = v[1], v[2]
		return "SndBuf, SndBufMax", nil
	case "net.ipv4.tcp_timestamps":
		return "Timestamps", boolean(&p.Timestamps)
	case "net.ipv4.tcp_sack":
		return "SACK", boolean(&p.SACK)
	case "net.ipv4.tcp_dsack":
		return "DSACK", boolean(&p.DSACK)
	case "net.ipv4.tcp_window_scaling":
		return "WindowScaling", boolean(&p.WindowScaling)
	case "net.ipv4.tcp_syn_retries":
		return "SynRetries", integer(&p.SynRetries)
	case "net.ipv4.tcp_syn_linear_timeouts":
		return "SynLinearTimeouts", integer(&p.SynLinearTimeouts)
	case "net.ipv4.tcp_synack_retries":
		return "SynAckRetries", integer(&p.SynAckRetries)
	case "net.ipv4.tcp_retries2":
		return "Retries2", integer(&p.Retries2)
	case "net.ipv4.tcp_congestion_control":
		if !slices.Contains(congestion.Names(), s.Value) {
			return "", fmt.Errorf("no controller named %q (known: %s)", s.Value, strings.Join(congestion.Names(), ", "))
		}
		p.Congestion = s.Value
		return "Congestion", nil
	case "net.ipv4.tcp_syncookies":
		v, err := one()
		// 1: cookies when the SYN queue overflows; 2: always (no knob for that).
		if v == 2 {
			return "", nil
		}
		p.SynCookies = v != 0
		return "SynCookies", err
	case "net.ipv4.tcp_frto":
		// Linux behaviour (tcp_enter_loss): any value but 0 turns F-RTO
		// on; 1 and 2 name the basic and SACK-enhanced variants, which
		// are one algorithm now.
		return "FRTO", boolean(&p.FRTO)
	case "net.ipv4.tcp_slow_start_after_idle":
		return "SlowStartAfterIdle", boolean(&p.SlowStartAfterIdle)
	case "net.ipv4.tcp_abort_on_overflow":
		return "AbortOnOverflow", boolean(&p.AbortOnOverflow)
	case "net.ipv4.tcp_max_syn_backlog":
		return "MaxSynBacklog", integer(&p.MaxSynBacklog)
	case "net.core.somaxconn":
		return "Somaxconn", integer(&p.Somaxconn)
	case "net.ipv4.tcp_fin_timeout":
		return "FinTimeout", secs(&p.FinTimeout)
	case "net.ipv4.tcp_keepalive_time":
		return "KeepAliveIdle", secs(&p.KeepAliveIdle)
	case "net.ipv4.tcp_keepalive_intvl":
		return "KeepAliveInterval", secs(&p.KeepAliveInterval)
	case "net.ipv4.tcp_keepalive_probes":
		return "KeepAliveProbes", integer(&p.KeepAliveProbes)
	case "net.ipv4.tcp_min_snd_mss":
		return "MinSendMSS", integer(&p.MinSendMSS)
	case "net.ipv4.tcp_invalid_ratelimit":
		v, err := one()
		p.InvalidRateLimit = time.Duration(v) * time.Millisecond
		return "InvalidRateLimit", err
	case "net.ipv4.tcp_early_retrans":
		v, err := one()
		if err != nil {
			return "", err
		}
		if v < 0 || v > 4 {
			return "", fmt.Errorf("Linux takes 0 to 4")
		}
		// Linux behaviour (tcp_schedule_loss_probe): only 3 and 4 arm
		// the tail loss probe; 0, 1 and 2 (the retired early-retransmit
		// modes) leave it off.
		p.TailLossProbe = v == 3 || v == 4
		return "TailLossProbe", nil
	case "net.ipv4.tcp_rto_min_us":
		v, err := one()
		if err != nil {
			return "", err
		}
		if v < 1 {
			return "", fmt.Errorf("Linux takes 1 or more")
		}
		d := time.Duration(v) * time.Microsecond
		if d > p.RTOMax {
			return "", fmt.Errorf("%v is above RTOMax %v, which the profile cannot hold", d, p.RTOMax)
		}
		// Linux behaviour: icsk_rto_min is the floor on the RTO's
		// variance term (tcp_rtt_estimator), the delayed-ACK allowance
		// of a probe with one segment out (tcp_schedule_loss_probe), and
		// bounds the delayed-ACK timeout to one jiffy (1 ms here) less
		// (tcp_delack_max).
		p.RTOMin, p.TLPDelAckAllowance = d, d
		p.DelAckMax = min(p.DelAckMax, max(d-time.Millisecond, time.Millisecond))
		p.DelAckMin = min(p.DelAckMin, p.DelAckMax)
		return "RTOMin, TLPDelAckAllowance, DelAckMax", nil
	case "net.ipv4.tcp_rto_max_ms":
		v, err := one()
		if err != nil {
			return "", err
		}
		if v < 1000 || v > 120000 {
			return "", fmt.Errorf("Linux takes 1000 to 120000")
		}
		d := time.Duration(v) * time.Millisecond
		if d < p.RTOMin {
			return "", fmt.Errorf("%v is below RTOMin %v, which the profile cannot hold", d, p.RTOMin)
		}
		// Linux behaviour (6.15 and later): the ceiling of the backed-off
		// RTO (tcp_rto_max).
		p.RTOMax = d
		return "RTOMax", nil
	case "net.ipv4.ip_local_port_range":
		v, err := ints(2)
		if err != nil {
			return "", err
		}
		// Linux behaviour (ipv4_local_port_range): the range is
		// inclusive, its low end at least ip_unprivileged_port_start
		// (1024 unless changed, and no knob here changes it), its high
		// end at most 65535, and a range of one port is allowed.
		if v[0] < 1024 || v[1] > 65535 || v[0] > v[1] {
			return "", fmt.Errorf("Linux takes LOW HIGH with 1024 <= LOW <= HIGH <= 65535")
		}
		p.LocalPortMin, p.LocalPortMax = uint16(v[0]), uint16(v[1])
		return "LocalPortMin, LocalPortMax", nil
	case "net.ipv4.tcp_tw_reuse":
		v, err := one()
		if err != nil {
			return "", err
		}
		// Linux behaviour (tcp_twsk_unique): 0 never, 1 always, 2 only
		// between loopback addresses lets an active open take over a
		// TIME-WAIT entry of its 4-tuple.
		if v < 0 || v > 2 {
			return "", fmt.Errorf("Linux takes 0, 1 or 2")
		}
		p.TwReuse = v
		return "TwReuse", nil
	case "net.ipv4.tcp_tw_reuse_delay":
		v, err := one()
		if err != nil {
			return "", err
		}
		// Linux behaviour (6.13 and later, tcp_twsk_unique): the
		// milliseconds a connection must have been in TIME-WAIT before
		// tcp_tw_reuse may take the entry over, counted from the entry's
		// start, not from the peer's last timestamp
		// (bind/tw-reuse-delay-counts-from-entry.pkt).
		if v < 1 || v > 60000 {
			return "", fmt.Errorf("Linux takes 1 to 60000 (milliseconds)")
		}
		p.TwReuseDelay = time.Duration(v) * time.Millisecond
		return "TwReuseDelay", nil
	}
	return "", nil
}

// notPerNamespace lists the TCP-related sysctls that Linux 6.x keeps only
// in the initial network namespace (measured: they are absent from
// /proc/sys/net in a new namespace). The linux target cannot set them: the
// write fails inside the test namespace, and the runner reports it rather
// than touch the host. Everything else under net.ipv4.tcp_* and
// net.core.somaxconn/rmem_*/wmem_* is per namespace; note that a new
// namespace inherits tcp_rmem, tcp_wmem and tcp_congestion_control from the
// host, which is why the defaults file sets them.
var notPerNamespace = map[string]bool{
	"net.ipv4.tcp_mem":            true,
	"net.ipv4.tcp_max_orphans":    true,
	"net.ipv4.tcp_low_latency":    true,
	"net.ipv4.tcp_available_ulp":  true,
	"net.core.default_qdisc":      true,
	"net.core.netdev_max_backlog": true,
	"net.core.netdev_budget":      true,
	"net.core.busy_poll":          true,
	"net.core.busy_read":          true,
}

// PerNamespace reports whether a sysctl can be set inside a test namespace.
func PerNamespace(name string) bool { return !notPerNamespace[name] }
