package proxy

import (
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"smoothserve/internal/epollset"
)

// Parking (issue 20): an HTTP/1.x connection (plain or TLS) that has
// waited for its next request for a while (parkAfter, 1–2 s with the
// deadline's slack) gives back what it holds for serving one — its
// goroutine and that goroutine's stack, its bufio reader and writer, the
// per-request scratch slices — and is watched by its Server's parker
// instead: one goroutine waiting on an epoll set of the parked
// connections' descriptors (internal/epollset: parked in Go's poller, not
// blocked in epoll_wait, so the goroutines it just woke run at once on
// its P rather than after sysmon takes the P back). When one becomes readable (its next request, or its client
// closing), a goroutine takes it up again from the pools and the wait
// goes on where it stood: IdleTimeout counts from when the connection
// began to idle, and the parker closes those idle for longer in a sweep
// every parkSweep.
//
// An idle connection then costs its conn, the runtime's netFD and the g
// of its exited goroutine, about 3 KiB at 10,000 connections, instead of
// some 16 KiB (over TLS its tls.Conn too: about 9 KiB instead of 42) —
// once what it gave back has been collected and returned to the OS.
// Nothing else makes that happen soon: the buffers sit in sync.Pools,
// which keep what they hold through one collection (their victim
// cache), the stacks of the exited goroutines are freed by a
// collection, and the request path allocates nothing, so no collection
// runs until the runtime forces one (every 2 minutes) and the background
// scavenger returns the pages slowly after. New HTTP/2 connections are
// the same (countH2): net/http's server holds them, never parked, and the
// handshake and first stream of each leave garbage nothing collects soon,
// some 8 of an idle one's 40 KiB. So the parker trims (trim): after a
// burst that left trimGarbage since the last trim (6 MiB: 256 parkings,
// or 768 new HTTP/2 connections), once it is over (a sweep saw nothing
// new) or has lasted trimEvery, it runs, on a goroutine of its own and one
// at a time, a collection and debug.FreeOSMemory (a second collection,
// then every free page back to the OS). At most once every trimEvery: a
// server with a steady churn (more than 26 parkings a second, or 77 new
// HTTP/2 connections) pays two collections of its heap every 10 s; one
// with neither parkings nor new HTTP/2 connections, nothing.
//
// Why our own epoll set rather than cloudwego/netpoll,
// nbio or gnet: those own the accept loop and their connection types, and
// would replace net.Conn, on which tableflip's inherited listeners, the
// hand-over of connections by descriptor (connpass, ServeHandover), TLS and
// the deadlines are all built. The parker only watches descriptors that
// net.Conns own; a connection is read and written through its net.Conn
// only, by a goroutine, as before.
//
// Ownership: while parked (in p.slots), a connection belongs to the
// parker; whoever removes it from p.slots, under p.mu, owns it after:
// the parker's goroutine (readable: resumed on a new goroutine; idle too
// long: closed), Shutdown (resumed, to end as an idle connection does),
// PassConnections (a plain one passed as it is: handover.go's
// passParked; a TLS one resumed, as by Shutdown), SetDraining (closed),
// Close (closed), makeRoom (closed: the idle longest, when the process
// runs out of descriptors; shed.go), or the connection's own goroutine taking itself back
// when it sees, after registering, that the server began shutting down
// or draining. (Tunnels, tunnel.go, and streams, streampark.go, are
// parked with a second descriptor, the instance's, and have owners of
// their own: see there.) A descriptor is removed from the epoll set by its remover, inside its
// net.Conn's RawConn.Control: never after the net.Conn is closed, so never
// a descriptor number already reused. Lock order: s.mu, then p.mu; never
// s.mu while holding p.mu.

const (
	defaultParkAfter = 2 * time.Second
	parkSweep        = 500 * time.Millisecond

	// A trim is worth it once a burst has given back trimGarbage KiB: 256
	// parkings (parkGarbage each: buffers and a stack), or three times as
	// many new HTTP/2 connections (h2Garbage each: their handshakes' and
	// first streams' garbage).
	trimGarbage = 256 * parkGarbage
	parkGarbage = 24
	h2Garbage   = 8
	trimEvery   = 10 * time.Second // at most one trim in this long
)

