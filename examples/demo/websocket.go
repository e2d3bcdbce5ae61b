package main

import (
	"context"
	"net/http"
	"strconv"
	"sync"

	"github.com/coder/websocket"
)

// goingAwayReason is the reason of the close frame the demo sends to its
// WebSockets when it stops.
const goingAwayReason = "server restarting"

// webSockets tracks the open WebSockets of /ws, so that a stop closes them
// with the demo's own close frame (1001, going away) and waits for them:
// http.Server.Shutdown does not track hijacked connections, and without
// this they would end with the process, which a browser reports as 1006
// (abnormal closure) rather than as the server going away.
//
// Ownership: mu orders add against goingAway, so that no handler is counted
// after goingAway (and so after wait began); each connection is owned by
// its handler, which closes it.
type webSockets struct {
	stopping context.Context // done once the demo stops
	stop     context.CancelFunc

	mu       sync.Mutex
	handlers sync.WaitGroup // one per /ws handler with an open WebSocket
}

func newWebSockets() *webSockets {
	ctx, cancel := context.WithCancel(context.Background())
	return &webSockets{stopping: ctx, stop: cancel}
}

// add counts a new WebSocket's handler, or says false once the demo stops.
func (ws *webSockets) add() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.stopping.Err() != nil {
		return false
	}
	ws.handlers.Add(1)
	return true
}

// goingAway makes every open WebSocket close with 1001, and any new one at
// once. It does not wait for them: wait does. Safe to call more than once.
func (ws *webSockets) goingAway() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.stop()
}

// wait waits until every WebSocket's handler has returned, after goingAway,
// or until ctx is done.
func (ws *webSockets) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		ws.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// The goroutine above ends with the last handler, at the latest
		// when the process exits, which follows.
		return ctx.Err()
	}
}

// serveEcho upgrades the request to a WebSocket and answers each text
// message with "echo: " and the message, until either side closes it or the
// demo stops (then it closes it with 1001). The upgrade's response carries
// Demo-Pid, so that a client knows which instance it reached.
func (ws *webSockets) serveEcho(pid int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Demo-Pid", strconv.Itoa(pid))
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return // Accept has answered the request with an error
		}
		if !ws.add() {
			c.Close(websocket.StatusGoingAway, goingAwayReason)
			return
		}
		defer ws.handlers.Done()

		// The close handshake needs the reads below to go on (they read the
		// client's answering close frame), so it runs beside them.
		closed := make(chan struct{})
		stopClose := context.AfterFunc(ws.stopping, func() {
			defer close(closed)
			c.Close(websocket.StatusGoingAway, goingAwayReason)
		})
		echo(r.Context(), c)
		if stopClose() {
			c.CloseNow() // ended by the client or an error; a no-op if closed
		} else {
			<-closed
		}
	}
}

// echo answers text messages until reading fails: the connection closed (by
// either side) or broke.
func echo(ctx context.Context, c *websocket.Conn) {
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			c.Close(websocket.StatusUnsupportedData, "text messages only")
			return
		}
		if err := c.Write(ctx, websocket.MessageText, append([]byte("echo: "), msg...)); err != nil {
			return
		}
	}
}
