package accesslog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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
// Ownership: the file and the write buffer belong to the writer goroutine;
// queue carries buffers from the connections to it; asks carries Reopen's
// and Flush's requests to it.
type Log struct {
	Path   string
	Format Format

	queue   chan *[]byte // never closed: a Submit racing Close must not panic
	asks    chan ask
	stop    chan struct{} // closed by Close
	done    chan struct{}
	closed  atomic.Bool
	sending atomic.Int64 // Submits between their check of closed and their send
	dropped atomic.Int64
	once    sync.Once
}

// An ask is Reopen's (reopen) or Flush's request; the writer answers on
// done once what was submitted before it is written.
type ask struct {
	reopen bool
	done   chan error
}

// queueLen bounds the buffers waiting to be written.
const queueLen = 4096

// bufSize is the writer's buffer: what one write of a regular file holds
// at most (but for one connection's buffer larger than it, written alone).
const bufSize = 64 << 10

// flushEvery is how long a line may wait in the writer's buffer.
const flushEvery = 100 * time.Millisecond

// Open opens (creating, appending) the log at path and starts its writer.
func Open(path string, format Format) (*Log, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	l := &Log{Path: path, Format: format, queue: make(chan *[]byte, queueLen), asks: make(chan ask),
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

func recycle(b *[]byte) {
	*b = (*b)[:0]
	bufPool.Put(b)
}

// Submit hands b, whole lines, to the writer; b is the log's from now on.
// It never waits: with the queue full (or the log closed), the lines are
// dropped and counted. A Submit that saw the log open has sent before the
// writer's last drain (sending), so its lines are written.
func (l *Log) Submit(b *[]byte) {
	if len(*b) == 0 {
		recycle(b)
		return
	}
	l.sending.Add(1)
	if !l.closed.Load() {
		select {
		case l.queue <- b:
			l.sending.Add(-1)
			return
		default:
		}
	}
	l.sending.Add(-1)
	l.dropped.Add(lines(*b))
	recycle(b)
}

// Dropped is how many lines were dropped: the queue was full, the log
// closed, or a write of the file failed before it finished them.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

// lines is how many lines b holds (whole lines, each ending in a newline).
func lines(b []byte) int64 { return int64(bytes.Count(b, newline)) }

var newline = []byte{'\n'}

// Reopen makes the writer close the file and open path again (after
// logrotate moved it), once what was submitted before is written.
func (l *Log) Reopen() error { return l.askWriter(context.Background(), true) }

// Flush returns once what was submitted before is written (or dropped:
// Dropped counts it then), or when ctx is done (a writer that waits on
// its file).
func (l *Log) Flush(ctx context.Context) error { return l.askWriter(ctx, false) }

func (l *Log) askWriter(ctx context.Context, reopen bool) error {
	a := ask{reopen: reopen, done: make(chan error, 1)} // buffered: the writer never waits for an asker gone
	select {
	case l.asks <- a:
	case <-l.done:
		return fmt.Errorf("access log %s is closed", l.Path)
	case <-ctx.Done():
		return fmt.Errorf("access log %s: %w", l.Path, ctx.Err())
	}
	select {
	case err := <-a.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("access log %s: %w", l.Path, ctx.Err())
	}
}

// Close writes what was submitted before it (or counts it dropped, as a
// write that fails) and closes the file.
func (l *Log) Close() {
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.stop)
		<-l.done
	})
}

// pipeBuf is the most one write to a pipe keeps whole (PIPE_BUF): two
// processes writing one pipe (stdout) interleave between such writes only.
const pipeBuf = 4096

func (l *Log) write(f *os.File) {
	defer close(l.done)
	w := fileWriter{f: f, regular: isRegular(f), dropped: &l.dropped}
	buf := make([]byte, 0, bufSize)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	flush := func() {
		if len(buf) > 0 {
			w.out(buf)
			buf = buf[:0]
		}
	}
	put := func(b *[]byte) {
		if len(buf)+len(*b) > cap(buf) {
			flush()
		}
		if len(*b) > cap(buf) {
			w.out(*b)
		} else {
			buf = append(buf, *b...)
		}
		recycle(b)
	}
	drain := func() { // what was submitted before
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
			// closed is set: a Submit that saw it clear is sending,
			// and does not wait; once none is, the queue has all.
			for l.sending.Load() > 0 {
				runtime.Gosched()
			}
			drain()
			w.f.Close()
			return
		case <-tick.C:
			flush()
		case a := <-l.asks:
			drain()
			var err error
			if a.reopen {
				err = w.reopen(l.Path)
			}
			a.done <- err
		}
	}
}

// fileWriter writes whole lines to the log's file.
type fileWriter struct {
	f       *os.File
	regular bool // a regular file: one write holds all it is given
	cut     bool // a write that failed left a line cut in the file
	dropped *atomic.Int64
}

// out writes p, whole lines, so that another writer of the file (the other
// smoothserve during an upgrade) comes between two lines, never inside
// one: a regular file in one write (O_APPEND), a pipe in writes of whole
// lines of at most pipeBuf (a longer line alone). A write that fails (a
// full disk, a pipe with no reader) drops the lines it did not finish,
// counted; the next are tried again, after a newline that ends the line
// it cut (the other writer's line may have come first, and be joined to
// the cut one: nothing prevents that in a shared file).
func (w *fileWriter) out(p []byte) {
	if w.cut {
		if _, err := w.f.Write(newline); err != nil {
			w.dropped.Add(lines(p))
			return
		}
		w.cut = false
	}
	for len(p) > 0 {
		chunk := p
		if !w.regular && len(chunk) > pipeBuf {
			chunk = chunk[:lineEnd(chunk, pipeBuf)]
		}
		n, err := w.f.Write(chunk)
		if err != nil {
			w.dropped.Add(lines(p[n:]))
			w.cut = n > 0 && chunk[n-1] != '\n'
			return
		}
		p = p[len(chunk):]
	}
}

// lineEnd is the length of p's longest prefix of whole lines within max
// bytes, or of its first line if that is longer.
func lineEnd(p []byte, max int) int {
	if i := bytes.LastIndexByte(p[:max], '\n'); i >= 0 {
		return i + 1
	}
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		return i + 1
	}
	return len(p)
}

// reopen replaces the file by the one at path opened again; on failure
// the file stays.
func (w *fileWriter) reopen(path string) error {
	nf, err := openFile(path)
	if err != nil {
		return err
	}
	w.f.Close()
	*w = fileWriter{f: nf, regular: isRegular(nf), dropped: w.dropped}
	return nil
}

func isRegular(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular()
}
