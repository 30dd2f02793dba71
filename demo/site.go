package demo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// SiteConfig configures the demo site.
type SiteConfig struct {
	// StackName is the name shown on the front page: tunstack, gvisor, linux.
	StackName string
	// FilesDir is the directory served under /files/; empty means /files/
	// answers 404 with a hint to start with --files DIR.
	FilesDir string
}

const (
	// MaxBytes is the largest N that /bytes/N accepts: 1 TiB.
	MaxBytes = 1 << 40
	// StreamInterval is the time between two /stream lines.
	StreamInterval = 100 * time.Millisecond
	// DefaultPollTimeout is /poll's timeout when the query gives none.
	DefaultPollTimeout = 30 * time.Second
	// MaxPollTimeout is the longest timeout /poll accepts.
	MaxPollTimeout = 10 * time.Minute
)

// NewSiteHandler returns the demo site's handler. Unknown paths answer 404
// and known paths with the wrong method 405 (net/http's ServeMux does both).
func NewSiteHandler(cfg SiteConfig) http.Handler {
	s := &site{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /bytes/{n}", s.bytes)
	mux.HandleFunc("POST /upload", s.upload)
	mux.HandleFunc("GET /files/", s.files)
	mux.HandleFunc("GET /stream", s.stream)
	mux.HandleFunc("GET /poll", s.poll)
	return mux
}

type site struct {
	cfg SiteConfig
}

// fail answers code with one sentence that says what is wrong and what to do.
func fail(w http.ResponseWriter, code int, sentence string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, sentence)
}

func (s *site) index(w http.ResponseWriter, r *http.Request) {
	name := s.cfg.StackName
	if name == "" {
		name = "an unnamed stack"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "tunstack demo site, served by %s.\n", name)
	fmt.Fprintf(w, "You are %s.\n\n", r.RemoteAddr)
	fmt.Fprint(w, `GET  /bytes/N            N bytes; byte i is i mod 251
POST /upload             answers {"bytes":N,"sha256":"hex"} for the body
GET  /files/             static files (serve --files DIR)
GET  /stream?n=N         one line every 100 ms; without n, until you leave
GET  /poll?timeout=2s    long poll: answers when the timeout has passed
`)
}

func (s *site) bytes(w http.ResponseWriter, r *http.Request) {
	n, ok := parseByteCount(r.PathValue("n"))
	if !ok {
		fail(w, http.StatusBadRequest, fmt.Sprintf(
			"N in /bytes/N must be a whole number from 0 to %d, as in /bytes/1048576.", int64(MaxBytes)))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	if r.Method == http.MethodHead {
		return
	}
	// A write error means the client left; there is no one to tell.
	_, _ = WritePattern(w, n)
}

// parseByteCount accepts only plain decimal digits (no sign, no spaces) up
// to MaxBytes.
func parseByteCount(s string) (int64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > MaxBytes {
		return 0, false
	}
	return n, true
}

// UploadResult is the answer to POST /upload.
type UploadResult struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

func (s *site) upload(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		fail(w, http.StatusBadRequest, fmt.Sprintf(
			"Reading the upload failed after %d bytes (%v); send the whole body again.", n, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(UploadResult{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))})
}

func (s *site) files(w http.ResponseWriter, r *http.Request) {
	if s.cfg.FilesDir == "" {
		fail(w, http.StatusNotFound,
			"No directory is served here: start tunstack serve with --files DIR to serve one under /files/.")
		return
	}
	// os.Root refuses any path, ".." or symlink, that leads out of FilesDir.
	root, err := os.OpenRoot(s.cfg.FilesDir)
	if err != nil {
		fail(w, http.StatusInternalServerError, fmt.Sprintf(
			"The files directory cannot be opened (%v); check that it still exists and is readable.", err))
		return
	}
	defer root.Close()
	http.StripPrefix("/files", http.FileServerFS(root.FS())).ServeHTTP(w, r)
}

func (s *site) stream(w http.ResponseWriter, r *http.Request) {
	lines := 0 // 0: until the client leaves
	if q := r.URL.Query().Get("n"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 {
			fail(w, http.StatusBadRequest,
				"n must be a whole number of lines of at least 1, as in /stream?n=10; leave it out to stream until you disconnect.")
			return
		}
		lines = n
	}
	rc := http.NewResponseController(w)
	// The stream outlives any write timeout the server may set; a server
	// whose connections cannot change deadlines simply keeps its own.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")

	start := time.Now()
	ticker := time.NewTicker(StreamInterval)
	defer ticker.Stop()
	for i := 1; lines == 0 || i <= lines; i++ {
		if i > 1 {
			select {
			case <-r.Context().Done():
				return
			case <-ticker.C:
			}
		}
		if _, err := fmt.Fprintf(w, "line %d +%.3fs\n", i, time.Since(start).Seconds()); err != nil {
			return
		}
		// Each line goes out as its own chunk, now.
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func (s *site) poll(w http.ResponseWriter, r *http.Request) {
	timeout := DefaultPollTimeout
	if q := r.URL.Query().Get("timeout"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d < 0 || d > MaxPollTimeout {
			fail(w, http.StatusBadRequest, fmt.Sprintf(
				"timeout must be a duration from 0s to %v, as in /poll?timeout=2s.", MaxPollTimeout))
			return
		}
		timeout = d
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		return
	case <-t.C:
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "poll answered after its timeout of %v.\n", timeout)
}
