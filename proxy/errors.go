package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// Failures that are not I/O errors.
var (
	errNoHost         = errors.New("no service for this host")
	errNoChallenge    = errors.New("no ACME challenge pending for this token")
	errSendingBody    = errors.New("sending the request body")
	errNoInstance     = errors.New("no instance ready")
	errServiceStopped = errors.New("service stopped")
	errClientGone     = errors.New("client closed the connection")
	errBadResponse    = errors.New("malformed response from instance")
	errStale          = errors.New("pooled connection closed by the instance")
	errBodyTooLarge   = errors.New("request body over max_body_size")
	errBodyTimeout    = errors.New("client stalled sending the request body")
)

// statusCode499 is nginx's "client closed request": logged, never sent.
const statusCode499 = 499

// statusFor is the one place that decides what a failure becomes.
func statusFor(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, errClientGone):
		return statusCode499
	case errors.Is(err, errBadResponse):
		return 502
	case errors.Is(err, errNoHost), errors.Is(err, errNoChallenge):
		return 404
	case errors.Is(err, errNoInstance), errors.Is(err, errServiceStopped):
		return 503
	case errors.Is(err, errHeadTooLarge), errors.Is(err, errTooManyFields):
		return 431
	case errors.Is(err, errBodyTooLarge):
		return 413
	case errors.Is(err, errBodyTimeout):
		return 408
	case errors.Is(err, errConnect):
		return 405
	case errors.Is(err, errBadRequest), errors.Is(err, errBadHead), errors.Is(err, errBadTarget), errors.Is(err, errBadHost):
		return 400
	case errors.Is(err, errTransferCoding):
		return 501
	case errors.Is(err, errVersion):
		return 505
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return 504
	default: // the instance refused, reset, closed early or spoke nonsense
		return 502
	}
}

// clientGone reports whether err is the client going away (or stalling
// past a deadline) rather than a fault of the request.
func clientGone(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

// statusText is the whole body of an error response: the client learns the
// status and nothing of the inside (instances, addresses, Go errors); the
// log has the details under the X-Request-Id the response carries.
func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 308:
		return "Permanent Redirect"
	case 400:
		return "Bad Request"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 413:
		return "Content Too Large"
	case 431:
		return "Request Header Fields Too Large"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Error"
}

// writeError writes a complete plain-text error response to the client
// and flushes it. Retry-After goes with 503: the service is restarting or
// stopped, and a client may try again shortly.
func (c *conn) writeError(code int, keep, head bool) {
	c.writeStatus(code, keep, head, "", nil)
}

// writeStatus writes a response of the proxy's own: code, its status text
// as the body, and one more field if name is not empty.
func (c *conn) writeStatus(code int, keep, head bool, name string, value []byte) {
	c.rec.status = code
	text := statusText(code)
	b := c.bw.AvailableBuffer()
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, text...)
	b = append(b, "\r\n"...)
	now := time.Now()
	b = appendDate(b, now)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(text)+1), 10)
	b = append(b, "\r\nX-Request-Id: "...)
	b = append(b, c.rid...)
	if code == 503 {
		b = append(b, "\r\nRetry-After: 1"...)
	}
	if name != "" {
		b = append(b, "\r\n"...)
		b = append(b, name...)
		b = append(b, ": "...)
		b = append(b, value...)
	}
	if !keep {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	if !head { // the answer to HEAD has no body, its length says what it would be
		b = append(b, text...)
		b = append(b, '\n')
	}
	c.writeDeadline(now)
	c.bw.Write(b)
	c.bw.Flush()
}

// rejectHead answers a request whose head could not be read or parsed, and
// the connection then closes: what follows the bad head cannot be trusted.
func (c *conn) rejectHead(err error) {
	if !errors.Is(err, errHeadTooLarge) && clientGone(err) {
		return // idle, stalled or gone: nobody to answer
	}
	var req request
	c.setRequestID(&req)
	code := statusFor(err)
	c.srv.opts.Logger.Info("proxy: request head rejected", "status", code, "request_id", string(c.rid),
		"client", string(c.clientIP), "port", c.port, "err", err, "head", clip(c.head))
	c.writeError(code, false, false)
	c.logRejected()
	c.lingerClose()
}
