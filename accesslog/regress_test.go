package accesslog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Submit checks closed, then sends on queue; Close sets closed, then
// closes queue. A Submit between the two sends on a closed channel.
func TestRegressSubmitDuringCloseDoesNotPanic(t *testing.T) {
	for round := 0; round < 200; round++ {
		l, err := Open(filepath.Join(t.TempDir(), "a.log"), Combined)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		panicked := make(chan any, 8)
		for range 8 {
			wg.Go(func() {
				defer func() {
					if r := recover(); r != nil {
						panicked <- r
					}
				}()
				for i := 0; i < 2000; i++ {
					b := Buffer()
					*b = append(*b, "x\n"...)
					l.Submit(b)
				}
			})
		}
		time.Sleep(time.Duration(round%5) * 10 * time.Microsecond)
		l.Close()
		wg.Wait()
		select {
		case r := <-panicked:
			t.Fatalf("round %d: Submit panicked: %v", round, r)
		default:
		}
	}
}

// The combined line is one line whatever the fields hold, and its Client
// field cannot hold quotes or spaces that forge the fields after it.
func TestRegressCombinedClientField(t *testing.T) {
	e := Entry{Time: time.Now(), Client: []byte(`1.2.3.4 - - [x] "GET /admin HTTP/1.1" 200`), Method: []byte("GET"),
		Target: []byte("/"), Proto: "HTTP/1.1", Status: 200, Slot: -1}
	line := string(e.Append(nil, Combined))
	if strings.Count(line, `"`) != 6 {
		t.Errorf("the client field added quotes to the line: %s", line)
	}
}

// TestTwoWritersOfOneFileSplitNoLine: two logs append to one file at once
// (an upgrade's old and new smoothserve, or a reload that changed the
// format). Each write of the file must hold whole lines only, or the
// other's write can land inside a line: the 64 KiB buffer was written out
// full, cutting the line that did not fit. The same for a pipe (both
// processes writing one stdout), read slowly: a write of it over PIPE_BUF
// is not one, and Go goes on after a short write.
func TestTwoWritersOfOneFileSplitNoLine(t *testing.T) {
	const perLog, lineLen = 4000, 301 // lines that do not divide 64 KiB
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "access.log")
		writeFromTwo(t, path, perLog, lineLen)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		checkWholeLines(t, b, 2*perLog, lineLen)
	})
	t.Run("FIFO", func(t *testing.T) {
		path, r := fifo(t)
		var got bytes.Buffer
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			defer r.Close()           // gone: the writers' writes fail rather than wait
			buf := make([]byte, 3000) // a slow reader: the pipe is often full
			r.SetReadDeadline(time.Now().Add(20 * time.Second))
			for got.Len() < 2*perLog*lineLen {
				n, err := r.Read(buf)
				got.Write(buf[:n])
				if err != nil && err != io.EOF {
					return
				}
				time.Sleep(50 * time.Microsecond)
			}
		}()
		writeFromTwo(t, path, perLog, lineLen)
		<-readDone
		checkWholeLines(t, got.Bytes(), 2*perLog, lineLen)
	})
}

// writeFromTwo writes perLog lines of lineLen bytes through each of two
// logs of path at once, and closes them.
func writeFromTwo(t *testing.T, path string, perLog, lineLen int) {
	var logs [2]*Log
	for i := range logs {
		l, err := Open(path, Combined)
		if err != nil {
			t.Fatal(err)
		}
		logs[i] = l
	}
	var wg sync.WaitGroup
	for i, l := range logs {
		wg.Go(func() {
			for n := 0; n < perLog; n += 40 {
				b := Buffer()
				for k := 0; k < 40; k++ {
					*b = append(*b, fmt.Sprintf("%d %06d %s\n", i, n+k, strings.Repeat("x", lineLen-10))...)
				}
				l.Submit(b)
				if n%400 == 0 {
					time.Sleep(time.Millisecond) // let the queue drain: no drops
				}
			}
		})
	}
	wg.Wait()
	for _, l := range logs {
		l.Close()
		if d := l.Dropped(); d > 0 {
			t.Fatalf("%d lines dropped", d)
		}
	}
}

