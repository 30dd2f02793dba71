package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"tunstack/lab/netns"
)

// OracleStack is the matrix column of the real packetdrill run on Linux:
// Google's own tool, the field's reference for what a script means. A script
// in conformance/scripts is right when this column passes it, and the linux
// column (our runner driving the same kernel) must reach the same verdict.
const OracleStack = "packetdrill"

// OracleTimeout bounds one script under the real tool; the longest scripts
// wait out TIME-WAIT or a run of retransmission timeouts, about a minute.
const OracleTimeout = 3 * time.Minute

// RunPacketdrill runs script with the real packetdrill binary at bin, the
// way the tool expects to be run: as root, in a network namespace of its own
// (created here and deleted after), from the script's own folder so that
// relative paths in its shell commands resolve, with args added to its
// command line. The verdict is the tool's exit status; a failure carries the
// first error it printed (file:line: message) and the script and actual
// packets it printed with it.
func RunPacketdrill(bin, script string, args []string) *Result {
	start := time.Now()
	r := &Result{Script: script, Stack: OracleStack}
	finish := func() *Result { r.Seconds = time.Since(start).Seconds(); return r }
	if os.Geteuid() != 0 {
		r.Status, r.Reason = Skip, "the real packetdrill needs root to create its TUN device in a network namespace"
		return finish()
	}
	abs, err := filepath.Abs(script)
	if err != nil {
		r.Status, r.Reason = Skip, err.Error()
		return finish()
	}
	ns, err := netns.New("pd")
	if err != nil {
		r.Status, r.Reason = Skip, fmt.Sprintf("cannot create a network namespace: %v", err)
		return finish()
	}
	defer ns.Close()
	ctx, cancel := context.WithTimeout(context.Background(), OracleTimeout)
	defer cancel()
	argv := append([]string{"netns", "exec", ns.Name(), bin}, args...)
	cmd := exec.CommandContext(ctx, "ip", append(argv, filepath.Base(abs))...)
	cmd.Dir = filepath.Dir(abs)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		r.Status = Pass
	case ctx.Err() != nil:
		r.Status = Fail
		r.Failure = &Failure{Where: script, Message: fmt.Sprintf("the real packetdrill did not finish within %s", OracleTimeout)}
	case errors.As(err, &exit):
		r.Status = Fail
		r.Failure = parsePacketdrillFailure(script, out.String())
	default:
		r.Status, r.Reason = Skip, fmt.Sprintf("cannot run %s: %v", bin, err)
	}
	return finish()
}

// packetdrillError is the tool's error line: "name.pkt:LINE: message".
var packetdrillError = regexp.MustCompile(`^[^:\s]+\.pkt:(\d+): (.*)$`)

// parsePacketdrillFailure turns the tool's output into a Failure: the first
// error line gives where and what; "script packet:" and "actual packet:"
// lines after it give the two packets.
func parsePacketdrillFailure(script, out string) *Failure {
	f := &Failure{Where: script}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case f.Message == "":
			if m := packetdrillError.FindStringSubmatch(line); m != nil {
				f.Where, f.Message = script+":"+m[1], m[2]
			}
		case strings.HasPrefix(line, "script packet:") && f.Expected == "":
			f.Expected = strings.TrimSpace(strings.TrimPrefix(line, "script packet:"))
		case strings.HasPrefix(line, "actual packet:") && f.Actual == "":
			f.Actual = strings.TrimSpace(strings.TrimPrefix(line, "actual packet:"))
		}
	}
	if f.Message == "" {
		// No error line (a crash, a signal): the last words it printed.
		msg := strings.TrimSpace(out)
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		if msg == "" {
			msg = "the real packetdrill failed without a message"
		}
		f.Message = msg
	}
	return f
}
