package accesslog

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Format is how lines are written.
type Format uint8

const (
	Combined Format = iota // nginx's combined, then duration, upstream time, service, instance, retried
	JSON                   // one JSON object a line
)

// ParseFormat reads AccessLogFormat.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "combined":
		return Combined, nil
	case "json":
		return JSON, nil
	}
	return 0, fmt.Errorf("access log format %q: want combined or json", s)
}

// Log is one access log file.
//
// Ownership: the file and w belong to the writer goroutine; queue carries
// buffers from the connections to it; reopen asks it to reopen.
type Log struct {
	Path   string
	Format Format

	queue   chan *[]byte // never closed: a Submit racing Close must not panic
	reopen  chan chan error
	stop    chan struct{} // closed by Close
	done    chan struct{}
	closed  atomic.Bool
	dropped atomic.Int64
	once    sync.Once
}

// queueLen bounds the buffers waiting to be written.
const queueLen = 4096

// flushEvery is how long a line may wait in the writer's buffer.
const flushEvery = 100 * time.Millisecond

// Open opens (creating, appending) the log at path and starts its writer.
func Open(path string, format Format) (*Log, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	l := &Log{Path: path, Format: format, queue: make(chan *[]byte, queueLen), reopen: make(chan chan error),
		stop: make(chan struct{}), done: make(chan struct{})}
	go l.write(f)
	return l, nil
}

func openFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return f, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Buffer is an empty buffer for a connection's lines; Submit gives it back.
func Buffer() *[]byte { return bufPool.Get().(*[]byte) }

// Submit hands b, whole lines, to the writer; b is the log's from now on.
// It never waits: with the queue full, the lines are dropped and counted.
func (l *Log) Submit(b *[]byte) {
	if len(*b) == 0 || l.closed.Load() {
		*b = (*b)[:0]
		bufPool.Put(b)
		return
	}
	select {
	case l.queue <- b:
	default:
		l.dropped.Add(lines(*b))
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

// Dropped is how many lines were lost: dropped for a full queue, or lost
// to a write that failed.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

// lines is how many lines b holds (whole lines, each ending in a newline).
func lines(b []byte) int64 { return int64(bytes.Count(b, newline)) }

var newline = []byte{'\n'}

// Reopen makes the writer close the file and open path again (after
// logrotate moved it), once what was submitted before is written.
func (l *Log) Reopen() error {
	ch := make(chan error, 1)
	select {
	case l.reopen <- ch:
		return <-ch
	case <-l.done:
		return fmt.Errorf("access log %s is closed", l.Path)
	}
}

// Close writes what was submitted and closes the file.
func (l *Log) Close() {
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.stop)
		<-l.done
	})
}

func (l *Log) write(f *os.File) {
	defer close(l.done)
	w := bufio.NewWriterSize(f, 64<<10)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	// A failed write (a full disk, a pipe with no reader) loses what w
	// held, those lines counted in Dropped; w forgets the error, which it
	// would otherwise keep and return for every write after, and the next
	// lines are tried again.
	var pending int64 // the lines in w, not yet written
	lost := func() {
		l.dropped.Add(pending)
		pending = 0
		w.Reset(f)
	}
	flush := func() {
		if err := w.Flush(); err != nil {
			lost()
		}
		pending = 0
	}
	put := func(b *[]byte) {
		// Each write of the file holds whole buffers, so whole lines:
		// another writer of the file (the other smoothserve during an
		// upgrade) can come between two writes, never inside a line.
		if w.Buffered() > 0 && w.Available() < len(*b) {
			flush()
		}
		pending += lines(*b)
		// One larger than w's buffer goes straight, in one write.
		if _, err := w.Write(*b); err != nil {
			lost()
		} else if w.Buffered() == 0 {
			pending = 0 // written
		}
		*b = (*b)[:0]
		bufPool.Put(b)
	}
	drain := func() {
		for n := len(l.queue); n > 0; n-- {
			put(<-l.queue)
		}
		flush()
	}
	for {
		select {
		case b := <-l.queue:
			put(b)
		case <-l.stop:
			drain()
			f.Close()
			return
		case <-tick.C:
			flush()
		case ch := <-l.reopen:
			drain()
			nf, err := openFile(l.Path)
			if err == nil {
				f.Close()
				f = nf
				w.Reset(f)
			}
			ch <- err
		}
	}
}
