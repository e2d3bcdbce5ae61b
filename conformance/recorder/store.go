package main

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"smoothserve/conformance/recording"
)

// store keeps the records of every lane.
//
// Ownership: mu guards lanes and every Record in them; a connection's
// goroutine changes its current record only through the methods below.
type store struct {
	scripts map[string]recording.Script // read-only after newStore

	mu    sync.Mutex
	lanes map[string]*lane
}

type lane struct {
	seq, conns int
	records    []*recording.Record
}

func newStore(scripts map[string]recording.Script) *store {
	return &store{scripts: scripts, lanes: map[string]*lane{}}
}

func (st *store) lane(name string) *lane {
	l := st.lanes[name]
	if l == nil {
		l = &lane{}
		st.lanes[name] = l
	}
	return l
}

func (st *store) records(name string) []recording.Record {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []recording.Record
	for _, r := range st.lane(name).records {
		rec := *r
		rec.Raw = slices.Clone(r.Raw)
		out = append(out, rec)
	}
	return out
}

// reset forgets a lane's records but those still arriving, which are
// kept, marked Carried.
func (st *store) reset(name string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	l := st.lane(name)
	var live []*recording.Record
	for _, r := range l.records {
		if !r.Complete && !r.Aborted {
			r.Carried = true
			live = append(live, r)
		}
	}
	l.records = live
}

func (st *store) newConn(name string) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	l := st.lane(name)
	l.conns++
	return l.conns
}

func (st *store) begin(name string, conn int) *recording.Record {
	st.mu.Lock()
	defer st.mu.Unlock()
	l := st.lane(name)
	l.seq++
	r := &recording.Record{Seq: l.seq, Conn: conn}
	l.records = append(l.records, r)
	return r
}

// update sets what has arrived of r so far, as framed by f.
func (st *store) update(r *recording.Record, raw []byte, f recording.Frame, complete bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	r.Raw = append(r.Raw[:0], raw...)
	r.Head = f.HeadEnd > 0 || f.Bad
	r.Complete = complete
	r.Bad = f.Bad
	r.Method, r.Target = f.Method, f.Target
}

func (st *store) abort(r *recording.Record) {
	st.mu.Lock()
	defer st.mu.Unlock()
	r.Aborted = true
}

func (st *store) accept(name string, ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("lane %s: %w", name, err)
		}
		go st.serve(name, c)
	}
}

// idleTimeout ends a connection nothing arrives on, as instances do.
const idleTimeout = 2 * time.Minute

// serve reads requests from c, records them and answers each in turn.
func (st *store) serve(name string, c net.Conn) {
	defer c.Close()
	conn := st.newConn(name)
	var buf []byte
	var cur *recording.Record
	chunk := make([]byte, 64<<10)
	for {
		c.SetReadDeadline(time.Now().Add(idleTimeout))
		n, err := c.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for {
			if cur == nil {
				buf = recording.SkipBlankLines(buf)
				if len(buf) == 0 {
					break
				}
				cur = st.begin(name, conn)
			}
			f := recording.FrameRequest(buf)
			if f.End == 0 {
				st.update(cur, buf, f, false)
				break
			}
			st.update(cur, buf[:f.End], f, true)
			keep := st.answer(c, cur.Seq, f, buf[:f.End])
			buf, cur = buf[f.End:], nil
			if !keep {
				return
			}
		}
		if err != nil {
			if cur != nil {
				st.abort(cur)
			}
			return
		}
	}
}

// answer writes the answer to one request and reports whether to go on
// reading the connection.
func (st *store) answer(c net.Conn, seq int, f recording.Frame, raw []byte) bool {
	if f.Bad {
		fmt.Fprintf(c, "HTTP/1.1 400 Bad Request\r\n%s: %d\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", recording.SeqHeader, seq)
		return false
	}
	if id, ok := strings.CutPrefix(f.Target, recording.AnswerPath); ok {
		if s, ok := st.scripts[id]; ok {
			c.Write(s.Raw)
			return !s.Close
		}
	}
	body := fmt.Sprintf("recorder seq=%d method=%q target=%q bytes=%d\n", seq, f.Method, f.Target, len(raw))
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n%s: %d\r\nContent-Length: %d\r\n\r\n", recording.SeqHeader, seq, len(body))
	if f.Method != "HEAD" {
		b.WriteString(body)
	}
	_, err := c.Write(b.Bytes())
	return err == nil
}
