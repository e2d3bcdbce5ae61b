package nofile

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

func TestRetryTriesAgainOnlyWhenRoomWasMade(t *testing.T) {
	emfile := fmt.Errorf("dial: %w", syscall.EMFILE)
	for _, tc := range []struct {
		name      string
		fails     int   // how many calls fail
		err       error // with what
		made      bool  // whether room makes room
		wantCalls int
		wantRooms int
	}{
		{"no shortage", 0, emfile, true, 1, 0},
		{"one shortage, room made", 1, emfile, true, 2, 1},
		{"no room to make", 5, emfile, false, 1, 1},
		{"shortage lasts", 5, emfile, true, roomTries, roomTries - 1},
		{"another error", 5, errors.New("refused"), true, 1, 0},
		{"the system's table full", 1, syscall.ENFILE, true, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls, rooms := 0, 0
			room := Room(func(at string, err error) bool {
				if at != "here" || !Exhausted(err) {
					t.Errorf("room(%q, %v)", at, err)
				}
				rooms++
				return tc.made
			})
			err := room.Retry("here", func() error {
				calls++
				if calls <= tc.fails {
					return tc.err
				}
				return nil
			})
			if calls != tc.wantCalls || rooms != tc.wantRooms {
				t.Errorf("%d calls and %d rooms, want %d and %d", calls, rooms, tc.wantCalls, tc.wantRooms)
			}
			if (err == nil) != (tc.fails < calls) {
				t.Errorf("Retry = %v after %d calls, %d failing", err, calls, tc.fails)
			}
		})
	}
	calls := 0
	if err := Room(nil).Retry("here", func() error { calls++; return emfile }); err != emfile || calls != 1 {
		t.Errorf("a nil Room: %v after %d calls, want the error after 1", err, calls)
	}
}

// failingListener fails its first Accepts with EMFILE.
type failingListener struct {
	net.Listener
	fails int
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

func TestListenerAcceptsOnceRoomIsMade(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	rooms := 0
	wrapped := Room(func(string, error) bool { rooms++; return true }).Listener(&failingListener{Listener: ln, fails: 1}, "accepting")
	c, err := wrapped.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	c.Close()
	if rooms != 1 {
		t.Errorf("room asked %d times, want 1", rooms)
	}
	if got := Room(nil).Listener(ln, "x"); got != ln {
		t.Errorf("a nil Room wrapped the listener")
	}
}

// Of many callers at once, one is told to say it; none again until
// WarnEvery has passed.
func TestSaidOnceInAWhile(t *testing.T) {
	var s Said
	var told atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if s.Due() {
				told.Add(1)
			}
		})
	}
	wg.Wait()
	if n := told.Load(); n != 1 {
		t.Fatalf("%d of 16 callers were told to say it, want 1", n)
	}
	if s.Due() {
		t.Error("told again at once")
	}
	s.at.Add(-int64(WarnEvery)) // said WarnEvery ago
	if !s.Due() {
		t.Error("not told WarnEvery after")
	}
}
