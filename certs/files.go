package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"smoothserve/internal/leafcheck"
)

// filePairs are the certificates of `tls: files` services, read again when
// their files change (a renewal by certbot, or by hand).
//
// Ownership: mu guards byName and watched; the poller goroutine reads the
// files and swaps pairs under mu.
type filePairs struct {
	log  *slog.Logger
	stop func()

	mu      sync.Mutex
	byName  map[string]*tls.Certificate // exact names, and "*.example.com"
	watched []*pair
}

type pair struct {
	site  Site
	cert  *tls.Certificate
	stamp string // the files' sizes and times when read
}

// pollEvery is how often the files are checked for a change.
const pollEvery = 2 * time.Second

func newFilePairs(log *slog.Logger) *filePairs {
	f := &filePairs{log: log, byName: map[string]*tls.Certificate{}}
	done := make(chan struct{})
	var once sync.Once
	f.stop = func() { once.Do(func() { close(done) }) }
	go func() {
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f.reload()
			}
		}
	}()
	return f
}

// set makes sites the file pairs served; a pair that cannot be read keeps
// the one in use for its service, if any.
func (f *filePairs) set(sites []Site) error {
	f.mu.Lock()
	old := map[string]*pair{}
	for _, p := range f.watched {
		old[p.site.Service] = p
	}
	f.mu.Unlock()
	var errs []error
	var watched []*pair
	for _, s := range sites {
		p := &pair{site: s}
		cert, stamp, err := load(s)
		switch {
		case err == nil:
			p.cert, p.stamp = cert, stamp
		case old[s.Service] != nil:
			p.cert, p.stamp = old[s.Service].cert, old[s.Service].stamp
			errs = append(errs, fmt.Errorf("%s: %w (the certificate in use is kept)", s.Service, err))
		default:
			// Watched all the same: served once its files are mended.
			p.stamp = stampOf(s)
			errs = append(errs, fmt.Errorf("%s: %w", s.Service, err))
		}
		watched = append(watched, p)
	}
	f.publish(watched)
	return errors.Join(errs...)
}

// publish makes watched the pairs served.
func (f *filePairs) publish(watched []*pair) {
	byName := map[string]*tls.Certificate{}
	for _, p := range watched {
		for _, n := range p.site.Names {
			if p.cert != nil {
				byName[n] = p.cert
			}
		}
	}
	f.mu.Lock()
	f.watched, f.byName = watched, byName
	f.mu.Unlock()
}

// reload reads again the pairs whose files changed.
func (f *filePairs) reload() {
	f.mu.Lock()
	watched := append([]*pair(nil), f.watched...)
	f.mu.Unlock()
	changed := false
	for i, p := range watched {
		if stampOf(p.site) == p.stamp {
			continue
		}
		cert, stamp, err := load(p.site)
		if err != nil {
			f.log.Error("a certificate file changed into one that cannot be served; the one in use is kept",
				"service", p.site.Service, "cert", p.site.CertFile, "key", p.site.KeyFile, "err", err)
			watched[i] = &pair{site: p.site, cert: p.cert, stamp: stamp}
			changed = true
			continue
		}
		f.log.Info("certificate files changed: serving the new pair", "service", p.site.Service, "cert", p.site.CertFile,
			"not_after", cert.Leaf.NotAfter.Format(time.RFC3339))
		watched[i] = &pair{site: p.site, cert: cert, stamp: stamp}
		changed = true
	}
	if changed {
		f.publish(watched)
	}
}

// lookup is the certificate for name: exact, else its wildcard.
func (f *filePairs) lookup(name string) *tls.Certificate {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.byName[name]; c != nil {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		return f.byName["*"+name[i:]]
	}
	return nil
}

// load reads a site's pair, checks it as --check does (a usable pair, in
// force, covering every one of the site's names), and stamps it.
func load(s Site) (*tls.Certificate, string, error) {
	stamp := stampOf(s)
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, stamp, fmt.Errorf("certificate %s with key %s: %w", s.CertFile, s.KeyFile, err)
	}
	// A valid pair for other names would fail every handshake it is served
	// for, and every later --check, upgrade and reload.
	if msgs := leafcheck.Problems(s.CertFile, cert.Leaf, s.Names, time.Now()); len(msgs) > 0 {
		return nil, stamp, errors.New(strings.Join(msgs, "; "))
	}
	return &cert, stamp, nil
}

// stampOf says when and how the files last changed.
func stampOf(s Site) string {
	var b strings.Builder
	for _, name := range []string{s.CertFile, s.KeyFile} {
		if fi, err := os.Stat(name); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		} else {
			b.WriteString("-;")
		}
	}
	return b.String()
}
