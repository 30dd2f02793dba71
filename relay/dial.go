package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"time"

	"golang.org/x/net/proxy"
)

// DialConfig says how the relay's outbound connections leave the host.
type DialConfig struct {
	// Upstream is "" or "direct" to connect to each destination
	// directly, or socks5://HOST:PORT to connect through a SOCKS5 proxy
	// (RFC 1928; socks5://USER:PASS@HOST:PORT for RFC 1929 username
	// and password), the tun2socks use.
	Upstream string
	// Interface binds every outbound socket (the proxy's too) to this
	// device (SO_BINDTODEVICE): its packets leave by it whatever the
	// routing table says, so a default route through the TUN cannot
	// loop them back into the relay.
	Interface string
	// Mark sets SO_MARK on every outbound socket, for a policy-routing
	// rule (ip rule add fwmark N lookup main) that keeps them off the
	// TUN; 0 sets none.
	Mark int
	// KeepAlive is TCP keepalive on the outbound connections, on whether
	// or not Enable is set; its zero Idle, Interval or Count are Linux's
	// defaults (7200 s idle, 75 s interval, 9 probes).
	KeepAlive net.KeepAliveConfig
	// KeepAliveOff turns keepalive off on the outbound connections.
	KeepAliveOff bool
}

// NewDialer returns the Dial function of Config for c. Through a SOCKS5
// proxy the outbound leg is the connection to the proxy, carried by
// golang.org/x/net/proxy's client (a well-kept implementation of RFC
// 1928's CONNECT, as tun2socks-style tools use).
func NewDialer(c DialConfig) (func(ctx context.Context, network, address string) (net.Conn, error), error) {
	if c.Interface != "" && c.Mark != 0 {
		return nil, errors.New("relay: both an outbound interface and a mark: give one, SO_BINDTODEVICE or SO_MARK")
	}
	if c.Mark < 0 {
		return nil, fmt.Errorf("relay: mark %d is negative: give a fwmark from 1 to 4294967295", c.Mark)
	}
	ka := c.KeepAlive
	ka.Enable = true
	if ka.Idle == 0 {
		ka.Idle = 7200 * time.Second
	}
	if ka.Interval == 0 {
		ka.Interval = 75 * time.Second
	}
	if ka.Count == 0 {
		ka.Count = 9
	}
	d := &net.Dialer{KeepAliveConfig: ka, Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			switch {
			case c.Interface != "":
				serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, c.Interface)
			case c.Mark != 0:
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, c.Mark)
			}
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("relay: outbound socket option: %w", serr)
		}
		return nil
	}}
	if c.KeepAliveOff {
		// net.Dialer: Enable false and a negative KeepAlive leave the
		// socket without keepalive.
		d.KeepAliveConfig, d.KeepAlive = net.KeepAliveConfig{}, -1
	}
	if c.Upstream == "" || c.Upstream == "direct" {
		return d.DialContext, nil
	}
	u, err := url.Parse(c.Upstream)
	if err != nil || u.Scheme != "socks5" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("relay: upstream %q: give direct or socks5://HOST:PORT", c.Upstream)
	}
	var auth *proxy.Auth
	if u.User != nil {
		pw, _ := u.User.Password()
		auth = &proxy.Auth{User: u.User.Username(), Password: pw}
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var toProxy net.Conn
		cd, err := socks5Dialer(u.Host, auth, d, &toProxy)
		if err != nil {
			return nil, err
		}
		conn, err := cd.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		// Once CONNECT succeeded the connection to the proxy carries the
		// destination's stream and nothing else (x/net's client reads
		// the reply to its last byte and keeps no buffer), so the relay
		// splices the kernel socket itself: x/net's wrapper hides its
		// CloseWrite, SetLinger and SyscallConn, without which a FIN
		// would not pass the proxy as a half-close, an abort would close
		// where it must reset, and an idle leg would wait holding a
		// buffer.
		if tc, ok := toProxy.(*net.TCPConn); ok {
			return tc, nil
		}
		return conn, nil
	}, nil
}

// socks5Dialer is x/net's SOCKS5 client reaching the proxy at addr through
// d; the connection it makes to the proxy is left in *toProxy.
func socks5Dialer(addr string, auth *proxy.Auth, d *net.Dialer, toProxy *net.Conn) (proxy.ContextDialer, error) {
	pd, err := proxy.SOCKS5("tcp", addr, auth, keepingDialer{d, toProxy})
	if err != nil {
		return nil, err
	}
	cd, ok := pd.(proxy.ContextDialer)
	if !ok {
		return nil, errors.New("relay: the SOCKS5 client cannot dial with a deadline")
	}
	return cd, nil
}

// keepingDialer dials as d does and keeps what it dialled in *conn.
type keepingDialer struct {
	d    *net.Dialer
	conn *net.Conn
}

func (k keepingDialer) Dial(network, address string) (net.Conn, error) {
	return k.DialContext(context.Background(), network, address)
}

func (k keepingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := k.d.DialContext(ctx, network, address)
	*k.conn = c
	return c, err
}
