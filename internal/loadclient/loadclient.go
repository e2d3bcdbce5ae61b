package loadclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a kind of request, with the response it must get.
type Kind int

const (
	Get    Kind = iota // GET /; the body must start with Hello
	Slow               // GET /slow?ms=SlowMS; the body must start with "slow <SlowMS>ms"
	Post               // POST /echo with 0..PostMaxBytes random bytes; they must come back exactly
	Stream             // GET /stream?lines=StreamLines&ms=StreamMS, a chunked response written a line at a time; the body must be exactly "stream line=I/StreamLines pid=P\n" for I from 1, one pid throughout
	numKinds
)

func (k Kind) String() string {
	switch k {
	case Get:
		return "get"
	case Slow:
		return "slow"
	case Post:
		return "post"
	case Stream:
		return "stream"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Config says what load to send. The zero value of each field but Addr has
// a meaning, given with it.
type Config struct {
	Addr  string // host:port to dial; required
	Host  string // Host header; "" means Addr
	Hello string // what a Get's body must start with; "" means "hello from demo" (another service answering the demo's requests names itself)

	Conns int           // persistent connections, each its own goroutine; 0 means 1
	Mix   []Kind        // each request's kind is picked at random from Mix, so a kind listed twice comes twice as often; empty means {Get}
	Pause time.Duration // after each request its connection stays idle for a random 0..Pause (the gaps in which servers close idle connections); 0 means the next is sent at once
	// PauseFrom is the shortest of those pauses (a random PauseFrom..Pause):
	// a load whose connections all idle long enough for a proxy to set them
	// aside (smoothserve parks one idle for 1–2 s). It needs Pause ≥ PauseFrom.
	PauseFrom time.Duration

	Count    int64         // stop after this many requests in all; 0 means no limit
	Duration time.Duration // stop after this long; 0 means no limit (run until ctx is done)

	SlowMS       int           // the ms Slow asks for; 0 means 300
	PostMaxBytes int           // largest Post body; 0 means 65536
	StreamLines  int           // the lines a Stream asks for; 0 means 10
	StreamMS     int           // the ms between a Stream's lines; 0 means 30
	Timeout      time.Duration // per request, dial included; 0 means 10s; a request over it fails
	Seed         uint64        // seeds kinds and bodies, for a repeatable run; 0 means a fresh seed

	// TLS, when set, makes each connection a TLS client over its TCP dial,
	// the handshake within the request's Timeout, with a clone of this
	// configuration: NextProtos is always {"http/1.1"} (this client speaks
	// HTTP/1.1 only), and an empty ServerName is Host without its port.
	// A ClientSessionCache in it is shared by the connections, so that
	// they resume sessions (Result.Resumed). A failed handshake fails the
	// request, as a failed dial does. nil means plain TCP.
	TLS *tls.Config
}

// MaxFailures is how many failure descriptions a Result keeps.
const MaxFailures = 20

// withDefaults fills the zero fields and panics on a config no test could
// mean: a test's mistake, to be fixed in the test.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		panic("loadclient: Config.Addr is empty")
	}
	if c.Conns < 0 || c.Pause < 0 || c.PauseFrom < 0 || c.Count < 0 || c.Duration < 0 || c.SlowMS < 0 || c.PostMaxBytes < 0 || c.Timeout < 0 ||
		c.StreamLines < 0 || c.StreamMS < 0 {
		panic(fmt.Sprintf("loadclient: negative value in %+v", c))
	}
	if c.PauseFrom > c.Pause {
		panic(fmt.Sprintf("loadclient: PauseFrom %v is over Pause %v", c.PauseFrom, c.Pause))
	}
	for _, k := range c.Mix {
		if k < 0 || k >= numKinds {
			panic(fmt.Sprintf("loadclient: Config.Mix has unknown %v", k))
		}
	}
	if c.Host == "" {
		c.Host = c.Addr
	}
	if c.Hello == "" {
		c.Hello = "hello from demo"
	}
	if c.Conns == 0 {
		c.Conns = 1
	}
	if len(c.Mix) == 0 {
		c.Mix = []Kind{Get}
	}
	c.Mix = slices.Clone(c.Mix) // the workers read it while the caller may reuse its slice
	if c.TLS != nil {
		c.TLS = c.TLS.Clone() // the caller's is not changed, nor read while the run goes on
		c.TLS.NextProtos = []string{"http/1.1"}
		if c.TLS.ServerName == "" {
			c.TLS.ServerName = hostOnly(c.Host)
		}
	}
	if c.SlowMS == 0 {
		c.SlowMS = 300
	}
	if c.PostMaxBytes == 0 {
		c.PostMaxBytes = 65536
	}
	if c.StreamLines == 0 {
		c.StreamLines = 10
	}
	if c.StreamMS == 0 {
		c.StreamMS = 30
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	return c
}

// Counts are the requests of one kind.
type Counts struct {
	Total, OK, Failed int64
}

// Result is what a run saw. Total == OK + Failed.
type Result struct {
	Total, OK, Failed int64
	Reconnects        int64            // connections opened after a conn's first: after "Connection: close" or a failure
	Handshakes        int64            // with Config.TLS: TLS handshakes completed
	Resumed           int64            // with Config.TLS: of those, the ones that resumed a session
	ByKind            map[Kind]Counts  // every Kind, sent or not
	Pids              map[string]int64 // pid= of the OK Get, Slow and Stream bodies → how many said it
	Failures          []string         // the first MaxFailures, in the order seen: kind, conn, time into the run, what went wrong
	MaxLatency        time.Duration    // the slowest request, OK or not
	Elapsed           time.Duration
}

// String is a one-line summary.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests=%d ok=%d failed=%d reconnects=%d (", r.Total, r.OK, r.Failed, r.Reconnects)
	for k := range numKinds {
		if k > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%v=%d", k, r.ByKind[k].Total)
	}
	b.WriteByte(')')
	return b.String()
}