// parker watches the parked connections of one Server.
type parker struct {
	srv *Server

	mu    sync.Mutex
	set   *epollset.Set // the parked connections' descriptors; nil when no goroutine watches them
	slots []*conn       // the parked connections; nil: a free slot
	free  []int32       // free slots
	n     int           // parked connections
	seq   uint32        // numbers each parking, so that a stale event wakes nothing

	// Trimming after a burst of parkings or new HTTP/2 connections (trim).
	garbage        int       // KiB they left since the last trim began, or the last pause
	garbageAtSweep int       // garbage at the last sweep: unchanged since, the burst is over
	firstGarbage   time.Time // when the first of garbage came
	trimAt         int       // garbage that makes a trim due: trimGarbage (tests set less)
	trimmedAt      time.Time // when the last trim ended
	trimming       bool      // a trim is running
	trims          int       // trims begun, for tests
}

func newParker(s *Server) *parker { return &parker{srv: s, trimAt: trimGarbage} }

// park registers c, whose goroutine is about to leave it (or which has
// none yet), and reports whether it did, with the parking's number
// (takeParking): c belongs to the parker then. gaveBack says it gave
// buffers back, which count towards a trim.
func (p *parker) park(c *conn, gaveBack bool) (ok bool, seq uint32) {
	if c.socket() == nil {
		return false, 0
	}
	return p.register(c, gaveBack, c.raw)
}

// parkTunnel is park for c, a quiet tunnel whose goroutines are about to
// leave it: with the instance's socket, and the client's unless the client
// has ended its side (its socket would be readable for ever).
func (p *parker) parkTunnel(c *conn) (ok bool, seq uint32) {
	if c.socket() == nil {
		return false, 0
	}
	if c.tn.up {
		return p.register(c, true, c.raw, c.tn.raw)
	}
	return p.register(c, true, c.tn.raw)
}

// register is park with the sockets socks (addLocked).
func (p *parker) register(c *conn, gaveBack bool, socks ...syscall.RawConn) (ok bool, seq uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ok = p.addLocked(c, gaveBack, socks...)
	return ok, c.pseq // after addLocked: a call and an operand have no order in a return list
}

// takeParking is take, of the parking numbered seq only: a goroutine that
// parked c takes back its own parking, not a later one (c woken, and
// parked again as something else, meanwhile).
func (p *parker) takeParking(c *conn, seq uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.hasLocked(c) || c.pseq != seq {
		return false
	}
	p.removeLocked(c)
	return true
}

// addLocked gives c a slot and adds socks to the epoll set under it: an
// event on any of them wakes c.
func (p *parker) addLocked(c *conn, gaveBack bool, socks ...syscall.RawConn) bool {
	if !p.runLocked() {
		return false
	}
	var slot int32
	if k := len(p.free); k > 0 {
		slot, p.free = p.free[k-1], p.free[:k-1]
	} else {
		slot = int32(len(p.slots))
		p.slots = append(p.slots, nil)
	}
	p.seq++
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: slot, Pad: int32(p.seq)}
	for i, raw := range socks {
		var addErr error
		// Inside Control, the descriptor cannot be closed under us.
		if err := raw.Control(func(fd uintptr) { addErr = p.set.Add(int(fd), &ev) }); err != nil || addErr != nil {
			for _, added := range socks[:i] {
				added.Control(func(fd uintptr) { p.set.Del(int(fd)) })
			}
			p.free = append(p.free, slot)
			return false
		}
	}
	c.pslot, c.pseq = slot+1, p.seq
	p.slots[slot] = c
	p.n++
	if gaveBack {
		p.countLocked(parkGarbage)
	}
	return true
}

// runLocked starts the parker's goroutine, with a new epoll set, unless it
// runs; it reports whether it runs.
func (p *parker) runLocked() bool {
	if p.set != nil {
		return true
	}
	set, err := epollset.New()
	if err != nil {
		return false
	}
	p.set = set
	go p.run(set)
	return true
}

// countLocked counts kib KiB of garbage towards a trim.
func (p *parker) countLocked(kib int) {
	if p.garbage == 0 {
		p.firstGarbage = time.Now()
	}
	p.garbage += kib
}

// countH2 counts a new HTTP/2 connection towards a trim (h2.go): its
// handshake and first stream leave garbage as a parking does, and
// net/http's server then holds it, never parked, with goroutines of its
// own. The sweeps go on while garbage is counted, parked connections or
// none.
func (p *parker) countH2() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runLocked() {
		p.countLocked(h2Garbage)
	}
}

