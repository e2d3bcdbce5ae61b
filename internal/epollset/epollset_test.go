package epollset

import (
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
)

func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(p[0]); syscall.Close(p[1]) })
	return p[0], p[1]
}

func newSet(t *testing.T) *Set {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestWaitReturnsReadyEventsAndTimesOut(t *testing.T) {
	s := newSet(t)
	r, w := pipe(t)
	if err := s.Add(r, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLONESHOT, Fd: 7}); err != nil {
		t.Fatal(err)
	}
	events := make([]syscall.EpollEvent, 4)
	start := time.Now()
	if n, err := s.Wait(events, 50*time.Millisecond); n != 0 || err != nil {
		t.Fatalf("Wait on a quiet set: %d events, %v; want 0, nil", n, err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("Wait returned after %v, before its timeout of 50ms", d)
	}
	// Ready before the wait begins, and while it waits.
	syscall.Write(w, []byte("x"))
	if n, err := s.Wait(events, time.Second); n != 1 || err != nil || events[0].Fd != 7 {
		t.Fatalf("Wait with data ready: %d events (%+v), %v", n, events[:n], err)
	}
	if n, _ := s.Wait(events, 20*time.Millisecond); n != 0 {
		t.Fatalf("a one-shot event came twice")
	}
	if err := s.Del(r); err != nil {
		t.Fatal(err)
	}
	r2, w2 := pipe(t)
	s.Add(r2, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLONESHOT, Fd: 9})
	go func() {
		time.Sleep(30 * time.Millisecond)
		syscall.Write(w2, []byte("y"))
	}()
	if n, err := s.Wait(events, 5*time.Second); n != 1 || err != nil || events[0].Fd != 9 {
		t.Fatalf("Wait for data that comes while it waits: %d events (%+v), %v", n, events[:n], err)
	}
}

// TestWaitHoldsNoProcessor: a goroutine that the waiter made runnable just
// before it waits runs at once. A blocking epoll_wait would keep it on the
// waiter's P until sysmon took the P back: up to 10 ms later in a busy
// process, where sysmon, finding nothing to take back, sleeps longer and
// longer (here one goroutine keeps the other P busy).
func TestWaitHoldsNoProcessor(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	stop := make(chan struct{})
	defer close(stop)
	go func() { // busy, without a system call
		for x := 0; ; x++ {
			if x%1024 == 0 {
				select {
				case <-stop:
					return
				default:
				}
			}
		}
	}()
	s := newSet(t)
	r, _ := pipe(t)
	s.Add(r, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: 1})
	const rounds = 20
	lat := make(chan time.Duration, rounds)
	events := make([]syscall.EpollEvent, 4)
	for range rounds {
		time.Sleep(40 * time.Millisecond) // sysmon backs off meanwhile
		t0 := time.Now()
		go func() { lat <- time.Since(t0) }()
		s.Wait(events, 20*time.Millisecond)
	}
	var all []time.Duration
	for range rounds {
		all = append(all, <-lat)
	}
	slices.Sort(all)
	if med := all[rounds/2]; med > time.Millisecond {
		t.Errorf("a goroutine made runnable before a Wait began running after %v (median of %d; all: %v)", med, rounds, all)
	}
}

func TestCloseEndsAWait(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := s.Wait(make([]syscall.EpollEvent, 1), time.Minute)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("a Wait ended by Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the Wait")
	}
}

func TestAddAfterCloseFails(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	r, _ := pipe(t)
	if err := s.Add(r, &syscall.EpollEvent{Events: syscall.EPOLLIN}); err == nil {
		t.Error("Add after Close succeeded")
	}
	if err := s.Del(r); err == nil {
		t.Error("Del after Close succeeded")
	}
}
