package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"smoothserve/internal/nofile"
)

const (
	// answerTimeout bounds a connection's whole life: writing the answer
	// and reading what the client sends until it closes. HAProxy reads a
	// ~10-byte line and closes within milliseconds; only a client that
	// never reads nor closes gets near it.
	answerTimeout = 2 * time.Second
	// maxConns bounds the connections open at once. HAProxy opens one per
	// server line every agent-inter (2 s by default), each for
	// milliseconds, so even a thousand servers pointed at one agent stay
	// far below it.
	maxConns = 128
	// maxDiscard bounds what is read from a client after the answer:
	// HAProxy's agent-send text is one short line.
	maxDiscard = 64 << 10
)

// limits are Serve's bounds; tests shrink them.
type limits struct {
	timeout  time.Duration
	maxConns int
}

// Serve answers every connection accepted on ln with the line for state()
// at that moment, then closes it. state is called once per connection and
// must return promptly (an atomic load, say).
//
// Serve returns nil when ctx is done (it closes ln before returning) or
// when ln is closed, and an error wrapping the listener's when Accept
// fails for good.
// Accept failures that pass (out of descriptors, timeouts) are retried
// after a growing pause, up to a second, as the proxy's accept does.
func Serve(ctx context.Context, ln net.Listener, state func() State) error {
	return serve(ctx, ln, state, limits{timeout: answerTimeout, maxConns: maxConns})
}

// server is one run of Serve.
//
// Ownership: the accept loop owns slots and starts every goroutine in wg;
// mu guards open and closing, which each connection's goroutine and, once
// the loop has ended, cutReads touch.
type server struct {
	state func() State
	lim   limits
	slots chan struct{} // one token per open connection
	wg    sync.WaitGroup

	mu      sync.Mutex
	open    map[net.Conn]struct{} // connections whose goroutine is running
	closing bool                  // Serve is returning: cut every read short
}

func serve(ctx context.Context, ln net.Listener, state func() State, lim limits) error {
	if state == nil {
		return errors.New("agent: Serve needs a state func")
	}
	s := &server{
		state: state,
		lim:   lim,
		slots: make(chan struct{}, lim.maxConns),
		open:  make(map[net.Conn]struct{}),
	}
	loopDone := make(chan struct{})
	s.wg.Go(func() {
		select {
		case <-ctx.Done():
			ln.Close() // unblocks Accept
		case <-loopDone:
		}
	})
	err := s.accept(ctx, ln)
	close(loopDone)
	if ctx.Err() != nil {
		// The watcher may have seen loopDone first: both were ready.
		ln.Close()
	}
	s.cutReads()
	s.wg.Wait()
	return err
}

// accept hands each connection accepted on ln to answer, in a goroutine of
// its own, while a slot is free.
func (s *server) accept(ctx context.Context, ln net.Listener) error {
	var delay time.Duration
	for {
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		c, err := ln.Accept()
		if err != nil {
			<-s.slots
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !passing(err) {
				return fmt.Errorf("agent: accept on %v: %w", ln.Addr(), err)
			}
			// Out of descriptors: wait rather than spin; the queued
			// connections stay in the backlog.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
			continue
		}
		delay = 0
		s.wg.Go(func() {
			defer func() { <-s.slots }()
			s.answer(c)
		})
	}
}

// passing reports whether an Accept error may go away by itself.
func passing(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() ||
		nofile.Exhausted(err) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// answer writes the line for the current state to c, then reads and
// discards what the client sends until it closes, and closes c.
func (s *server) answer(c net.Conn) {
	defer c.Close()
	// One deadline for both directions: a client that never reads cannot
	// hold the write, one that never closes cannot hold the read. It is
	// set before track, which may cut the read deadline short.
	c.SetDeadline(time.Now().Add(s.lim.timeout))
	s.track(c)
	defer s.untrack(c)

	if _, err := io.WriteString(c, s.state().line()); err != nil {
		return
	}
	// Half-close so the client sees the end of the line at once, then read
	// what it sent (HAProxy's agent-send text) until it closes: closing a
	// socket with unread input sends a reset, not a FIN (RFC 1122
	// 4.2.2.13), and a client that meets the reset before it has read the
	// answer reports a connection error instead.
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() != nil {
			return
		}
	}
	io.CopyN(io.Discard, c, maxDiscard)
}

// track lists c as open; once Serve is returning, c's reads end at once.
func (s *server) track(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open[c] = struct{}{}
	if s.closing {
		c.SetReadDeadline(time.Now())
	}
}

func (s *server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.open, c)
	s.mu.Unlock()
}

// cutReads ends the reads of every open connection, so that Serve does not
// wait answerTimeout for a client that does not close. Answers being
// written are left to finish: their write deadline still bounds them.
func (s *server) cutReads() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for c := range s.open {
		c.SetReadDeadline(time.Now())
	}
}
