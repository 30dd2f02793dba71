package stack

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

const bulkBytes = 64 << 20

// startHTTP serves GET /bytes/N (N bytes of the pattern) and POST /upload
// (answers the hex SHA-256 of the body) on p.b:80, and returns a client
// that dials through p.a.
func startHTTP(t *testing.T, p *pair) *http.Client {
	t.Helper()
	ln, err := p.b.Listen(":80", 128)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.Copy(w, newPatternReader(n))
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	srv := &http.Server{Handler: mux}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tr := &http.Transport{DialContext: p.a.Dial, DisableCompression: true}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return &http.Client{Transport: tr, Timeout: 10 * time.Minute}
}

// testHTTPBulk moves size bytes each way over HTTP (a GET of a body, then
// a POST of one) and checks their SHA-256.
func testHTTPBulk(t *testing.T, p *pair, bulkBytes int) {
	client := startHTTP(t, p)
	want := patternSHA256(int64(bulkBytes))
	base := "http://" + addrB.String()

	start := time.Now()
	resp, err := client.Get(base + "/bytes/" + strconv.Itoa(bulkBytes))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET body after %d bytes: %v", n, err)
	}
	if n != int64(bulkBytes) || sum(h) != want {
		t.Fatalf("GET: got %d bytes, sha256 %x; want %d, %x", n, sum(h), bulkBytes, want)
	}
	t.Logf("GET %d KiB in %v", bulkBytes>>10, time.Since(start))

	start = time.Now()
	resp, err = client.Post(base+"/upload", "application/octet-stream", newPatternReader(int64(bulkBytes)))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if wantBody := fmt.Sprintf("%d %s", bulkBytes, hex.EncodeToString(want[:])); string(body) != wantBody {
		t.Fatalf("POST: server saw %q, want %q", body, wantBody)
	}
	t.Logf("POST %d KiB in %v", bulkBytes>>10, time.Since(start))
}

func TestHTTPBulk(t *testing.T) {
	testHTTPBulk(t, newPair(t, 0, 1), bulkBytes)
}

// TestHTTPBulkLoss5Percent is the HTTP bulk test (64 MiB each way,
// SHA-256 checked) with 5% of the packets lost in each direction.
func TestHTTPBulkLoss5Percent(t *testing.T) {
	testHTTPLoss(t, bulkBytes)
}

func testHTTPLoss(t *testing.T, size int) {
	p := newPair(t, 0.05, 42)
	testHTTPBulk(t, p, size)
	t.Logf("a: %+v", p.a.Stats())
	t.Logf("b: %+v", p.b.Stats())
}
