package proxy

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// copyBody copies n bytes (n < 0: until EOF) from src to the client,
// flushing whenever src has nothing more buffered, so that a streamed
// response is passed on as it comes, and a small one in one write.
func (c *conn) copyBody(src io.Reader, n int64) error {
	br, _ := src.(*bufio.Reader)
	for n != 0 {
		if br != nil && br.Buffered() == 0 && c.bw.Buffered() > 0 {
			if err := c.Flush(); err != nil {
				return err
			}
		}
		var err error
		if br, err = c.awaitBody(br); err != nil {
			switch {
			case isPark(err):
				c.rel.left = n
				return errParking
			case isPass(err):
				if c.passStream(n) {
					return errPassed
				}
				continue
			}
			return fmt.Errorf("reading response body: %w", err)
		}
		if br != nil {
			src = br // the wait may have swapped it (awaitBody)
		}
		buf := c.bw.AvailableBuffer()
		if cap(buf) == 0 {
			if err := c.Flush(); err != nil {
				return err
			}
			continue
		}
		buf = buf[:cap(buf)]
		if n > 0 && int64(len(buf)) > n {
			buf = buf[:n]
		}
		k, err := src.Read(buf)
		c.bw.Write(buf[:k])
		if n > 0 {
			n -= int64(k)
		}
		if err == io.EOF && n < 0 {
			return nil
		}
		if k == 0 && isPass(err) {
			if c.passStream(n) {
				return errPassed
			}
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading response body: %w", err)
		}
	}
	return nil
}

// streamPiece is the size from which a read of the instance says a
// download rather than a stream of events: the next wait for the
// instance holds the buffers, as a blocked read does, and costs no look
// at the socket first (a chunked download of 16 KiB reads would make
// one more system call each).
const streamPiece = 4 << 10

// awaitBody waits, when br (the relayed response's reader of the instance)
// holds nothing, for the instance's next bytes (upstream's WaitBody),
// with the client's writer, flushed, and its reader, if empty, back in
// their pools meanwhile, as sendRequest's wait does, and br too
// (WaitBody): a quiet stream (server-sent events between two events)
// holds its goroutine, not 40 KiB of buffers. It returns the reader to go
// on with: br, or the instance's new one if the wait gave br back. Only
// for a body that streams (chunked, or up to the close; a length-framed
// one, a download, reads on, saving a recv a read), not after a read of
// the instance of streamPiece or more, which says a download too, not
// while compressing (the compressor writes into bw). Its errors are those
// of a read of br, and upstream.ErrPark.
func (c *conn) awaitBody(br *bufio.Reader) (*bufio.Reader, error) {
	uc := c.rel.uc
	if uc == nil || br != uc.R || br.Buffered() > 0 || c.rel.framing == bodyLength || uc.LastRead() >= streamPiece || c.zw.active() {
		return br, nil
	}
	if err := c.Flush(); err != nil {
		return br, err
	}
	lentReader := c.lendBuffers()
	err := uc.WaitBody()
	c.takeBuffersBack(lentReader)
	return uc.R, err
}

// relayChunked passes a chunked body on chunk by chunk, each as soon as it
// arrives, framed anew (size lines without extensions, CRLF), with the
// trailer fields that are valid, from the instance's reader (c.rel.uc.R,
// read afresh after each wait: awaitBody). While c.rel.passable, it may
// stop to pass the response on, or to park it, in a chunk's data or
// before a size line.
func (c *conn) relayChunked() error {
	for {
		c.rel.inChunk = false
		src, err := c.awaitBody(c.rel.uc.R)
		var line []byte
		if err == nil {
			line, err = readLine(src)
		}
		if isPark(err) { // nothing of the line read yet (ParkNow)
			c.rel.left = 0
			return errParking
		}
		if isPass(err) { // nothing of the line read yet (PassNow)
			if c.passStream(0) {
				return errPassed
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("reading response body: %w", err)
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return fmt.Errorf("reading response body: %w", err)
		}
		b := strconv.AppendInt(c.bw.AvailableBuffer(), size, 16)
		c.bw.Write(append(b, "\r\n"...))
		if size == 0 {
			c.rel.passable = false // the trailer is finished here
			if err := readTrailer(src, c.bw); err != nil {
				return fmt.Errorf("reading response trailers: %w", err)
			}
			c.bw.WriteString("\r\n")
			return nil
		}
		if err := c.chunkData(size); err != nil {
			return err
		}
	}
}

// chunkData relays the size bytes of a chunk's data and its CRLF from the
// instance's reader; the size line is written already.
func (c *conn) chunkData(size int64) error {
	c.rel.inChunk = true
	if err := c.copyBody(c.rel.uc.R, size); err != nil {
		return err
	}
	passable := c.rel.passable
	c.rel.passable = false // the CRLF is read here
	err := expectCRLF(c.rel.uc.R)
	c.rel.passable = passable
	if err != nil {
		return fmt.Errorf("reading response body: %w", err)
	}
	c.bw.WriteString("\r\n")
	return nil
}
