package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os/exec"
	"strconv"
	"time"

	"tunstack/demo"
	"tunstack/internal/testtools"
)

// The http-load scenario: ApacheBench (ab) in the peer's namespace opens
// httpLoadClients connections at a time to the demo site on the stack
// under test, one request each (ab speaks HTTP/1.0 without keep-alive, so
// every request is a new connection, and the server closes it), for the
// run's window.
const (
	httpLoadPort    = 5005
	httpLoadClients = 1000
	// httpLoadPath is the request: a 10,000-byte response, seven
	// segments and a handshake per request.
	httpLoadPath = "/bytes/10000"
	// httpLoadBacklog is the listener's backlog on the user-space stacks:
	// Linux's default somaxconn, which a Go server's net.Listen gets on
	// the kernel (kernelNet).
	httpLoadBacklog = 4096
	// httpLoadMaxRequests bounds a run's requests; the window ends it
	// first on any stack this machine can run.
	httpLoadMaxRequests = 10_000_000
)

func init() {
	scenarios = append(scenarios, &scenario{name: "http-load", short: "1,000 concurrent new connections with ab: req/s, p50/p99",
		unit: "req/s", higherBetter: true, run: runHTTPLoad,
		about: "ApacheBench (ab -c 1000, each request a new connection) fetches " + httpLoadPath + " from the demo site on the stack (Go's net/http; on linux over kernel TCP) for the window; requests per second, ab's p50 and p99 of each request's whole time in ms, the SYNs the clients retransmitted (TcpExtTCPSynRetrans in the peer's namespace) and the packets the devices dropped"})
}

// runHTTPLoad serves the demo site on the stack under test and runs ab
// against it from the peer's namespace.
func runHTTPLoad(r *runCtx) (Sample, error) {
	if err := testtools.Missing("ab"); err != nil {
		return Sample{}, &SkipError{Reason: err.Error()}
	}
	ln, err := r.env.server.Listen(r.env.family.serverAddrPort(httpLoadPort), httpLoadBacklog)
	if err != nil {
		return Sample{}, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           demo.NewSiteHandler(demo.SiteConfig{StackName: r.env.stack}),
		ReadHeaderTimeout: 30 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		<-served
	}()

	url := "http://" + r.env.family.serverAddrPort(httpLoadPort) + httpLoadPath
	// -t bounds the run by the window; -n after it lifts the request
	// count that -t implies (50,000) so that the window ends the run.
	secs := int(math.Ceil(r.duration.Seconds()))
	args := append([]string{"-t", strconv.Itoa(secs)}, ABArgs(httpLoadMaxRequests, httpLoadClients, url)...)
	cmd := r.env.peer.Command("ab", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	before, err := r.env.peer.TCPCounters()
	if err != nil {
		return Sample{}, err
	}
	w := r.begin()
	if err := cmd.Start(); err != nil {
		return Sample{}, fmt.Errorf("ab: %w", err)
	}
	err = waitBounded(r.ctx, cmd)
	we := r.end(w)
	if err != nil {
		return Sample{}, fmt.Errorf("ab: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	after, err := r.env.peer.TCPCounters()
	if err != nil {
		return Sample{}, err
	}
	ab, err := ParseAB(stdout.Bytes())
	if err != nil {
		return Sample{}, err
	}
	if ab.Complete == 0 {
		return Sample{}, errors.New("ab completed no request")
	}
	m := map[string]float64{
		"rps":         ab.RequestsSec,
		"requests":    float64(ab.Complete),
		"failed":      float64(ab.Failed + ab.Non2xx),
		"p50_ms":      ab.Percentiles[50],
		"p99_ms":      ab.Percentiles[99],
		"seconds":     ab.Seconds,
		"syn_retrans": float64(after.TcpExt["TCPSynRetrans"] - before.TcpExt["TCPSynRetrans"]),
		"opens":       float64(after.Tcp["ActiveOpens"] - before.Tcp["ActiveOpens"]),
		"cpu_user_s":  we.cpu.user.Seconds(),
		"cpu_sys_s":   we.cpu.sys.Seconds(),
		"retrans":     float64(we.retrans),
		"link_drops":  float64(we.drops),
	}
	return Sample{Value: ab.RequestsSec, Metrics: m}, nil
}

// waitBounded waits for the started cmd, or kills it when ctx ends.
func waitBounded(ctx context.Context, cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
}
