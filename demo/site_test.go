package demo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// handlerEvents carries request paths as their handlers start and return.
type handlerEvents struct {
	started, done chan string
}

// startSite serves the site on a kernel listener and returns its base URL
// and the events of its handlers.
func startSite(t *testing.T, cfg SiteConfig) (string, handlerEvents) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ev := handlerEvents{started: make(chan string, 100), done: make(chan string, 100)}
	h := NewSiteHandler(cfg)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev.started <- r.URL.Path
		defer func() { ev.done <- r.URL.Path }()
		h.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), ev
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// waitFor returns once events carries path, and fails the test if it has
// not within a generous bound; it never waits longer than needed.
func waitFor(t *testing.T, events <-chan string, path, what string) {
	t.Helper()
	bound := time.After(10 * time.Second)
	for {
		select {
		case p := <-events:
			if p == path {
				return
			}
		case <-bound:
			t.Fatalf("the handler for %s %s", path, what)
		}
	}
}

func TestIndexNamesStackAndClientAddress(t *testing.T) {
	base, _ := startSite(t, SiteConfig{StackName: "gvisor"})
	var local string
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { local = i.Conn.LocalAddr().String() }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", base+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	for _, want := range []string{"served by gvisor", local, "/bytes/N", "/upload", "/files/", "/stream", "/poll"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("GET / does not mention %q:\n%s", want, body)
		}
	}
}

func TestStatusCodes(t *testing.T) {
	base, _ := startSite(t, SiteConfig{StackName: "tunstack"})
	tests := []struct {
		method, path string
		code         int
		bodyHas      string
	}{
		{"GET", "/", 200, "tunstack"},
		{"HEAD", "/", 200, ""},
		{"POST", "/", 405, ""},
		{"GET", "/nope", 404, ""},
		{"GET", "/bytes/0", 200, ""},
		{"GET", "/bytes/abc", 400, "whole number"},
		{"GET", "/bytes/-1", 400, "whole number"},
		{"GET", "/bytes/+5", 400, "whole number"},
		{"GET", "/bytes/1.5", 400, "whole number"},
		{"GET", "/bytes/1099511627777", 400, "whole number"},
		{"GET", "/bytes/99999999999999999999999", 400, "whole number"},
		{"POST", "/bytes/10", 405, ""},
		{"GET", "/upload", 405, ""},
		{"GET", "/files/x", 404, "--files DIR"},
		{"GET", "/stream?n=0", 400, "n must be"},
		{"GET", "/stream?n=x", 400, "n must be"},
		{"GET", "/poll?timeout=bogus", 400, "timeout must be"},
		{"GET", "/poll?timeout=-1s", 400, "timeout must be"},
		{"GET", "/poll?timeout=11m", 400, "timeout must be"},
		{"GET", "/poll?timeout=0s", 200, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code {
				t.Fatalf("%s %s = %d, want %d (%s)", tt.method, tt.path, resp.StatusCode, tt.code, body)
			}
			if !strings.Contains(string(body), tt.bodyHas) {
				t.Errorf("%s %s body %q lacks %q", tt.method, tt.path, body, tt.bodyHas)
			}
			if tt.code == 400 && strings.Count(strings.TrimSpace(string(body)), "\n") != 0 {
				t.Errorf("a 400 answers one sentence, got %q", body)
			}
		})
	}
}

func TestBytesPatternIsIMod251WithExactLength(t *testing.T) {
	base, _ := startSite(t, SiteConfig{})
	for _, n := range []int{0, 1, 250, 251, 252, patternChunkBytes - 1, patternChunkBytes, 3*patternChunkBytes + 17, 1 << 20} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			resp, body := get(t, fmt.Sprintf("%s/bytes/%d", base, n))
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if resp.ContentLength != int64(n) {
				t.Errorf("Content-Length %d, want %d", resp.ContentLength, n)
			}
			if len(body) != n {
				t.Fatalf("got %d bytes, want %d", len(body), n)
			}
			for i, b := range body {
				if b != byte(i%251) {
					t.Fatalf("byte %d = %d, want %d", i, b, i%251)
				}
			}
		})
	}
}

