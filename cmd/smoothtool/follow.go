package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// followEvery is how often logs -f looks for new lines, a new file or a
// truncated one.
var followEvery = 250 * time.Millisecond

// tailChunk is how much of the end of a log writeLast reads at a time.
const tailChunk = 64 << 10

// writeLast writes the last n lines of f to out, as they are (a last line
// without its newline too), and returns the offset it read f to.
func writeLast(f *os.File, n int, out io.Writer) (int64, error) {
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	end := info.Size()
	from, err := lastLines(f, end, n)
	if err != nil {
		return 0, err
	}
	w, err := io.Copy(out, io.NewSectionReader(f, from, end-from))
	return from + w, err
}

// lastLines is the offset in f's first size bytes at which their last n
// lines begin.
func lastLines(f io.ReaderAt, size int64, n int) (int64, error) {
	if n == 0 {
		return size, nil
	}
	buf := make([]byte, tailChunk)
	for pos := size; pos > 0; {
		chunk := buf[:min(int64(len(buf)), pos)]
		pos -= int64(len(chunk))
		if _, err := f.ReadAt(chunk, pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			// Each newline but the file's last one begins a line.
			if chunk[i] != '\n' || pos+int64(i) == size-1 {
				continue
			}
			if n--; n == 0 {
				return pos + int64(i) + 1, nil
			}
		}
	}
	return 0, nil
}

// follower copies what is written to a log to out as tail -F does: it
// follows the name, so after a rotation by rename it reads the new file
// from its start, and after a truncation in place (copytruncate) it reads
// the file again from its start.
type follower struct {
	path       string
	f          *os.File // the file read now; nil until one exists at path
	off        int64    // how far f has been copied
	mark       lastBytes
	out, notes io.Writer
}

// markLen is how many of the bytes last copied a follower compares with
// the file at each poll: they differ when the file was truncated and
// written past where it was read to, between two polls.
const markLen = 64

func newFollower(path string, f *os.File, off int64, out, notes io.Writer) *follower {
	fl := &follower{path: path, f: f, off: off, out: out, notes: notes}
	if f != nil {
		b := make([]byte, min(off, markLen))
		n, _ := f.ReadAt(b, off-int64(len(b)))
		fl.mark.Write(b[:n])
	}
	return fl
}

// run follows the log until ctx is done, which is the end it expects.
func (fl *follower) run(ctx context.Context) error {
	defer func() {
		if fl.f != nil {
			fl.f.Close()
		}
	}()
	tick := time.NewTicker(followEvery)
	defer tick.Stop()
	for {
		if err := fl.poll(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// poll copies what was written since the last poll, and moves to the file
// at path if it is another one now.
func (fl *follower) poll() error {
	if fl.f != nil {
		if err := fl.copyNew(); err != nil {
			return err
		}
	}
	now, err := os.Stat(fl.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // renamed away, the new one not made yet: keep waiting
	}
	if err != nil {
		return err
	}
	if fl.f != nil {
		if was, err := fl.f.Stat(); err == nil && os.SameFile(was, now) {
			return nil
		}
	}
	next, err := os.Open(fl.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fl.f != nil {
		// What was written to the old file since copyNew, before the
		// rename, is still the old file's.
		err := fl.copyNew()
		fl.f.Close()
		if err != nil {
			next.Close()
			return err
		}
		fmt.Fprintf(fl.notes, "smoothtool: %s was replaced (rotated); following the new file\n", fl.path)
	}
	fl.f, fl.off, fl.mark = next, 0, nil
	return fl.copyNew()
}

// copyNew copies f from off to its end. A file truncated since (shorter
// than off now, or with other bytes before off than were copied) is
// copied from its start.
func (fl *follower) copyNew() error {
	info, err := fl.f.Stat()
	if err != nil {
		return err
	}
	if fl.truncated(info.Size()) {
		fmt.Fprintf(fl.notes, "smoothtool: %s was truncated; following it from its start\n", fl.path)
		fl.off, fl.mark = 0, nil
	}
	n, err := io.Copy(io.MultiWriter(fl.out, &fl.mark), io.NewSectionReader(fl.f, fl.off, info.Size()-fl.off))
	fl.off += n
	return err
}

func (fl *follower) truncated(size int64) bool {
	if size < fl.off {
		return true
	}
	now := make([]byte, len(fl.mark))
	n, _ := fl.f.ReadAt(now, fl.off-int64(len(now)))
	return !bytes.Equal(now[:n], fl.mark)
}

// lastBytes keeps the last markLen bytes written to it.
type lastBytes []byte

func (b *lastBytes) Write(p []byte) (int, error) {
	*b = append(*b, p[max(len(p)-markLen, 0):]...)
	*b = (*b)[max(len(*b)-markLen, 0):]
	return len(p), nil
}
