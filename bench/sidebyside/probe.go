package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// probeTimeout is how long a probe request may take before it counts as
// failed: far above any latency wrk sees in steady state.
const probeTimeout = 5 * time.Second

// probeResult is what the probe's clients saw during a run.
type probeResult struct {
	requests, failed int
	slowest          time.Duration
	firstFailure     string
}

// probeConns and probePause shape the probe: a few keep-alive connections
// like wrk's, each sending a request every probePause, about 2% of what wrk
// sends.
const (
	probeConns = 8
	probePause = 10 * time.Millisecond
)

// probe sends GET url/ on probeConns keep-alive connections, one request
// after another on each, with probePause between them, until ctx is done;
// the requests under way then are let finish (up to probeTimeout) and count.
//
// It sees what wrk cannot: wrk counts a request only once its response
// arrives, so one that hangs past the end of the run counts nowhere, neither
// as a request nor as an error.
func probe(ctx context.Context, url string) <-chan probeResult {
	out := make(chan probeResult, 1)
	results := make(chan probeResult, probeConns)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: probeConns}}
	for range probeConns {
		go func() {
			var r probeResult
			for ctx.Err() == nil {
				start := time.Now()
				err := probeOnce(client, url)
				r.requests++
				r.slowest = max(r.slowest, time.Since(start))
				if err != nil {
					r.failed++
					if r.firstFailure == "" {
						r.firstFailure = err.Error()
					}
				}
				sleepCtx(ctx, probePause)
			}
			results <- r
		}()
	}
	go func() {
		var sum probeResult
		for range probeConns {
			r := <-results
			sum.requests += r.requests
			sum.failed += r.failed
			sum.slowest = max(sum.slowest, r.slowest)
			if sum.firstFailure == "" {
				sum.firstFailure = r.firstFailure
			}
		}
		client.CloseIdleConnections()
		out <- sum
	}()
	return out
}

func probeOnce(client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}
