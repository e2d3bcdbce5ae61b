package e2e

import (
	"bufio"
	"maps"
	"testing"
)

// TestQuietEventStreamsAreParkedThroughAnUpgrade: server-sent-event
// streams whose instance is quiet for a few seconds are parked by the
// daemon (smoothserve_parked_connections counts them), passed from where
// they stand at an upgrade, and parked again in the new daemon; the
// instance's next event then reaches every client, and each body ends as
// the instance ends it. The instances are the same processes throughout.
func TestQuietEventStreamsAreParkedThroughAnUpgrade(t *testing.T) {
	const clients = 20
	in, admin := startInstalledWithAdmin(t, closesIdleConns)
	instances := in.instancesNow()
	brs := make([]*bufio.Reader, clients)
	sses := make([]*sseReader, clients)
	for i := range brs {
		// Two events, 9 s apart: quiet long enough to be parked before
		// the upgrade and again after it.
		_, br := dialGet(t, in.proxyAddr(), "/events?n=2&ms=9000", 0)
		if status, h, err := readHead(br); err != nil || status != 200 || h.Get("Transfer-Encoding") != "chunked" {
			t.Fatalf("stream %d: status %d, header %v, %v; want 200, chunked", i, status, h, err)
		}
		sses[i] = &sseReader{}
		if err := readChunks(br, func(b []byte) bool { return sses[i].add(b) && sses[i].count.Load() < 1 }); err != errStopped {
			t.Fatalf("stream %d, its first event: %v", i, err)
		}
		brs[i] = br
	}
	if n := waitParked(t, admin, clients); n < clients {
		t.Fatalf("%v connections parked, want the %d quiet streams", n, clients)
	}
	if _, _, err := upgradeBySIGHUP(in); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if n := waitParked(t, admin, clients); n < clients {
		t.Fatalf("after the upgrade: %v connections parked, want the %d quiet streams", n, clients)
	}
	for i, br := range brs {
		if err := readChunks(br, sses[i].add); err != nil {
			t.Fatalf("stream %d, the rest of it: %v", i, err)
		}
		if evs := sses[i].events; len(evs) != 2 || evs[0].id != 1 || evs[1].id != 2 || len(sses[i].bad) > 0 {
			t.Fatalf("stream %d: events %+v (and %q), want ids 1 and 2", i, evs, sses[i].bad)
		}
	}
	if got := in.instancesNow(); !maps.Equal(got, instances) {
		t.Errorf("instances (port: pid) after the upgrade: %v, want the same %v", got, instances)
	}
}