// Err is nil when requests were sent and none failed; otherwise it holds the
// summary and the failures kept, for t.Fatal.
func (r *Result) Err() error {
	if r.Total == 0 {
		return fmt.Errorf("loadclient: no requests were sent: %v", r)
	}
	if r.Failed == 0 {
		return nil
	}
	msg := r.String() + "\n\t" + strings.Join(r.Failures, "\n\t")
	if r.Failed > int64(len(r.Failures)) {
		msg += fmt.Sprintf("\n\t(and %d more)", r.Failed-int64(len(r.Failures)))
	}
	return errors.New("loadclient: " + msg)
}

// tally is where the workers record what they saw. mu owns res.
type tally struct {
	began time.Time
	mu    sync.Mutex
	res   Result
}

func (t *tally) record(kind Kind, conn int, pid string, latency time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &t.res
	c := r.ByKind[kind]
	r.Total++
	c.Total++
	if err == nil {
		r.OK++
		c.OK++
		if pid != "" {
			r.Pids[pid]++
		}
	} else {
		r.Failed++
		c.Failed++
		if len(r.Failures) < MaxFailures {
			at := time.Since(t.began).Round(time.Millisecond)
			r.Failures = append(r.Failures, fmt.Sprintf("%v conn=%d at %v: %v", kind, conn, at, err))
		}
	}
	r.ByKind[kind] = c
	r.MaxLatency = max(r.MaxLatency, latency)
}

// handshook records a completed TLS handshake.
func (t *tally) handshook(resumed bool) {
	t.mu.Lock()
	t.res.Handshakes++
	if resumed {
		t.res.Resumed++
	}
	t.mu.Unlock()
}

func (t *tally) reconnected() {
	t.mu.Lock()
	t.res.Reconnects++
	t.mu.Unlock()
}

// Runner is a run in the background.
type Runner struct {
	stop context.CancelFunc // safe to call more than once
	done chan struct{}      // closed when every worker has returned; res is final then
	res  *Result
}

// Start begins a run and returns at once. The run ends when ctx is done,
// Count requests were sent, Duration passed, or Stop is called. It panics on
// a Config without Addr or with negative values.
func Start(ctx context.Context, cfg Config) *Runner {
	cfg = cfg.withDefaults()
	t := &tally{began: time.Now()} // before the Duration timer, so Elapsed >= Duration
	var cancel context.CancelFunc
	if cfg.Duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	t.res.ByKind = make(map[Kind]Counts, numKinds)
	for k := range numKinds {
		t.res.ByKind[k] = Counts{}
	}
	t.res.Pids = make(map[string]int64)
	r := &Runner{stop: cancel, done: make(chan struct{})}

	// reserve hands out the Count requests; a worker sends only what it got.
	var sent atomic.Int64
	reserve := func() bool { return cfg.Count == 0 || sent.Add(1) <= cfg.Count }
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}

	var wg sync.WaitGroup
	for i := range cfg.Conns {
		w := newWorker(i, &cfg, t, seed)
		wg.Go(func() { w.run(ctx, reserve) })
	}
	go func() {
		wg.Wait()
		cancel()
		t.mu.Lock()
		t.res.Elapsed = time.Since(t.began)
		r.res = &t.res
		t.mu.Unlock()
		close(r.done)
	}()
	return r
}

// Done is closed when the run has ended and Stop will not block.
func (r *Runner) Done() <-chan struct{} { return r.done }

// Stop ends the run, waits for the requests in flight to be judged, and
// returns the result. It may be called more than once, and after the run
// ended on its own.
func (r *Runner) Stop() *Result {
	r.stop()
	<-r.done
	return r.res
}

// Run sends load until ctx is done, Count requests were sent, or Duration
// passed, and returns what it saw. See Start.
func Run(ctx context.Context, cfg Config) *Result {
	r := Start(ctx, cfg)
	<-r.done
	return r.res
}

// hostOnly is a Host header's name without its port: the TLS server name.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}
