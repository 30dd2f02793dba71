package main

// Integration tests of tunstack serve with real kernel peers.
//
// Each test makes its own network namespace with lab/netns, runs serve in it
// (in process, through runServe with --netns, so the race detector watches
// the stack too), talks to it from inside the namespace with the real curl,
// ping and Go's net package, and deletes the namespace at the end, on
// failure too. They need root and skip without it.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"tunstack/gvisorstack"
	"tunstack/internal/testtools"

	"tunstack/demo"
	"tunstack/lab/netns"
)

const mib = 1 << 20

// served is one serve running in process, in a namespace of its own.
type served struct {
	ns   *netns.NS
	cfg  serveConfig
	sess *serveSession
	out  *syncBuffer // what serve printed

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan error
	stopErr  error
}

// newTestNS creates a namespace that is deleted when the test ends.
func newTestNS(t *testing.T) *netns.NS {
	t.Helper()
	netns.RequireRoot(t)
	ns, err := netns.New("servetest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("deleting the test namespace: %v", err)
		}
	})
	return ns
}

// startServe runs serve with args in a new namespace and returns once its
// services accept connections. It stops when the test ends, before the
// namespace is deleted.
func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	ns := newTestNS(t)
	return startServeIn(t, ns, args...)
}

func startServeIn(t *testing.T, ns *netns.NS, args ...string) *served {
	t.Helper()
	cfg, err := parseServeFlags(append([]string{"--netns", ns.Name()}, args...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{ns: ns, cfg: cfg, out: new(syncBuffer), cancel: cancel, done: make(chan error, 1)}
	readyc := make(chan *serveSession, 1)
	go func() {
		s.done <- runServe(ctx, cfg, s.out, func(sess *serveSession) { readyc <- sess })
	}()
	select {
	case s.sess = <-readyc:
	case err := <-s.done:
		cancel()
		t.Fatalf("serve %q did not start: %v\noutput:\n%s", args, err, s.out)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("serve ended with %v\noutput:\n%s", err, s.out)
		}
	})
	return s
}

// stop ends serve and waits until it has removed what it configured.
func (s *served) stop() error {
	s.stopOnce.Do(func() {
		s.cancel()
		s.stopErr = <-s.done
	})
	return s.stopErr
}

func (s *served) url(path string) string {
	return "http://" + netip.AddrPortFrom(s.cfg.StackAddr, s.cfg.HTTPPort).String() + path
}

// curlArgs are given to every curl: quiet but with errors, failing on HTTP
// errors, never through a proxy from the environment, bounded in time.
var curlArgs = []string{"-sS", "--fail", "--noproxy", "*", "--max-time", "120"}

