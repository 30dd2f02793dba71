package conformance

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse parses arbitrary text as a script. Parse never panics; a
// rejection is a ParseError naming the file, saying what was expected, and
// pointing at a line of the text (line 0, no line, only for the options'
// settings as a whole, which only option lines make); an accepted script's
// options and events sit on lines of the text, in order.
func FuzzParse(f *testing.F) {
	// Every script of the suite, and a few texts cut short.
	err := filepath.WalkDir("scripts", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pkt") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f.Add(string(b))
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("")
	f.Add("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...")
	f.Add("--ip_version=ipv6\n--local_ip=not-an-address\n0 close(3) = 0\n")
	f.Add("0 < S 0:0(0) win 1000 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7\n+.1 > S. 0:0(0) ack 1 <...>\n")
	f.Add("%{ print(tcpi_rto) }%\n`echo hi`\n")
	f.Fuzz(func(t *testing.T, src string) {
		const name = "fuzz.pkt"
		lines := strings.Count(src, "\n") + 1
		s, err := Parse(name, src)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is no ParseError", err, err)
			}
			if pe.File != name || pe.Msg == "" {
				t.Fatalf("ParseError %+v names no file or says nothing", pe)
			}
			if pe.Line < 0 || pe.Line > lines || pe.Line == 0 && !strings.Contains(src, "--") {
				t.Fatalf("error on line %d of a text of %d lines with no option: %v", pe.Line, lines, err)
			}
			return
		}
		last := 0
		for _, o := range s.Options {
			if o.Line < 1 || o.Line > lines || o.Line < last {
				t.Fatalf("option %q on line %d after line %d, text of %d lines", o.Name, o.Line, last, lines)
			}
			last = o.Line
		}
		for _, ev := range s.Events {
			if ev.Line < 1 || ev.Line > lines || ev.Line < last {
				t.Fatalf("event on line %d after line %d, text of %d lines", ev.Line, last, lines)
			}
			last = ev.Line
		}
	})
}
