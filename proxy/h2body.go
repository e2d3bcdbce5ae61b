package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"smoothserve/upstream"
)

// An HTTP/2 stream's request body: kept whole to be sent again when short
// (readBody), streamed chunked to the instance otherwise (streamBody),
// with HTTP/1.1's limits and its statuses for a body that stalls (408) or
// does not match its length (400).

// readBody keeps a body of up to maxKeptBody, so that the request can be
// sent again; a longer one, or one of unknown length, is streamed.
func (x *bridge) readBody(max int64) error {
	n := x.r.ContentLength
	if max > 0 && n > max {
		return fmt.Errorf("%w: %d bytes declared, max_body_size %d", errBodyTooLarge, n, max)
	}
	if x.r.Body == nil || x.r.Body == http.NoBody || n == 0 {
		x.kept = true
		return nil
	}
	if n < 0 || n > maxKeptBody {
		return nil
	}
	x.body = make([]byte, n)
	x.bodyDeadline()
	if _, err := io.ReadFull(x.r.Body, x.body); err != nil {
		return x.bodyErr(err)
	}
	x.kept = true
	return nil
}

// bodyDeadline gives the next read of the request body BodyTimeout, as
// over HTTP/1.1: a client that stalls mid-upload is answered 408.
func (x *bridge) bodyDeadline() {
	x.rc.SetReadDeadline(time.Now().Add(x.f.s.opts.BodyTimeout))
}

// bodyErr is a failed read of the request body: the client stalled (408),
// left (its stream reset, or its connection gone), or sent a body that
// does not match its content-length (400; net/http ends the body with an
// error of its own, and the stream goes on for the answer). A reset ends
// the body, then the stream's context, so that is waited for a moment.
func (x *bridge) bodyErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %v without a byte of the body", errBodyTimeout, x.f.s.opts.BodyTimeout)
	}
	t := time.NewTimer(resetSettle)
	defer t.Stop()
	select {
	case <-x.r.Context().Done():
		return fmt.Errorf("%w: reading the request body: %w", errClientGone, err)
	case <-t.C:
		return fmt.Errorf("%w: the request body: %w", errBadRequest, err)
	}
}

// resetSettle is how long bodyErr waits for a stream's context to end
// after its body did: net/http ends both at once at a reset.
const resetSettle = 50 * time.Millisecond

// bodyMethod reports whether requests of method usually carry a body, so
// that an empty one is said to be empty.
func bodyMethod(m string) bool { return m == "POST" || m == "PUT" || m == "PATCH" }

// streamBody sends a body of unknown or large length, chunked, within
// max_body_size.
func (x *bridge) streamBody(uc *upstream.Conn) error {
	buf := make([]byte, 16<<10)
	var sent int64
	max := x.maxBody
	for {
		x.bodyDeadline()
		n, rerr := x.r.Body.Read(buf)
		if sent += int64(n); max > 0 && sent > max {
			return fmt.Errorf("%w: more than %d bytes", errBodyTooLarge, max)
		}
		if n > 0 {
			chunk := append(strconv.AppendInt(nil, int64(n), 16), "\r\n"...)
			chunk = append(append(chunk, buf[:n]...), "\r\n"...)
			if _, err := uc.Write(chunk); err != nil {
				return fmt.Errorf("%w: %w", errSendingBody, err)
			}
		}
		if rerr == io.EOF {
			_, err := io.WriteString(uc, "0\r\n\r\n")
			return err
		}
		if rerr != nil {
			return x.bodyErr(rerr)
		}
	}
}
