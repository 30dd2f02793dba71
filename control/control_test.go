package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"tunstack/stack"
	"tunstack/tcpcore"
)

// inspectorFunc makes a function a stack.Inspector.
type inspectorFunc func() []stack.SocketInfo

func (f inspectorFunc) Sockets() []stack.SocketInfo { return f() }

// sampleSockets has one socket of each kind, every field set somewhere.
func sampleSockets() []stack.SocketInfo {
	info := tcpcore.TCPInfo{State: 1, RTT: 250, RTTVar: 125, SndCwnd: 10, PacingRate: ^uint64(0), BytesAcked: 1 << 40, Options: tcpcore.TCPIOptSACK}
	return []stack.SocketInfo{
		{State: tcpcore.Listen, Local: netip.MustParseAddrPort("198.18.0.2:80"), Remote: netip.MustParseAddrPort("0.0.0.0:0"),
			RecvQ: 2, SendQ: 128, SynQueue: 3, Congestion: "cubic", TCPInfo: &tcpcore.TCPInfo{State: 10, SndCwnd: 10}},
		{State: tcpcore.Established, Local: netip.MustParseAddrPort("198.18.0.2:80"), Remote: netip.MustParseAddrPort("198.18.0.1:40000"),
			RecvQ: 17, SendQ: 70000, Congestion: "reno", TCPInfo: &info, Timer: tcpcore.TimerPersist, TimerLeft: 1234 * time.Millisecond,
			ShutRead: true},
		{State: tcpcore.TimeWait, Local: netip.MustParseAddrPort("198.18.0.2:80"), Remote: netip.MustParseAddrPort("198.18.0.1:40001"),
			Timer: tcpcore.TimerTimeWait, TimerLeft: 59 * time.Second, ShutWrite: true,
			Unknown: stack.UnknownSendQ | stack.UnknownReordering},
	}
}

func startServer(t *testing.T, timeout time.Duration, insp stack.Inspector) *Server {
	t.Helper()
	s, err := listen(filepath.Join(t.TempDir(), "ctl", "tun0.sock"), timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if insp != nil {
		s.Serve("tunstack", insp)
	}
	return s
}

// rawClient writes what it is given and reads the server's lines.
type rawClient struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, path string) *rawClient {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{c, bufio.NewReader(c)}
}

// response reads one response line.
func (c *rawClient) response(t *testing.T) Response {
	t.Helper()
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("no response line: %v (read %q)", err, line)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		t.Fatalf("response %q: %v", line, err)
	}
	return resp
}

// closed checks that the server closed the connection: end of file, or a
// reset when the server closed with part of the request unread.
func (c *rawClient) closed(t *testing.T) {
	t.Helper()
	if b, err := c.r.ReadByte(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the server kept the connection open: read %q, %v", b, err)
	}
}

