// Package demo is the demo site and the classic small services that
// `tunstack serve` runs over whichever stack it was given.
//
// Everything here works over a plain net.Listener, so the same code runs on
// tunstack's own TCP, on gVisor's netstack and on the kernel's sockets; the
// tests use kernel listeners on 127.0.0.1 because what they check is the
// site's behaviour, not a stack's.
//
// The site (NewSiteHandler):
//
//	GET  /                       a short text page: the stack's name, the client's address, the endpoints
//	GET  /bytes/N                N bytes of the pattern below, streamed, with Content-Length
//	POST /upload                 reads the body, answers {"bytes":N,"sha256":"hex"}
//	GET  /files/...              static files from SiteConfig.FilesDir
//	GET  /stream[?n=N]           chunked, one line every 100 ms, N lines or until the client leaves
//	GET  /poll[?timeout=D]       long poll: answers when D has passed (default 30s, at most 10m)
//
// The /bytes pattern: byte i of the body (counting from 0) is i mod 251.
// 251 is prime, so the pattern never lines up with power-of-two buffer or
// segment sizes: a segment delivered at the wrong offset, twice or not at
// all shows up as a wrong byte, not as a plausible body. A client checks a
// body with a counter, without storing anything.
//
// The classic services, each on its own listener: ServeEcho (RFC 862),
// ServeDiscard (RFC 863) and ServeChargen (RFC 864).
package demo
