package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves /metrics over HTTP from its own goroutine, off the
// stack's path: each scrape reads the stack once, under one hold of its
// lock.
type Server struct {
	ln   net.Listener
	http *http.Server
	done chan struct{}
}

// Serve serves src's metrics at http://ADDR/metrics on ln, which the
// caller opened (in whatever network namespace it chose).
func Serve(ln net.Listener, src Source) *Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(Registry(src), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	// Go's profiles of the process (heap, goroutines, CPU), for finding
	// where memory or time goes in a long run: go tool pprof
	// http://ADDR/debug/pprof/heap.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s := &Server{
		ln:   ln,
		http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.http.Serve(ln)
	}()
	return s
}

// URL is the address scrapers use.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/metrics" }

// Close stops serving and waits for the serving goroutine.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	<-s.done
	return err
}

// CheckAddr checks a --metrics value: HOST:PORT with a numeric port, as
// in 127.0.0.1:9464.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || strings.ContainsAny(host, "/ ") {
		return fmt.Errorf("%q is not HOST:PORT; give an address such as 127.0.0.1:9464", addr)
	}
	return nil
}

// RunDir is where a running stack records, per device, the URL of its
// metrics, for `tunstack nstat --dev`.
var RunDir = "/run/tunstack"

// publishPath is the record of device dev in the network namespace the
// calling process is in: devices of one name in different namespaces are
// different devices.
func publishPath(dev string) (string, error) {
	ns, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		return "", err
	}
	ns = strings.Trim(strings.TrimPrefix(ns, "net:"), "[]")
	return filepath.Join(RunDir, "metrics-"+ns+"-"+dev+".url"), nil
}

// Publish records url as the metrics of device dev, for a process in the
// calling process's network namespace, and returns a function that
// removes the record.
func Publish(dev, url string) (remove func(), err error) {
	path, err := publishPath(dev)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(url+"\n"), 0o644); err != nil {
		return nil, err
	}
	return func() { os.Remove(path) }, nil
}

// ErrNotPublished means no running stack recorded metrics for the device.
var ErrNotPublished = errors.New("no metrics recorded for the device")

// Lookup returns the metrics URL a running stack recorded for device dev
// in the calling process's network namespace, and the file it read.
func Lookup(dev string) (url, path string, err error) {
	path, err = publishPath(dev)
	if err != nil {
		return "", "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", path, ErrNotPublished
	}
	if err != nil {
		return "", path, err
	}
	return strings.TrimSpace(string(b)), path, nil
}
