package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"tunstack/stack"
)

// Dir is where the control sockets live.
const Dir = "/run/tunstack"

// SocketPath is the control socket of the serve that runs device dev: in
// the machine's namespace /run/tunstack/DEV.sock, in the network namespace
// netns /run/tunstack/netns/NETNS/DEV.sock (device names repeat across
// namespaces; the socket file is reachable from any of them).
func SocketPath(dev, netns string) string {
	if netns != "" {
		return filepath.Join(Dir, "netns", netns, dev+".sock")
	}
	return filepath.Join(Dir, dev+".sock")
}

// The server's limits.
const (
	// RequestTimeout bounds the wait for each request line and the write
	// of each response: a client that stalls is disconnected after it.
	RequestTimeout = 5 * time.Second
	// MaxRequest is the longest request line accepted, newline included.
	MaxRequest = 4096
	// MaxClients is how many clients are served at once; one more is
	// told so and disconnected.
	MaxClients = 8
)

// ErrInUse means another live server answers on the socket path: another
// tunstack serve runs the same device (in the same namespace).
var ErrInUse = errors.New("control socket in use")

// Server answers requests on a control socket. Each client has its own
// goroutine, apart from the stack's own; a request takes one snapshot of
// the stack (stack.Inspector.Sockets, one critical section) and nothing
// else of it.
type Server struct {
	path    string
	ln      *net.UnixListener
	madeDir string // the namespace's directory, if Listen created it
	timeout time.Duration

	mu      sync.Mutex
	name    string
	insp    stack.Inspector
	clients map[net.Conn]struct{}
	closed  bool
	slots   chan struct{}
	wg      sync.WaitGroup
}

// Listen claims path for a control socket and starts accepting clients;
// they are answered once Serve names the stack. The directory is created
// with mode 0700 if missing, the socket made 0600: only its owner (root,
// who runs serve) may use it. A socket file left by a serve that ended
// without removing it (a crash) is replaced; if a server answers on it,
// Listen fails with an error that wraps ErrInUse.
func Listen(path string) (*Server, error) {
	return listen(path, RequestTimeout)
}

func listen(path string, timeout time.Duration) (*Server, error) {
	dir := filepath.Dir(path)
	// The directory goes with the socket if Listen made it, or if it is a
	// namespace's under Dir (a crashed serve's, reused): nothing else
	// belongs there.
	madeDir := ""
	if _, err := os.Stat(dir); (errors.Is(err, fs.ErrNotExist) && dir != Dir) || filepath.Dir(dir) == filepath.Join(Dir, "netns") {
		madeDir = dir
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create %s for the control socket: %w", dir, permissionHint(err))
	}
	ln, err := claim(path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot make the control socket %s owner-only: %w", path, err)
	}
	s := &Server{path: path, ln: ln, madeDir: madeDir, timeout: timeout,
		clients: make(map[net.Conn]struct{}), slots: make(chan struct{}, MaxClients)}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// claim listens on path, replacing a stale socket file.
func claim(path string) (*net.UnixListener, error) {
	addr := &net.UnixAddr{Name: path, Net: "unix"}
	ln, err := net.ListenUnix("unix", addr)
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		if err != nil {
			return nil, fmt.Errorf("cannot listen on the control socket %s: %w", path, permissionHint(err))
		}
		return ln, nil
	}
	fi, serr := os.Lstat(path)
	if serr != nil {
		return nil, fmt.Errorf("cannot listen on the control socket %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return nil, fmt.Errorf("%s exists and is not a socket: remove it, it is where serve puts its control socket", path)
	}
	c, derr := net.DialTimeout("unix", path, time.Second)
	if derr == nil {
		c.Close()
		return nil, fmt.Errorf("%w: a server answers on %s", ErrInUse, path)
	}
	if !errors.Is(derr, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("cannot tell whether a serve still uses the control socket %s: %w", path, derr)
	}
	// Nobody listens: a serve ended without removing its socket.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cannot replace the stale control socket %s: %w", path, err)
	}
	ln, err = net.ListenUnix("unix", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w: another server took %s just now", ErrInUse, path)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot listen on the control socket %s: %w", path, err)
	}
	return ln, nil
}

// permissionHint adds what to do to a permission error.
func permissionHint(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w (it needs root: run serve with sudo)", err)
	}
	return err
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Serve makes the server answer for insp, the stack named name ("tunstack",
// "gvisor"). Until it is called, requests are answered with an error.
func (s *Server) Serve(name string, insp stack.Inspector) {
	s.mu.Lock()
	s.name, s.insp = name, insp
	s.mu.Unlock()
}

// Close stops the server: no more clients, those connected are
// disconnected, the socket file is removed (and its directory, if Listen
// created it or it is a namespace's, once empty). It waits for the client
// goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.clients {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close() // removes the socket file: net.ListenUnix created it
	s.wg.Wait()
	if s.madeDir != "" {
		os.Remove(s.madeDir) // fails, harmlessly, if another socket is there
	}
	return err
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient failure (out of descriptors): back off a little
			// rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.clients[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.client(c)
	}
}

// client serves one connection: requests one line at a time, each within
// the timeout, until the client closes, stalls, sends something that is not
// a request, or the server closes.
func (s *Server) client(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
		c.Close()
	}()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		s.reply(c, errorResponse(fmt.Sprintf("this serve already answers %d clients: try again in a moment", MaxClients)))
		return
	}
	r := bufio.NewReaderSize(c, MaxRequest)
	for {
		c.SetReadDeadline(time.Now().Add(s.timeout))
		line, err := r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			s.reply(c, errorResponse(fmt.Sprintf("request longer than %d bytes: send one JSON object per line", MaxRequest)))
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.reply(c, errorResponse(fmt.Sprintf("no complete request line within %v: send one JSON object per line", s.timeout)))
			return
		case err != nil && (!errors.Is(err, io.EOF) || len(bytes.TrimSpace(line)) == 0):
			return // the client closed, or the server is closing
		}
		resp, ok := s.answer(line)
		if !s.reply(c, resp) || !ok {
			return
		}
		if err != nil { // the last request, without its newline
			return
		}
	}
}

// reply writes one response line within the timeout.
func (s *Server) reply(c net.Conn, resp Response) bool {
	c.SetWriteDeadline(time.Now().Add(s.timeout))
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(errorResponse("cannot encode the response: " + err.Error()))
	}
	_, err = c.Write(append(b, '\n'))
	return err == nil
}

// answer handles one request line; ok is false when the connection should
// end after the reply (the request was not one).
func (s *Server) answer(line []byte) (resp Response, ok bool) {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return errorResponse(fmt.Sprintf("not a request (%v): send one JSON object per line, such as {\"version\":%d,\"op\":%q}", err, Version, OpSockets)), false
	}
	if req.Version != Version {
		return errorResponse(fmt.Sprintf("protocol version %d is not spoken here: this serve speaks version %d", req.Version, Version)), false
	}
	switch req.Op {
	case OpSockets:
		s.mu.Lock()
		name, insp := s.name, s.insp
		s.mu.Unlock()
		if insp == nil {
			return errorResponse("the stack is still starting: try again in a moment"), true
		}
		socks := insp.Sockets()
		resp := Response{Version: Version, Stack: name, Sockets: make([]Socket, len(socks))}
		for i, si := range socks {
			resp.Sockets[i] = FromStack(si)
		}
		return resp, true
	default:
		return errorResponse(fmt.Sprintf("unknown operation %q: version %d has %q", req.Op, Version, OpSockets)), false
	}
}

func errorResponse(msg string) Response { return Response{Version: Version, Error: msg} }
