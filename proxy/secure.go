package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"smoothserve/internal/rawio"
)

// This file is HTTPS: the TLS port's connections (a handshake, then
// HTTP/1.1 on this engine or HTTP/2 on net/http's, h2.go), the redirect
// of plain-HTTP requests to https, and the ACME HTTP-01 challenges that
// are exempt from it.

// acmeChallengePrefix is where an ACME server asks for an HTTP-01
// challenge's answer (RFC 8555 §8.3).
const acmeChallengePrefix = "/.well-known/acme-challenge/"

// A ChallengeFunc answers an ACME HTTP-01 challenge for host at path:
// the body, and whether it knows the challenge.
type ChallengeFunc func(host, path string) ([]byte, bool)

// ServeTLS accepts connections on ln, the HTTPS port port, and serves each
// after its TLS handshake (with cfg, within HeaderTimeout): HTTP/2 if the
// client chose h2, HTTP/1.1 otherwise, until Shutdown or Close.
func (s *Server) ServeTLS(ln net.Listener, port int, cfg *tls.Config) error {
	h2 := s.h2For(port)
	return s.accept(ln, port, func(nc net.Conn) {
		tc := tls.Server(rawTCP(nc), cfg)
		// The deadline before the arrival counts: Shutdown's grace may
		// bring it nearer from then on.
		deadline := time.Now().Add(s.opts.HeaderTimeout)
		tc.SetDeadline(deadline)
		s.arrive(tc, deadline) // within the accept loop's own, so the count never falls to 0 between
		go s.handshake(tc, port, h2)
	})
}

// rawTCPConn is a TLS connection's TCP connection with its reads and
// writes made raw (internal/rawio), as a plain connection's are.
type rawTCPConn struct {
	*net.TCPConn
	rio rawio.Conn
}

func (r *rawTCPConn) Read(p []byte) (int, error)  { return r.rio.Read(p) }
func (r *rawTCPConn) Write(p []byte) (int, error) { return r.rio.Write(p) }

// rawTCP returns nc as a rawTCPConn if it is a TCP connection; nc if not.
func rawTCP(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	r := &rawTCPConn{TCPConn: tc}
	r.rio.Init(raw)
	return r
}

// handshake completes a TLS connection's handshake and hands it to the
// server of the protocol it chose; its arrival is over then.
func (s *Server) handshake(tc *tls.Conn, port int, h2 *h2Front) {
	defer s.arrivalOver(tc)
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.HeaderTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.opts.Logger.Debug("proxy: TLS handshake failed", "port", port, "client", tc.RemoteAddr().String(), "err", err)
		tc.Close()
		return
	}
	s.handshaken(tc) // before its deadline goes: Shutdown's grace no longer touches it
	tc.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		h2.serve(tc) // to net/http's server, which serves it on a goroutine of its own
		return
	}
	c := s.newConn(tc, port)
	if c == nil {
		return
	}
	// Served on a goroutine of its own: the handshake went deep enough to
	// leave this one a 16 KiB stack, a quarter of which serving needs, for
	// as long as the connection would live.
	go c.serve()
}

// isChallenge reports whether target asks for an ACME HTTP-01 answer: the
// prefix, then a token of base64url characters (RFC 8555 §8.3), nothing
// else; other targets are routed as any request is.
func isChallenge(target []byte) bool {
	if len(target) <= len(acmeChallengePrefix) || string(target[:len(acmeChallengePrefix)]) != acmeChallengePrefix {
		return false
	}
	for _, c := range target[len(acmeChallengePrefix):] {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// answerChallenge answers an ACME HTTP-01 challenge request, or 404.
func (c *conn) answerChallenge(req *request, hasBody bool) bool {
	body, ok := c.srv.opts.HTTPChallenge(string(stripPort(req.host)), string(req.target))
	if !ok {
		return c.fail(req, errNoChallenge, !hasBody)
	}
	keep := !hasBody && !req.close && !c.closing()
	c.rec.status = 200
	b := c.bw.AvailableBuffer()
	b = append(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	if !keep {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	if !isHead(req.method) {
		b = append(b, body...)
	}
	c.writeDeadline(time.Now())
	c.bw.Write(b)
	c.bw.Flush()
	if hasBody {
		c.lingerClose()
	}
	return keep
}

// httpsInFront reports whether a proxy in TrustedProxies says req came to
// it over HTTPS (X-Forwarded-Proto: https): a TLS terminator in front,
// whose requests are not redirected to HTTPS again (that would loop).
func (c *conn) httpsInFront(req *request) bool {
	return c.trusted && equalFold(bytes.TrimSpace(req.xfp), "https")
}

// redirect answers req with a 308 to the same URL on https at port. A
// request that named no host (HTTP/1.0 without Host) is sent to name, the
// service's own (as nginx's $host is then its server_name); with none, it
// gets 400: "https://:port/" is no URL.
func (c *conn) redirect(req *request, port int, name []byte, hasBody bool) bool {
	host := stripPort(req.host)
	if len(host) == 0 {
		host = name
	}
	if len(host) == 0 {
		return c.fail(req, fmt.Errorf("%w: none to redirect to https", errBadHost), !hasBody)
	}
	loc := append(c.out[:0], "https://"...)
	loc = append(loc, host...)
	if port != 443 {
		loc = append(loc, ':')
		loc = strconv.AppendInt(loc, int64(port), 10)
	}
	if string(req.target) == "*" {
		loc = append(loc, '/')
	} else {
		loc = append(loc, req.target...)
	}
	c.out = loc
	keep := !hasBody && !req.close && !c.closing()
	c.writeStatus(308, keep, isHead(req.method), "Location", loc)
	if hasBody {
		c.lingerClose()
	}
	return keep
}
