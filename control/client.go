package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"syscall"
	"time"

	"tunstack/stack"
)

// ErrNoServer means nothing answers on the socket path: no serve runs the
// device (or one crashed and left its socket file).
var ErrNoServer = errors.New("no tunstack serve answers")

// Client is a connection to a control socket.
type Client struct {
	path    string
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

// Dial connects to the control socket at path. When no server is there it
// returns an error that wraps ErrNoServer.
func Dial(path string) (*Client, error) {
	c, err := net.DialTimeout("unix", path, RequestTimeout)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("%w on %s", ErrNoServer, path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("cannot use the control socket %s: %w (it is root's: run with sudo)", path, err)
	case err != nil:
		return nil, fmt.Errorf("cannot reach the control socket %s: %w", path, err)
	}
	return &Client{path: path, conn: c, r: bufio.NewReader(c), timeout: RequestTimeout}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Do sends one request and reads its response. A response with Error set
// is returned as an error.
func (c *Client) Do(req Request) (Response, error) {
	req.Version = Version
	b, err := json.Marshal(req)
	if err != nil {
		return Response{}, err
	}
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return Response{}, fmt.Errorf("control socket %s: %w", c.path, err)
	}
	// The response's size is the stack's to choose (one socket per line
	// of ss); only the deadline bounds it.
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return Response{}, fmt.Errorf("control socket %s: no response: %w", c.path, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return Response{}, fmt.Errorf("control socket %s: not a response: %w", c.path, err)
	}
	if resp.Error != "" {
		return resp, fmt.Errorf("the serve on %s answered: %s", c.path, resp.Error)
	}
	if resp.Version != Version {
		return resp, fmt.Errorf("the serve on %s speaks protocol version %d, this tunstack %d: use the tunstack binary that serve runs", c.path, resp.Version, Version)
	}
	return resp, nil
}

// Sockets asks for the stack's sockets and returns the stack's name and
// them.
func (c *Client) Sockets() (string, []stack.SocketInfo, error) {
	resp, err := c.Do(Request{Op: OpSockets})
	if err != nil {
		return "", nil, err
	}
	socks := make([]stack.SocketInfo, len(resp.Sockets))
	for i, s := range resp.Sockets {
		if socks[i], err = s.ToStack(); err != nil {
			return "", nil, err
		}
	}
	return resp.Stack, socks, nil
}