// take removes c from the parked connections and reports whether it was
// there: the caller owns it then.
func (p *parker) take(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.hasLocked(c) {
		return false
	}
	p.removeLocked(c)
	return true
}

func (p *parker) removeLocked(c *conn) {
	slot := c.pslot - 1
	p.slots[slot] = nil
	p.free = append(p.free, slot)
	p.n--
	c.pslot = 0
	// A closed descriptor has left the set already (Close raced the park);
	// one not in it (a tunnel's client, which ended its side) is no error.
	c.raw.Control(func(fd uintptr) { p.set.Del(int(fd)) })
	if c.tn != nil {
		c.tn.raw.Control(func(fd uintptr) { p.set.Del(int(fd)) })
	}
	if c.strm != nil {
		c.strm.raw.Control(func(fd uintptr) { p.set.Del(int(fd)) })
	}
}

// has reports whether c is parked.
func (p *parker) has(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hasLocked(c)
}

func (p *parker) hasLocked(c *conn) bool { return c.pslot != 0 && p.slots[c.pslot-1] == c }

// count is how many connections are parked.
func (p *parker) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// run waits for the parked connections until a sweep finds none left and
// no garbage counted waiting for a trim (or the server shutting down): a
// readable one is resumed on a goroutine of its own, one idle longer than
// IdleTimeout is closed.
func (p *parker) run(set *epollset.Set) {
	events := make([]syscall.EpollEvent, 256)
	var woken, expired []*conn
	lastSweep := time.Now()
	for {
		// Parked in Go's poller, not blocked in epoll_wait: the
		// goroutines of the connections woken last round run meanwhile
		// on this P (internal/epollset).
		n, err := set.Wait(events, parkSweep)
		if err != nil {
			n = 0
			p.srv.opts.Logger.Error("proxy: waiting for parked connections", "err", err)
			time.Sleep(parkSweep / 10) // not a busy loop; the sweep still runs
		}
		now := time.Now()
		p.mu.Lock()
		for _, ev := range events[:n] {
			if c := p.slots[ev.Fd]; c != nil && c.pseq == uint32(ev.Pad) {
				p.removeLocked(c)
				woken = append(woken, c)
			}
		}
		swept := now.Sub(lastSweep) >= parkSweep
		if swept {
			lastSweep = now
			idle := p.srv.opts.IdleTimeout
			for _, c := range p.slots {
				if c != nil && c.tn == nil && c.strm == nil && now.Sub(c.idleSince) >= idle { // a tunnel or stream has no idle timeout
					p.removeLocked(c)
					expired = append(expired, c)
				}
			}
		}
		// Not in a process handing its connections over: it is leaving.
		shutting := p.srv.shutting.Load()
		trim := swept && !shutting && p.trimDueLocked(now)
		done := swept && p.n == 0 && (p.garbage == 0 || shutting) // garbage counted waits for its trim
		if done {
			set.Close()
			p.set = nil
		}
		p.mu.Unlock()
		if trim {
			go p.trim()
		}
		for _, c := range woken {
			go c.wake()
		}
		for _, c := range expired {
			c.closeParked()
		}
		clear(woken)
		clear(expired)
		woken, expired = woken[:0], expired[:0]
		if done {
			return
		}
	}
}

// trimDueLocked reports, at a sweep, whether a trim is due, and if so
// counts it as begun. Garbage counts towards one while it comes without
// a pause (a sweep with none): a pause forgets a trickle of less than
// trimAt.
func (p *parker) trimDueLocked(now time.Time) bool {
	settled := p.garbage == p.garbageAtSweep
	if settled && p.garbage < p.trimAt {
		p.garbage = 0
	}
	p.garbageAtSweep = p.garbage
	if p.trimming || p.garbage < p.trimAt || now.Sub(p.trimmedAt) < trimEvery ||
		!settled && now.Sub(p.firstGarbage) < trimEvery {
		return false
	}
	p.trimming, p.garbage, p.garbageAtSweep = true, 0, 0
	p.trims++
	return true
}

// trim collects what the parked connections gave back and returns it to
// the OS: two collections, as sync.Pool keeps what it holds through one.
func (p *parker) trim() {
	runtime.GC()
	debug.FreeOSMemory()
	p.mu.Lock()
	p.trimming, p.trimmedAt = false, time.Now()
	p.mu.Unlock()
}
