package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"smoothserve/internal/nofile"
	"smoothserve/internal/sockpeek"
	"smoothserve/internal/tcptest"
)

// The memory a quiet streamed response costs the proxy (a server-sent
// events client between two events), measured as TestIdleConnMemory's:
// SMOOTHSERVE_IDLEMEM_STREAMS responses from an instance that sends the
// head and one event on each, then nothing.
//
//	SMOOTHSERVE_IDLEMEM_STREAMS=2000 go test -run TestStreamMemory -v ./proxy/
func TestStreamMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SMOOTHSERVE_IDLEMEM_STREAMS"))
	if n <= 0 || testing.Short() {
		t.Skip("set SMOOTHSERVE_IDLEMEM_STREAMS=2000 to measure")
	}
	if _, err := nofile.Raise(); err != nil {
		t.Fatal(err)
	}
	measureIdleMemory(t, quietEventsInstance(t), n, "quiet event streams", false, openStream, stillStreaming)
}

// firstEvent is the one event quietEventsInstance sends, as a chunk.
const firstEvent = "data: one\n\n"

// quietEventsInstance answers each request with a chunked event stream,
// sends one event, and then nothing until the proxy closes the connection.
func quietEventsInstance(t *testing.T) string {
	t.Helper()
	return tcptest.Serve(t, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 512)
		if !skipHead(br) {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n",
			len(firstEvent), firstEvent)
		io.Copy(io.Discard, br) // until the proxy closes it
	})
}

// openStream asks the proxy for an event stream and reads its head and
// first event, leaving the stream open.
func openStream(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, get("x", "/events"))
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("answered %s", resp.Status)
	}
	if err == nil {
		got := make([]byte, len(firstEvent))
		if _, err = io.ReadFull(resp.Body, got); err == nil && string(got) != firstEvent {
			err = fmt.Errorf("first event %q, want %q", got, firstEvent)
		}
	}
	if err == nil && br.Buffered() > 0 {
		err = errors.New("bytes after the first event")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// stillStreaming reports whether a stream openStream opened is still open
// and quiet: neither closed nor sent anything more.
func stillStreaming(c net.Conn) error {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	st := sockpeek.Closed
	raw.Control(func(fd uintptr) { st = sockpeek.FD(fd) })
	if st != sockpeek.Quiet {
		return fmt.Errorf("the stream is %v, want quiet", st)
	}
	return nil
}