// curl runs the real curl inside the namespace and returns its output.
func (s *served) curl(t *testing.T, args ...string) []byte {
	t.Helper()
	testtools.Need(t, "curl")
	cmd := s.ns.Command("curl", append(slices.Clone(curlArgs), args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %q: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

// dial connects from inside the namespace with Go's net package: the socket
// is created on a thread in the namespace and stays there.
func (s *served) dial(t *testing.T, port uint16) *net.TCPConn {
	t.Helper()
	addr := netip.AddrPortFrom(s.cfg.StackAddr, port).String()
	var c net.Conn
	err := s.ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// stacks are the stacks the cheap checks run on.
var stacks = []string{"tunstack", "gvisor"}

func TestServeCurlIndexNamesTheStack(t *testing.T) {
	netns.RequireRoot(t)
	for _, stack := range stacks {
		t.Run(stack, func(t *testing.T) {
			s := startServe(t, "--stack", stack)
			out := s.curl(t, "-w", "\n%{http_code}", s.url("/"))
			body, code, _ := bytesCutLast(out, '\n')
			if string(code) != "200" {
				t.Fatalf("status %s, want 200; body:\n%s", code, body)
			}
			if want := "served by " + stack + "."; !bytes.Contains(body, []byte(want)) {
				t.Fatalf("body does not say %q:\n%s", want, body)
			}
			if want := "You are " + s.cfg.HostAddr.String() + ":"; !bytes.Contains(body, []byte(want)) {
				t.Fatalf("body does not say %q:\n%s", want, body)
			}
		})
	}
}

func bytesCutLast(b []byte, sep byte) (before, after []byte, found bool) {
	if i := bytes.LastIndexByte(b, sep); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// writeRandomFile writes size bytes from a PRNG seeded with seed and
// returns the file's SHA-256.
func writeRandomFile(t *testing.T, path string, size int64, seed byte) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	var key [32]byte
	key[0] = seed
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.NewChaCha8(key), size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// countingHash hashes what is written to it and counts it.
type countingHash struct {
	n int64
	h hash.Hash
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// curlUpload sends the file at path to url (serve's /upload) with the
// real curl, after any args given, and fails t unless the server answers
// that it read size bytes whose SHA-256 is sum; it returns curl's run time.
// -T streams the file (--data-binary @file would read it all into memory
// first); -X POST makes it the POST /upload takes, and an empty Expect
// header skips the 100-continue round trip.
func (s *served) curlUpload(t *testing.T, path, url string, size int64, sum string, args ...string) time.Duration {
	t.Helper()
	start := time.Now()
	out := s.curl(t, append(args, "-T", path, "-X", "POST", "-H", "Expect:", url)...)
	took := time.Since(start)
	var res demo.UploadResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("answer %q: %v", out, err)
	}
	if res.Bytes != size || res.SHA256 != sum {
		t.Fatalf("server read %d bytes with sha256 %s, want %d bytes with %s", res.Bytes, res.SHA256, size, sum)
	}
	return took
}

// curlDownload fetches path with the real curl from inside the namespace,
// hashing the body as it arrives (never holding it), and returns its
// SHA-256 in hex, its length and curl's run time; err carries curl's
// stderr.
func (s *served) curlDownload(path string) (sum string, n int64, took time.Duration, err error) {
	return s.curlDownloadURL(s.url(path))
}

// curlDownloadURL is curlDownload of a whole URL.
func (s *served) curlDownloadURL(url string) (sum string, n int64, took time.Duration, err error) {
	got := &countingHash{h: sha256.New()}
	cmd := s.ns.Command("curl", append(slices.Clone(curlArgs), url)...)
	cmd.Stdout = got
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", got.n, time.Since(start), fmt.Errorf("curl %s: %v\n%s", url, err, stderr.Bytes())
	}
	return hex.EncodeToString(got.h.Sum(nil)), got.n, time.Since(start), nil
}

func TestServeCurlDownloads100MiBFileIntact(t *testing.T) {
	netns.RequireRoot(t)
	dir := t.TempDir()
	const size = 100 * mib
	want := writeRandomFile(t, filepath.Join(dir, "big.bin"), size, 1)
	s := startServe(t, "--files", dir)

	testtools.Need(t, "curl")
	sum, n, took, err := s.curlDownload("/files/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("100 MiB download in %v", took.Round(time.Millisecond))
	if n != size {
		t.Fatalf("downloaded %d bytes, want %d", n, size)
	}
	if sum != want {
		t.Fatalf("sha256 of the download %s, want %s", sum, want)
	}
}

func TestServeCurlUploads100MiBAndTheSHA256Matches(t *testing.T) {
	netns.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "up.bin")
	const size = 100 * mib
	want := writeRandomFile(t, path, size, 2)
	s := startServe(t)

	took := s.curlUpload(t, path, s.url("/upload"), size, want)
	t.Logf("100 MiB upload in %v", took.Round(time.Millisecond))
}

func TestServeCurlKeepsOneConnectionForSeveralRequests(t *testing.T) {
	s := startServe(t)
	urls := []string{s.url("/"), s.url("/bytes/1000"), s.url("/bytes/1000000"), s.url("/")}
	args := []string{"-w", "%{http_code} %{num_connects}\n"}
	for _, u := range urls {
		args = append(args, "-o", "/dev/null", u)
	}
	out := s.curl(t, args...)
	want := "200 1\n200 0\n200 0\n200 0\n"
	if string(out) != want {
		t.Fatalf("status and new connections per request:\n%s\nwant:\n%s", out, want)
	}
}

func TestServeCurlStreamDeliversNLines(t *testing.T) {
	s := startServe(t)
	start := time.Now()
	out := s.curl(t, "-N", s.url("/stream?n=3"))
	elapsed := time.Since(start)
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), out)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("line %d +", i+1); !strings.HasPrefix(l, want) {
			t.Errorf("line %d is %q, want it to start with %q", i+1, l, want)
		}
	}
	// The server waits an interval between lines, so the whole answer
	// cannot take less than two of them.
	if min := 2 * demo.StreamInterval; elapsed < min {
		t.Errorf("3 lines took %v, less than the %v the server waits between them", elapsed, min)
	}
}

func TestServeGoClientEchoRoundTrips10MiB(t *testing.T) {
	netns.RequireRoot(t)
	for _, stack := range stacks {
		t.Run(stack, func(t *testing.T) {
			s := startServe(t, "--stack", stack)
			c := s.dial(t, s.cfg.EchoPort)
			c.SetDeadline(time.Now().Add(2 * time.Minute))

			data := make([]byte, 10*mib)
			rand.NewChaCha8([32]byte{3}).Read(data)
			// Write and read at once: echo sends back as it receives, and
			// neither side's buffers hold 10 MiB.
			got, werrv, rerr := sendAndReadBack(c, data)
			if werrv != nil || rerr != nil {
				// What the stack saw, for the one who reads the failure.
				if st, ok := s.sess.network.(interface{ Stats() gvisorstack.Stats }); ok {
					t.Logf("gVisor's counters: %+v", st.Stats())
				}
				if cs, ok := s.sess.network.(connStats); ok {
					t.Logf("tunstack's counters: %+v", cs.ConnTotals())
				}
				// The kernel client's view: bytes unacknowledged and
				// retransmitted, windows, timers. With gVisor, a hang in
				// which the kernel has acknowledged what gVisor keeps
				// retransmitting, while gVisor advertises a zero window,
				// is gVisor's zero-window ACK deadlock (docs/gvisor.md).
				out, err := s.ns.Command("ss", "-tni").CombinedOutput()
				t.Logf("the kernel's TCP sockets in the namespace (ss -tni, err %v):\n%s", err, out)
			}
			if werrv != nil {
				t.Fatalf("write: %v (read %d bytes meanwhile)", werrv, len(got))
			}
			if rerr != nil {
				t.Fatalf("read after %d bytes: %v", len(got), rerr)
			}
			if !bytes.Equal(got, data) {
				i := 0
				for i < len(got) && i < len(data) && got[i] == data[i] {
					i++
				}
				t.Fatalf("echo returned %d bytes, want %d; first difference at offset %d", len(got), len(data), i)
			}
		})
	}
}

func TestServeGoClientDiscardTakes100MiB(t *testing.T) {
	s := startServe(t)
	c := s.dial(t, s.cfg.DiscardPort)
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	buf := make([]byte, mib)
	rand.NewChaCha8([32]byte{4}).Read(buf)
	var sent int64
	for sent < 100*mib {
		n, err := c.Write(buf)
		sent += int64(n)
		if err != nil {
			t.Fatalf("write after %d bytes: %v", sent, err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// discard closes only once it has read up to our FIN, so EOF here means
	// it took every byte.
	n, err := io.Copy(io.Discard, c)
	if err != nil || n != 0 {
		t.Fatalf("after sending %d bytes: read %d bytes and %v, want EOF and nothing", sent, n, err)
	}
}

func TestServePingGetsReplies(t *testing.T) {
	testtools.Need(t, "ping")
	s := startServe(t)
	out, err := s.ns.Command("ping", "-n", "-c", "3", "-i", "0.2", "-W", "5", s.cfg.StackAddr.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(\d+) received`).FindSubmatch(out)
	if m == nil || string(m[1]) != "3" {
		t.Fatalf("want 3 replies:\n%s", out)
	}
}

// pcapPacket is one TCP segment as tshark decodes it.
type pcapPacket struct {
	frame              int
	src                string
	syn, ack, fin, rst bool
	len                int
	seq, ackNo         uint32 // absolute
	checksumStatus     string // 1 is good once tcp.check_checksum is on
}

// tsharkTCP decodes the TCP segments over IPv4 in file, verifying their
// checksums.
func tsharkTCP(file string) ([]pcapPacket, error) { return tsharkTCPOf(file, "ip") }

// tsharkTCPOf decodes the TCP segments over family ("ip" or "ipv6", as
// tshark names them) in file, verifying their checksums.
func tsharkTCPOf(file, family string) ([]pcapPacket, error) {
	out, err := exec.Command("tshark", "-r", file, "-o", "tcp.check_checksum:TRUE",
		"-o", "tcp.relative_sequence_numbers:FALSE", "-Y", family+" && tcp",
		"-T", "fields", "-E", "separator=,",
		"-e", "frame.number", "-e", family+".src",
		"-e", "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "tcp.flags.fin", "-e", "tcp.flags.reset",
		"-e", "tcp.len", "-e", "tcp.seq", "-e", "tcp.ack", "-e", "tcp.checksum.status").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return nil, fmt.Errorf("tshark: %v: %s", err, bytes.TrimSpace(stderr))
	}
	flag := func(s string) bool { return s == "1" || strings.EqualFold(s, "true") }
	var pkts []pcapPacket
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 10 {
			return nil, fmt.Errorf("tshark line %q: want 10 fields", line)
		}
		p := pcapPacket{src: f[1], syn: flag(f[2]), ack: flag(f[3]), fin: flag(f[4]), rst: flag(f[5]), checksumStatus: f[9]}
		p.frame, _ = strconv.Atoi(f[0])
		p.len, _ = strconv.Atoi(f[6])
		seq, _ := strconv.ParseUint(f[7], 10, 32)
		ack, _ := strconv.ParseUint(f[8], 10, 32)
		p.seq, p.ackNo = uint32(seq), uint32(ack)
		pkts = append(pkts, p)
	}
	return pkts, nil
}

// checkOneConnection says what the capture of one connection from client
// to server lacks: the three-way handshake, data both ways, and the FIN
// exchange with both FINs acknowledged.
//
// Only the client's SYN must come first. The tap records a packet we send
// after the TUN has taken it, and the kernel may answer it at once, so the
// answer can be recorded before it (an ACK before the FIN it acknowledges);
// the rest is matched by sequence numbers rather than by order.
func checkOneConnection(pkts []pcapPacket, client, server string) []string {
	var missing []string
	from := func(who string, match func(p pcapPacket) bool) bool {
		return slices.ContainsFunc(pkts, func(p pcapPacket) bool { return p.src == who && match(p) })
	}
	if len(pkts) == 0 || pkts[0].src != client || !pkts[0].syn || pkts[0].ack {
		missing = append(missing, "the client's SYN as the first segment")
	} else {
		clientISN := pkts[0].seq
		var serverISN uint32
		synAck := from(server, func(p pcapPacket) bool {
			serverISN = p.seq
			return p.syn && p.ack && p.ackNo == clientISN+1
		})
		if !synAck {
			missing = append(missing, "the server's SYN-ACK")
		} else if !from(client, func(p pcapPacket) bool {
			return !p.syn && p.ack && p.seq == clientISN+1 && p.ackNo == serverISN+1
		}) {
			missing = append(missing, "the client's ACK of the SYN-ACK")
		}
	}
	for _, p := range pkts {
		if p.rst {
			missing = append(missing, fmt.Sprintf("no reset (frame %d is RST)", p.frame))
		}
	}
	for _, pair := range [][2]string{{client, server}, {server, client}} {
		who, peer := pair[0], pair[1]
		if !from(who, func(p pcapPacket) bool { return p.len > 0 }) {
			missing = append(missing, "data from "+who)
		}
		i := slices.IndexFunc(pkts, func(p pcapPacket) bool { return p.src == who && p.fin })
		if i < 0 {
			missing = append(missing, "a FIN from "+who)
			continue
		}
		fin := pkts[i]
		if !from(peer, func(p pcapPacket) bool { return p.ack && p.ackNo == fin.seq+uint32(fin.len)+1 }) {
			missing = append(missing, "the ACK of "+who+"'s FIN")
		}
	}
	return missing
}

// badTCPChecksums counts the segments tshark finds a bad checksum in.
func badTCPChecksums(t *testing.T, file string) int {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-o", "tcp.check_checksum:TRUE",
		"-Y", "tcp.checksum.status == 0 || tcp.checksum_bad.expert", "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	return len(strings.Fields(string(out)))
}

func TestServePcapShowsHandshakeDataFinAndGoodChecksums(t *testing.T) {
	testtools.Need(t, "tshark", "curl")
	netns.RequireRoot(t)
	file := filepath.Join(t.TempDir(), "serve.pcap")
	s := startServe(t, "--pcap", file)
	s.curl(t, "-o", "/dev/null", s.url("/bytes/100000"))
	client, server := s.cfg.HostAddr.String(), s.cfg.StackAddr.String()

	// curl is gone once its FIN is sent; the rest of the exchange (our FIN
	// and the kernel's ACK of it) happens after, with nothing to wait on.
	// The tap flushes every batch, so read the file until it is all there.
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		pkts, err := tsharkTCP(file)
		if err == nil {
			if missing = checkOneConnection(pkts, client, server); len(missing) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	pkts, err := tsharkTCP(file)
	if err != nil {
		t.Fatal(err)
	}
	if missing = checkOneConnection(pkts, client, server); len(missing) > 0 {
		t.Errorf("the capture lacks %s", strings.Join(missing, "; "))
	}
	for _, p := range pkts {
		if p.checksumStatus != "1" {
			t.Errorf("frame %d: tcp.checksum.status %q, want 1 (good)", p.frame, p.checksumStatus)
		}
	}
	if n := badTCPChecksums(t, file); n != 0 {
		t.Errorf("tshark finds %d segments with a bad TCP checksum", n)
	}
	if t.Failed() {
		dump, _ := exec.Command("tshark", "-r", file, "-o", "tcp.check_checksum:TRUE").CombinedOutput()
		t.Logf("capture:\n%s", dump)
		return
	}

	// The check must be able to fail: flip the last byte of the SYN (its
	// last TCP option) in a copy, and tshark has to notice.
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := flipLastByteOfFrame(raw, pkts[0].frame); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "broken.pcap")
	if err := os.WriteFile(broken, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if n := badTCPChecksums(t, broken); n != 1 {
		t.Errorf("with one corrupted segment tshark finds %d bad checksums, want 1: the check does not check", n)
	}
}

// flipLastByteOfFrame changes the last captured byte of the frame-th record
// (counting from 1) of a pcap file in place.
func flipLastByteOfFrame(raw []byte, frame int) error {
	const fileHeader, recordHeader = 24, 16
	if len(raw) < fileHeader {
		return errors.New("pcap: short file header")
	}
	var order binary.ByteOrder = binary.LittleEndian
	if magic := binary.BigEndian.Uint32(raw); magic == 0xa1b2c3d4 || magic == 0xa1b23c4d {
		order = binary.BigEndian
	}
	off := fileHeader
	for i := 1; off+recordHeader <= len(raw); i++ {
		n := int(order.Uint32(raw[off+8:]))
		end := off + recordHeader + n
		if n == 0 || end > len(raw) {
			break
		}
		if i == frame {
			raw[end-1] ^= 0x55
			return nil
		}
		off = end
	}
	return fmt.Errorf("pcap: no frame %d", frame)
}

// linkNames lists the network devices in ns.
func linkNames(t *testing.T, ns *netns.NS) []string {
	t.Helper()
	out, err := ns.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link show: %v", err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// "7: name@peer: <FLAGS> ..."
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		names = append(names, f[0]+name)
	}
	slices.Sort(names)
	return names
}

// runBinary runs the tunstack binary and returns its exit status, standard
// output and standard error. start starts the command; it is cmd.Start or
// one that starts it somewhere else. If the binary unexpectedly keeps
// running it gets SIGTERM, so that it removes what it made.
func runBinary(t *testing.T, cmd *exec.Cmd, start func() error) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := start(); err != nil {
		t.Fatalf("start %s: %v", cmd, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-time.After(30 * time.Second):
		cmd.Process.Signal(syscall.SIGTERM)
		err = <-waited
		t.Errorf("%s was still running after 30s; stopped it", cmd)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%s: %v", cmd, err)
	}
	return code, out.String(), errOut.String()
}

// checkOneLineFailure checks that a failed command said one sentence on
// standard error that contains one of the words, and nothing on standard
// output.
func checkOneLineFailure(t *testing.T, code int, stdout, stderr string, words ...string) {
	t.Helper()
	if code == 0 {
		t.Errorf("exit status 0, want non-zero")
	}
	msg := strings.TrimSuffix(stderr, "\n")
	if msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("stderr is not one line:\n%s", stderr)
	}
	if !slices.ContainsFunc(words, func(w string) bool { return strings.Contains(msg, w) }) {
		t.Errorf("stderr %q mentions none of %q", msg, words)
	}
	if stdout != "" {
		t.Errorf("stdout should be empty on failure, is:\n%s", stdout)
	}
}

func TestServeWithoutRootSaysUseSudoAndLeavesNothing(t *testing.T) {
	// Root is needed to run the binary as nobody and to make the namespace
	// it runs in, so that even a wrongly successful start touches nothing
	// outside it.
	ns := newTestNS(t)
	bin := tunstackBinary(t)
	const nobody = 65534
	asNobody := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		return cmd
	}
	// The child is forked from a thread inside ns, so it starts there.
	startInNS := func(cmd *exec.Cmd) func() error {
		return func() error { return ns.Do(cmd.Start) }
	}

	t.Run("device", func(t *testing.T) {
		before := linkNames(t, ns)
		const dev = "tsnoroot0"
		cmd := asNobody("serve", "--dev", dev)
		code, stdout, stderr := runBinary(t, cmd, startInNS(cmd))
		checkOneLineFailure(t, code, stdout, stderr, "sudo", "root")
		if after := linkNames(t, ns); !slices.Equal(after, before) {
			t.Errorf("devices in the namespace were %q and are %q", before, after)
		}
		if _, err := net.InterfaceByName(dev); err == nil {
			t.Errorf("device %s exists in the machine's namespace", dev)
		}
		t.Logf("%s", strings.TrimSpace(stderr))
	})

	t.Run("netns", func(t *testing.T) {
		name := fmt.Sprintf("servetest-noroot-%d", os.Getpid())
		nsFile := "/run/netns/" + name
		if _, err := os.Stat(nsFile); err == nil {
			t.Fatalf("%s exists before the test", nsFile)
		}
		t.Cleanup(func() {
			if _, err := os.Stat(nsFile); err == nil {
				exec.Command("ip", "netns", "delete", name).Run()
			}
		})
		cmd := asNobody("serve", "--netns", name)
		code, stdout, stderr := runBinary(t, cmd, startInNS(cmd))
		checkOneLineFailure(t, code, stdout, stderr, "sudo", "root")
		if _, err := os.Stat(nsFile); err == nil {
			t.Errorf("serve left namespace %s behind", name)
		}
		t.Logf("%s", strings.TrimSpace(stderr))
	})
}

func TestServeDeviceBusyFailsAndLeavesTheDeviceAlone(t *testing.T) {
	netns.RequireRoot(t)
	const dev = "tsbusy0"
	tests := []struct {
		name string
		// take makes a device called dev in ns, and returns a check that
		// what holds it still works, or nil.
		take func(t *testing.T, ns *netns.NS) (stillWorks func())
	}{
		{"tun", func(t *testing.T, ns *netns.NS) func() {
			ipIn(t, ns, "tuntap", "add", "dev", dev, "mode", "tun")
			return nil
		}},
		{"veth", func(t *testing.T, ns *netns.NS) func() {
			ipIn(t, ns, "link", "add", dev, "type", "veth", "peer", "name", dev+"p")
			return nil
		}},
		{"serving", func(t *testing.T, ns *netns.NS) func() {
			s := startServeIn(t, ns, "--dev", dev)
			return func() { s.curl(t, "-o", "/dev/null", s.url("/")) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newTestNS(t)
			bin := tunstackBinary(t)
			stillWorks := tt.take(t, ns)
			before := linkNames(t, ns)
			cmd := exec.Command(bin, "serve", "--netns", ns.Name(), "--dev", dev)
			code, stdout, stderr := runBinary(t, cmd, cmd.Start)
			checkOneLineFailure(t, code, stdout, stderr, dev+" is busy")
			if !strings.Contains(stderr, "--dev") {
				t.Errorf("stderr %q does not say to pick another --dev", stderr)
			}
			if after := linkNames(t, ns); !slices.Equal(after, before) {
				t.Errorf("devices in the namespace were %q and are %q", before, after)
			}
			if _, err := os.Stat("/run/netns/" + ns.Name()); err != nil {
				t.Errorf("serve removed the namespace it did not create: %v", err)
			}
			if stillWorks != nil {
				stillWorks()
			}
			t.Logf("%s", strings.TrimSpace(stderr))
		})
	}
}

// ipIn runs ip with args inside ns.
func ipIn(t *testing.T, ns *netns.NS, args ...string) {
	t.Helper()
	if out, err := ns.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %q: %v\n%s", args, err, out)
	}
}

// syncBuffer is a bytes.Buffer that serve's goroutine and the test can
// share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
