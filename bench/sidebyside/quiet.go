package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Quiet WebSockets (idleTunnel) and event streams (idleStream): what a
// browser's open WebSocket, or its EventSource between two events, costs a
// proxy. A WebSocket is opened to the demo's /ws echo
// (examples/demo/websocket.go), one message goes each way, then nothing; a
// stream is the demo's /events, its first event read, the next a minute
// away.

// tunnelCounts are the numbers of quiet WebSockets (or streams) measured,
// in order: each holds two descriptors in a proxy, and one in an instance.
var tunnelCounts = []int{1000, 5000}

// streamPath asks the demo for two events, the second a minute after the
// first: the measurement is over before it comes.
const streamPath = "/events?n=2&ms=60000"

// streamOnce asks c for streamPath and reads the answer's head and first
// event, "id: 1" and its data, which must come chunked.
func streamOnce(c net.Conn, host string) error {
	c.SetDeadline(time.Now().Add(idleIOTimeout))
	if _, err := io.WriteString(c, "GET "+streamPath+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
		return fmt.Errorf("writing GET %s: %w", streamPath, err)
	}
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK || len(resp.TransferEncoding) == 0 {
		return fmt.Errorf("GET %s: %s, transfer encoding %q; want 200, chunked", streamPath, resp.Status, resp.TransferEncoding)
	}
	// The event ends with a blank line, wherever its chunks end.
	var event []byte
	var b [1]byte
	for !bytes.HasSuffix(event, []byte("\n\n")) {
		if _, err := io.ReadFull(resp.Body, b[:]); err != nil {
			return fmt.Errorf("reading the first event: %w (read %q)", err, event)
		}
		event = append(event, b[0])
	}
	if !bytes.HasPrefix(event, []byte("id: 1\n")) {
		return fmt.Errorf("the first event %q, want id 1", event)
	}
	return c.SetDeadline(time.Time{})
}

// wsKey is the Sec-WebSocket-Key every opening sends (RFC 6455's example),
// and wsAccept the Sec-WebSocket-Accept it must be answered with.
const (
	wsKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	wsAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// wsOnce opens a WebSocket to /ws on c for host and echoes one text
// message through it: the answer must be a 101 for it, with nothing after,
// and the echo "echo: hi".
func wsOnce(c net.Conn, host string) error {
	c.SetDeadline(time.Now().Add(idleIOTimeout))
	req := "GET /ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return fmt.Errorf("writing the upgrade: %w", err)
	}
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("reading the upgrade's answer: %w", err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusSwitchingProtocols:
		return fmt.Errorf("GET /ws: %s, want 101", resp.Status)
	case resp.Header.Get("Sec-WebSocket-Accept") != wsAccept:
		return fmt.Errorf("GET /ws: Sec-WebSocket-Accept %q, want %q", resp.Header.Get("Sec-WebSocket-Accept"), wsAccept)
	case br.Buffered() > 0:
		return fmt.Errorf("GET /ws: %d bytes after the 101", br.Buffered())
	}
	// A masked text frame "hi" (a client's frames are masked).
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | 2, mask[0], mask[1], mask[2], mask[3], 'h' ^ mask[0], 'i' ^ mask[1]}
	if _, err := c.Write(frame); err != nil {
		return fmt.Errorf("writing a message: %w", err)
	}
	var head [2]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if head[0] != 0x81 || head[1]&0x80 != 0 || head[1]&0x7f > 125 {
		return fmt.Errorf("the echo's frame begins % x, want an unmasked short text frame", head)
	}
	msg := make([]byte, head[1]&0x7f)
	if _, err := io.ReadFull(c, msg); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if !bytes.Equal(msg, []byte("echo: hi")) {
		return fmt.Errorf("the echo %q, want %q", msg, "echo: hi")
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return errors.Join(errors.New("the WebSocket's deadline"), err)
	}
	return nil
}