func TestBytesHeadAtTheCapSendsNoBody(t *testing.T) {
	base, _ := startSite(t, SiteConfig{})
	resp, err := http.Head(fmt.Sprintf("%s/bytes/%d", base, int64(MaxBytes)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != MaxBytes {
		t.Fatalf("HEAD at the cap: status %d, length %d", resp.StatusCode, resp.ContentLength)
	}
}

func TestWritePatternKeepsPhaseAcrossChunks(t *testing.T) {
	// Several chunks and a partial period: each chunk starts where the last ended.
	var buf bytes.Buffer
	n, err := WritePattern(&buf, 2*patternChunkBytes+300)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("wrote %d (%v), buffer %d", n, err, buf.Len())
	}
	for i, b := range buf.Bytes() {
		if b != PatternByte(int64(i)) {
			t.Fatalf("byte %d = %d", i, b)
		}
	}
}

func TestUploadAnswersLengthAndSHA256(t *testing.T) {
	base, _ := startSite(t, SiteConfig{})
	body := make([]byte, 5<<20+123)
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	sum := sha256.Sum256(body)
	for _, b := range [][]byte{body, nil} {
		resp, err := http.Post(base+"/upload", "application/octet-stream", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var got UploadResult
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d, decode %v", resp.StatusCode, err)
		}
		want := UploadResult{Bytes: int64(len(b)), SHA256: hex.EncodeToString(sha256.New().Sum(nil))}
		if b != nil {
			want.SHA256 = hex.EncodeToString(sum[:])
		}
		if got != want {
			t.Errorf("upload of %d bytes: got %+v, want %+v", len(b), got, want)
		}
	}
}

func TestFilesServesOnlyInsideTheDirectory(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "public")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello from files\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "sub", "deep.txt"), []byte("deep\n"), 0o644))
	must(os.WriteFile(filepath.Join(top, "secret.txt"), []byte("SECRET\n"), 0o644))
	must(os.Symlink(filepath.Join(top, "secret.txt"), filepath.Join(dir, "escape.txt")))

	base, _ := startSite(t, SiteConfig{FilesDir: dir})
	resp, body := get(t, base+"/files/hello.txt")
	if resp.StatusCode != 200 || string(body) != "hello from files\n" {
		t.Fatalf("hello.txt: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, base+"/files/sub/deep.txt")
	if resp.StatusCode != 200 || string(body) != "deep\n" {
		t.Fatalf("sub/deep.txt: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, base+"/files/")
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("hello.txt")) {
		t.Fatalf("listing: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, base+"/files/escape.txt")
	if resp.StatusCode == 200 || bytes.Contains(body, []byte("SECRET")) {
		t.Fatalf("a symlink led out of the directory: %d %q", resp.StatusCode, body)
	}

	// Raw requests, so that no client cleans the path first.
	for _, path := range []string{"/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files/..%2fsecret.txt", "/files/sub/../../secret.txt"} {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
		raw, _ := io.ReadAll(c)
		c.Close()
		if bytes.Contains(raw, []byte("SECRET")) || bytes.HasPrefix(raw, []byte("HTTP/1.1 200")) {
			t.Errorf("GET %s reached outside the directory:\n%s", path, raw)
		}
	}
}

// TestStreamFlushesEachLineAsItsOwnChunk reads the chunked framing itself:
// each line must arrive in a chunk of its own, which is what flushing each
// line gives, whatever the timing.
func TestStreamFlushesEachLineAsItsOwnChunk(t *testing.T) {
	base, _ := startSite(t, SiteConfig{})
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /stream?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("Transfer-Encoding %v, want chunked", resp.TransferEncoding)
	}
	// http.ReadResponse hands the body back undecoded only through br, so
	// read the framing from br directly.
	var chunks []string
	for {
		sizeLine, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading chunk size: %v", err)
		}
		size, err := strconv.ParseInt(strings.TrimSpace(sizeLine), 16, 64)
		if err != nil {
			t.Fatalf("chunk size %q: %v", sizeLine, err)
		}
		data := make([]byte, size+2)
		if _, err := io.ReadFull(br, data); err != nil {
			t.Fatal(err)
		}
		if size == 0 {
			break
		}
		chunks = append(chunks, string(data[:size]))
	}
	if len(chunks) != 3 {
		t.Fatalf("got %d chunks, want 3: %q", len(chunks), chunks)
	}
	for i, ch := range chunks {
		if !strings.HasPrefix(ch, fmt.Sprintf("line %d +", i+1)) || strings.Count(ch, "\n") != 1 || !strings.HasSuffix(ch, "\n") {
			t.Errorf("chunk %d = %q, want exactly one line", i, ch)
		}
	}
}

func TestStreamWithoutNStopsWhenClientLeaves(t *testing.T) {
	base, ev := startSite(t, SiteConfig{})
	resp, err := http.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for i := 1; i <= 2; i++ {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, fmt.Sprintf("line %d +", i)) {
			t.Fatalf("line %d = %q, %v", i, line, err)
		}
	}
	resp.Body.Close()
	waitFor(t, ev.done, "/stream", "still runs after its client left")
}

func TestPollAnswersAfterItsTimeout(t *testing.T) {
	base, _ := startSite(t, SiteConfig{})
	resp, body := get(t, base+"/poll?timeout=50ms")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "after its timeout of 50ms") {
		t.Fatalf("poll: %d %q", resp.StatusCode, body)
	}
}

func TestPollStopsWhenClientLeaves(t *testing.T) {
	base, ev := startSite(t, SiteConfig{})
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "GET /poll?timeout=10m HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, ev.started, "/poll", "never started")
	c.Close()
	waitFor(t, ev.done, "/poll", "still runs after its client left")
}
