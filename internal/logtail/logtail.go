package logtail

import (
	"bytes"
	"os"
	"strings"
)

// window is how much of the end of a file Lines reads: the last lines of
// any sane log fit in it, and a huge log costs no more to read.
const window = 64 << 10

// Lines returns the last n lines of the file at path that come after
// offset from (0: the whole file), without their newlines; nil when it
// cannot be read or has no such lines.
func Lines(path string, from int64, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() <= from {
		return nil
	}
	off := max(st.Size()-window, from)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil
	}
	buf = bytes.TrimRight(buf, "\n")
	if len(buf) == 0 {
		return nil
	}
	lines := strings.Split(string(buf), "\n")
	if off > from && len(lines) > 1 {
		lines = lines[1:] // a partial first line
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
