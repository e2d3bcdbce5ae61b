package accesslog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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
// full, cutting the line that did not fit.
func TestTwoWritersOfOneFileSplitNoLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	var logs [2]*Log
	for i := range logs {
		l, err := Open(path, Combined)
		if err != nil {
			t.Fatal(err)
		}
		logs[i] = l
	}
	const perLog, lineLen = 4000, 301 // lines that do not divide 64 KiB
	var wg sync.WaitGroup
	for i, l := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
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
		}()
	}
	wg.Wait()
	for _, l := range logs {
		l.Close()
		if d := l.Dropped(); d > 0 {
			t.Fatalf("%d buffers dropped", d)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	bad := 0
	for _, line := range lines {
		if len(line) != lineLen-1 || strings.Count(line, " ") != 2 {
			bad++
		}
	}
	if bad > 0 || len(lines) != 2*perLog {
		t.Errorf("%d lines, %d of them broken; want %d whole lines", len(lines), bad, 2*perLog)
	}
}