func checkWholeLines(t *testing.T, b []byte, want, lineLen int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	bad := 0
	for _, line := range lines {
		if len(line) != lineLen-1 || strings.Count(line, " ") != 2 {
			bad++
		}
	}
	if bad > 0 || len(lines) != want {
		t.Errorf("%d lines, %d of them broken; want %d whole lines", len(lines), bad, want)
	}
}

// TestAFailedWriteDoesNotStopTheLog: a write that fails (a full disk; here
// a FIFO whose reader went away: EPIPE) lost its lines, and bufio kept the
// error, so every line after was lost too, until a SIGUSR1. Now the next
// lines are written again once the file takes them.
func TestAFailedWriteDoesNotStopTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	reader := func() *os.File {
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	submit := func(l *Log, line string) {
		b := Buffer()
		*b = append(*b, line...)
		l.Submit(b)
	}
	expect := func(r *os.File, want string) {
		t.Helper()
		r.SetReadDeadline(time.Now().Add(3 * time.Second))
		got := make([]byte, 0, 64)
		buf := make([]byte, 64)
		for !strings.Contains(string(got), want) {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("read %q, want %q: %v", got, want, err)
			}
		}
	}
	r1 := reader()
	l, err := Open(path, Combined)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	submit(l, "one\n")
	expect(r1, "one\n")
	r1.Close() // no reader: the next write fails
	submit(l, "lost\n")
	submit(l, "lost too\nand this\n")
	deadline := time.Now().Add(3 * time.Second)
	for l.Dropped() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := l.Dropped(); got != 3 {
		t.Fatalf("Dropped() = %d after a failed write of 3 lines, want 3", got)
	}
	r2 := reader()
	defer r2.Close()
	submit(l, "two\n")
	expect(r2, "two\n")
}

// TestAFullQueueCountsTheLinesItDrops: with the writer stuck (a FIFO whose
// reader reads nothing), Submit drops what the queue cannot take, and
// Dropped counts lines, not buffers.
func TestAFullQueueCountsTheLinesItDrops(t *testing.T) {
	l, r := fifoLog(t)
	big := Buffer()
	*big = append(*big, strings.Repeat("x", 255)+"\n"...)
	*big = bytes.Repeat(*big, 2048) // 512 KiB, more than the pipe holds: the writer blocks
	l.Submit(big)
	for range queueLen + 100 {
		b := Buffer()
		*b = append(*b, "one\ntwo\n"...)
		l.Submit(b)
	}
	got := l.Dropped()
	r.Close() // the writer's blocked write fails (EPIPE): it goes on, and Close returns
	// The writer holds big (taken from the queue, or about to be): the
	// queue takes queueLen of the others, and 100 or 101 are dropped.
	if got != 200 && got != 202 {
		t.Fatalf("Dropped() = %d with the queue full, want 200 or 202: 2 lines for each of the 100 or 101 buffers it could not take", got)
	}
}

// TestAWriteCutShortCountsOnlyTheLinesItDidNotWrite: a write that fails
// partway (the FIFO's reader goes after taking 512 of 2,048 lines) counts
// what it did not write, not the lines already in the file.
func TestAWriteCutShortCountsOnlyTheLinesItDidNotWrite(t *testing.T) {
	l, r := fifoLog(t)
	const lineLen, total = 256, 2048
	big := Buffer()
	*big = append(*big, strings.Repeat("x", lineLen-1)+"\n"...)
	*big = bytes.Repeat(*big, total) // 512 KiB: written alone, in one write
	l.Submit(big)
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.ReadFull(r, make([]byte, 128<<10))
	if err != nil {
		t.Fatal(err)
	}
	read := int64(n / lineLen)
	r.Close() // what the pipe still holds (64 KiB at most) is written, and lost
	flush(t, l)
	const inPipe = pipeSize / lineLen
	if got := l.Dropped(); got+read > total || got+read < total-inPipe {
		t.Fatalf("Dropped() = %d with %d of %d lines read: want %d at most (no line read counted), %d at least",
			got, read, total, total-read, total-read-inPipe)
	}
}

