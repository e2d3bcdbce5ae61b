package conformance

import (
	"fmt"
	"net"
	"sync"
	"time"

	"smoothserve/conformance/recording"
)

// Timing of a case.
const (
	// answerDeadline: a case not answered (nor closed) this long after its
	// last byte is hung.
	answerDeadline = 3 * time.Second
	// strayGrace: how long the case's connection is watched, after the
	// probe is answered, for bytes no request asked for.
	strayGrace = 30 * time.Millisecond
)

// exchange is what the client of a case saw.
type exchange struct {
	responses []response // as parsed, the last one possibly incomplete
	stray     []byte     // bytes after the answers to every request sent
	closed    bool       // the proxy closed the connection
	complete  bool       // every request sent got a complete final answer
	elapsed   time.Duration
	first     time.Duration // until the first complete final answer; -1: none
	probe     *exchange     // the request sent next, on a new connection
	err       error         // the proxy could not be reached
}

// stream is a connection being read in the background.
//
// Ownership: mu guards buf, closed and at; the reading goroutine appends.
type stream struct {
	conn    net.Conn
	arrived chan struct{} // a value after each read, dropped if one waits
	mu      sync.Mutex
	buf     []byte
	closed  bool
	done    chan struct{} // closed when the reading goroutine ends
}

func newStream(c net.Conn) *stream {
	s := &stream{conn: c, arrived: make(chan struct{}, 1), done: make(chan struct{})}
	go s.read()
	return s
}

func (s *stream) read() {
	defer close(s.done)
	b := make([]byte, 64<<10)
	for {
		n, err := s.conn.Read(b)
		s.mu.Lock()
		s.buf = append(s.buf, b[:n]...)
		s.closed = err != nil
		s.mu.Unlock()
		select {
		case s.arrived <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

func (s *stream) snapshot() ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf, s.closed
}

// end closes the connection and waits for the reading goroutine.
func (s *stream) end() {
	s.conn.Close()
	<-s.done
}

// send writes a case's parts to addr and reads the answers to the
// requests in methods, until they are complete, the connection closes,
// or the deadline passes. The stream is left open, to be watched further.
func send(addr string, parts []string, gap time.Duration, methods []string) (*exchange, *stream) {
	ex := &exchange{first: -1}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		ex.err = err
		return ex, nil
	}
	s := newStream(c)
	start := time.Now()
	for i, p := range parts {
		if i > 0 {
			time.Sleep(gap)
		}
		c.SetWriteDeadline(time.Now().Add(answerDeadline))
		if _, err := c.Write([]byte(p)); err != nil {
			break // the proxy answered and closed early: its answer tells
		}
	}
	lastWrite := time.Now()
	deadline := time.NewTimer(answerDeadline)
	defer deadline.Stop()
	for {
		buf, closed := s.snapshot()
		ex.read(buf, closed, methods)
		if ex.first < 0 && ex.firstFinalComplete() {
			ex.first = time.Since(lastWrite)
		}
		if closed || ex.complete {
			ex.elapsed = time.Since(start)
			return ex, s
		}
		select {
		case <-s.arrived:
		case <-deadline.C:
			ex.elapsed = time.Since(start)
			return ex, s
		}
	}
}

// read parses what has arrived.
func (ex *exchange) read(buf []byte, closed bool, methods []string) {
	ex.responses, ex.stray = splitResponses(buf, methods, closed)
	ex.closed = closed
	n := ex.finals()
	ex.complete = n == len(methods) && n > 0 && ex.responses[len(ex.responses)-1].complete
}

// firstFinalComplete reports whether the first final response is complete.
func (ex *exchange) firstFinalComplete() bool {
	for _, r := range ex.responses {
		if !r.interim {
			return r.complete
		}
	}
	return false
}

// finals counts the final (not 1xx) responses.
func (ex *exchange) finals() int {
	n := 0
	for _, r := range ex.responses {
		if !r.interim {
			n++
		}
	}
	return n
}

// runCase sends c to addr, then the probe on a new connection, and
// watches c's connection a little longer for stray bytes.
func runCase(addr string, c *Case) *exchange {
	ex, s := send(addr, c.Parts, c.Gap, c.methods())
	if s == nil {
		return ex
	}
	defer s.end()
	ex.probe = probe(addr, c.ID)
	time.Sleep(strayGrace)
	buf, closed := s.snapshot()
	complete, wasClosed, first := ex.complete, ex.closed, ex.first
	ex.read(buf, closed, c.methods())
	// The outcome is as it was at the deadline; only stray bytes are new.
	ex.complete, ex.closed, ex.first = complete, wasClosed, first
	return ex
}

// probe sends the request that follows every case.
func probe(addr, id string) *exchange {
	raw := fmt.Sprintf("GET %s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", recording.ProbePath, id, host)
	ex, s := send(addr, []string{raw}, 0, []string{"GET"})
	if s != nil {
		s.end()
	}
	return ex
}
