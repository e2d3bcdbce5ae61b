package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"
)

// The cost of compression: smoothserve alone, the same service without and
// with `compress: true`, each a daemon of its own with its 3 instances,
// measured in turn over plain HTTP. The response is the demo's /ws.html: a
// page of text/html with a Content-Length, over the 1 KiB below which
// smoothserve does not compress, sent in one piece (the demo's /stream is
// text too, but paced at 1 ms a line; /size is application/octet-stream,
// which is never compressed). wrk asks for gzip only, so gzip it is.

// compressMode is one row of the compression table.
type compressMode struct {
	name     string
	dir      string // the daemon's folder in the bench's
	compress bool
}

var compressModes = []compressMode{
	{name: "compress: false", dir: "smoothserve-plain", compress: false},
	{name: "compress: true", dir: "smoothserve-compress", compress: true},
}

var compressWorkload = workload{
	title:  "Compression: smoothserve alone, GET /ws.html (HTML), Accept-Encoding: gzip, 64 connections",
	conns:  64,
	path:   "/ws.html",
	header: "Accept-Encoding: gzip",
}

// compressCost measures smoothserve without and with compression, in
// rounds, each round starting with the other.
func (b *bench) compressCost(ctx context.Context) (*table, error) {
	w := compressWorkload
	t := &table{title: w.title, command: w.command(b.duration), base: compressModes[0].name}
	var daemons []*daemon
	for _, m := range compressModes {
		d, err := startDaemon(b.bin, filepath.Join(b.dir, m.dir), daemonOptions{compress: m.compress})
		if err != nil {
			return nil, err
		}
		b.stops = append(b.stops, d.stop)
		if err := waitServing(d.url(), 15*time.Second, d.first); err != nil {
			return nil, fmt.Errorf("smoothserve (%s) on %s: %w", m.name, d.url(), err)
		}
		note, err := checkEncoding(d.url()+w.path, m.compress)
		if err != nil {
			return nil, fmt.Errorf("smoothserve (%s) on %s: %w", m.name, d.url(), err)
		}
		t.row(m.name)
		t.notes = append(t.notes, m.name+": "+note)
		daemons = append(daemons, d)
	}
	for r := range b.rounds {
		for i := range compressModes {
			k := (r + i) % len(compressModes)
			m, d := compressModes[k], daemons[k]
			res, peak, cpu, err := b.measure(ctx, d.url(), w, d.pids)
			if err != nil {
				return t, fmt.Errorf("smoothserve (%s): %w", m.name, err)
			}
			t.row(m.name).add(res, peak)
			t.addCPU(m.name, cpu)
			progress("compression", r, b.rounds, m.name, res)
		}
	}
	for _, d := range daemons {
		d.stop()
	}
	return t, nil
}

// checkEncoding sends one request as wrk will, and checks that the
// response is gzip if and only if compressed; it describes the response.
func checkEncoding(url string, compressed bool) (string, error) {
	tr := &http.Transport{DisableCompression: true} // the body as sent
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	enc := resp.Header.Get("Content-Encoding")
	switch {
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	case compressed && enc != "gzip", !compressed && enc != "":
		return "", fmt.Errorf("GET %s with Accept-Encoding: gzip: Content-Encoding %q", url, enc)
	}
	if enc == "" {
		enc = "identity"
	}
	return fmt.Sprintf("%s, %d bytes of body (%s)", resp.Header.Get("Content-Type"), len(body), enc), nil
}