// fifo makes a FIFO and opens its reader (which reads only when the test
// does), its pipe set to 64 KiB whatever the page size.
func fifo(t *testing.T) (string, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "access.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if _, err := unix.FcntlInt(r.Fd(), unix.F_SETPIPE_SZ, pipeSize); err != nil {
		t.Fatal(err)
	}
	return path, r
}

// pipeSize is the tests' FIFOs' pipe.
const pipeSize = 64 << 10

// fifoLog is a log written to a FIFO, and the FIFO's reader.
func fifoLog(t *testing.T) (*Log, *os.File) {
	t.Helper()
	path, r := fifo(t)
	l, err := Open(path, Combined)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l, r
}

// flush is l.Flush, bounded.
func flush(t *testing.T, l *Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestASubmitRacingCloseIsWrittenOrCounted: a Submit that saw the log
// open, and sent after the writer's last drain, left its buffer in the
// queue, neither written nor counted.
func TestASubmitRacingCloseIsWrittenOrCounted(t *testing.T) {
	const rounds, submitters, perSubmitter = 300, 4, 300
	for round := range rounds {
		path := filepath.Join(t.TempDir(), "a.log")
		l, err := Open(path, Combined)
		if err != nil {
			t.Fatal(err)
		}
		var wg, started sync.WaitGroup
		for range submitters {
			started.Add(1)
			wg.Go(func() {
				started.Done()
				for range perSubmitter {
					b := Buffer()
					*b = append(*b, "x\n"...)
					l.Submit(b)
				}
			})
		}
		started.Wait()
		l.Close()
		wg.Wait()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		written := int64(bytes.Count(data, newline))
		if got := written + l.Dropped(); got != submitters*perSubmitter {
			t.Fatalf("round %d: %d lines written + %d dropped = %d, want %d (%d buffers left in the queue)",
				round, written, l.Dropped(), got, submitters*perSubmitter, len(l.queue))
		}
	}
}

// TestCloseWritesWhatWasSubmittedBefore: Submits racing Close, with the
// writer busy (a FIFO read only after), must not take the buffers
// submitted before Close away from it: those are written. (A Submit that
// found the log closed after its send used to drop the whole queue.)
func TestCloseWritesWhatWasSubmittedBefore(t *testing.T) {
	const rounds, before = 100, 50
	for round := range rounds {
		l, r := fifoLog(t)
		big := Buffer()
		for len(*big) < 3*pipeSize {
			*big = append(*big, "a line that waits for the reader\n"...)
		}
		l.Submit(big)
		time.Sleep(2 * time.Millisecond) // the writer takes big, and waits on the full pipe
		for range before {
			b := Buffer()
			*b = append(*b, "before\n"...)
			l.Submit(b)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				<-start
				for range 500 {
					b := Buffer()
					*b = append(*b, "racing\n"...)
					l.Submit(b)
				}
			})
		}
		closed := make(chan struct{})
		close(start)
		go func() { l.Close(); close(closed) }()
		wg.Wait()
		r.SetReadDeadline(time.Now().Add(10 * time.Second))
		out, err := io.ReadAll(r) // the writer goes on; Close ends; EOF
		if err != nil {
			t.Fatal(err)
		}
		<-closed
		racing := int64(bytes.Count(out, []byte("racing\n")))
		if got := bytes.Count(out, []byte("before\n")); got != before || racing+l.Dropped() != 1000 {
			t.Fatalf("round %d: %d of the %d lines submitted before Close written; of the 1,000 racing it, %d written and %d dropped",
				round, got, before, racing, l.Dropped())
		}
	}
}