func TestSocketsRoundTripEveryField(t *testing.T) {
	want := sampleSockets()
	s := startServer(t, RequestTimeout, inspectorFunc(sampleSockets))
	c, err := Dial(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 { // one connection carries several requests
		name, got, err := c.Sockets()
		if err != nil {
			t.Fatal(err)
		}
		if name != "tunstack" {
			t.Errorf("stack %q, want tunstack", name)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %+v\nwant %+v", got, want)
		}
	}
}

func TestGarbageGetsAnErrorReplyAndTheConnectionCloses(t *testing.T) {
	s := startServer(t, RequestTimeout, inspectorFunc(sampleSockets))
	for _, tt := range []struct{ send, want string }{
		{"hello\n", "not a request"},
		{`{"version":2,"op":"sockets"}` + "\n", "protocol version 2 is not spoken here: this serve speaks version 1"},
		{`{"op":"sockets"}` + "\n", "protocol version 0"},
		{`{"version":1,"op":"reboot"}` + "\n", `unknown operation "reboot"`},
		{strings.Repeat("x", MaxRequest+10), "request longer than"},
	} {
		c := dialRaw(t, s.Path())
		if _, err := io.WriteString(c, tt.send); err != nil {
			t.Fatal(err)
		}
		resp := c.response(t)
		if !strings.Contains(resp.Error, tt.want) || resp.Version != Version || resp.Sockets != nil {
			t.Errorf("sent %.40q: response %+v, want an error with %q", tt.send, resp, tt.want)
		}
		c.closed(t)
	}
}

func TestStalledClientIsDisconnectedAndOthersAreServedMeanwhile(t *testing.T) {
	s := startServer(t, 300*time.Millisecond, inspectorFunc(sampleSockets))
	stalled := dialRaw(t, s.Path())
	io.WriteString(stalled, `{"version":1,`) // half a request, then nothing

	// While the first client stalls, another is answered.
	c, err := Dial(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if _, socks, err := c.Sockets(); err != nil || len(socks) != 3 {
		t.Fatalf("second client: %d sockets, %v", len(socks), err)
	}
	c.Close()

	resp := stalled.response(t)
	if !strings.Contains(resp.Error, "no complete request line within 300ms") {
		t.Errorf("stalled client got %+v", resp)
	}
	stalled.closed(t)
}

func TestClientsBeyondTheLimitAreToldAndClosed(t *testing.T) {
	s := startServer(t, RequestTimeout, inspectorFunc(sampleSockets))
	for range MaxClients {
		c, err := Dial(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A request answered proves the client holds one of the slots.
		if _, _, err := c.Sockets(); err != nil {
			t.Fatal(err)
		}
	}
	extra := dialRaw(t, s.Path())
	if resp := extra.response(t); !strings.Contains(resp.Error, "already answers 8 clients") {
		t.Errorf("client %d got %+v", MaxClients+1, resp)
	}
	extra.closed(t)
}

func TestRequestsBeforeServeAreToldToRetry(t *testing.T) {
	s := startServer(t, RequestTimeout, nil)
	c, err := Dial(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Sockets(); err == nil || !strings.Contains(err.Error(), "still starting") {
		t.Fatalf("err = %v", err)
	}
	s.Serve("gvisor", inspectorFunc(sampleSockets))
	if name, _, err := c.Sockets(); err != nil || name != "gvisor" {
		t.Fatalf("after Serve: %q, %v", name, err)
	}
}

func TestSocketAndDirectoryAreOwnerOnlyAndRemovedOnClose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "netns", "x")
	path := filepath.Join(dir, "tun0.sock")
	s, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{path: fs.ModeSocket | 0o600, dir: fs.ModeDir | 0o700} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, dir} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind after Close (%v)", p, err)
		}
	}
	if _, err := Dial(path); !errors.Is(err, ErrNoServer) {
		t.Errorf("Dial after Close: %v, want ErrNoServer", err)
	}
}

func TestStaleSocketIsReplacedLiveOneRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tun0.sock")
	// A serve that crashed leaves its socket file with nobody listening.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Dial(path); !errors.Is(err, ErrNoServer) {
		t.Fatalf("Dial on the stale socket: %v, want ErrNoServer", err)
	}

	s, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer s.Close()
	s.Serve("tunstack", inspectorFunc(sampleSockets))
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	_, err = Listen(path)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "a server answers on "+path) {
		t.Fatalf("second Listen: %v, want ErrInUse naming the path", err)
	}
	// The refused claim did not take the socket from the live server.
	if c, err = Dial(path); err != nil {
		t.Fatalf("the first server lost its socket: %v", err)
	}
	c.Close()
}

func TestListenRefusesAFileThatIsNotASocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tun0.sock")
	if err := os.WriteFile(path, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "mine" {
		t.Error("Listen changed the file")
	}
}

func TestSocketPath(t *testing.T) {
	if got := SocketPath("tun0", ""); got != "/run/tunstack/tun0.sock" {
		t.Errorf("got %s", got)
	}
	if got := SocketPath("tun1", "lab"); got != "/run/tunstack/netns/lab/tun1.sock" {
		t.Errorf("got %s", got)
	}
}
