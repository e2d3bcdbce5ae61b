package accesslog

import (
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
