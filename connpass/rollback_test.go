package connpass

import (
	"net"
	"os"
	"syscall"
	"testing"

	"smoothserve/internal/tcptest"
)

// previousReleaseReceive is the receiving loop of the release before
// Tunnel and Stream (ff01364: connpass.Receive and item), reduced to its
// checks: a buffer of clientHeader+MaxBuffered+1, exactly one descriptor,
// kind Client or Idle; anything else is dropped, its descriptors closed.
func previousReleaseReceive(t *testing.T, f *os.File) (taken, dropped int) {
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	uc := nc.(*net.UnixConn)
	defer uc.Close()
	buf := make([]byte, clientHeader+MaxBuffered+1)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	for {
		n, oobn, flags, _, _ := uc.ReadMsgUnix(buf, oob)
		if n == 0 && oobn == 0 {
			return
		}
		fds, _ := rights(oob[:oobn])
		ok := flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) == 0 && len(fds) == 1 &&
			(Kind(buf[0]) == Client || Kind(buf[0]) == Idle)
		for _, fd := range fds {
			syscall.Close(fd)
		}
		if ok {
			taken++
		} else {
			dropped++
		}
	}
}

// TestRollbackJoinedToPreviousRelease: an upgrade to the previous release (a
// rollback) gets tunnels and streams it cannot read. SendJoined reports
// them passed (the proxy then closes its descriptors and counts them in
// PassStats.Tunnels/Streams), and the receiver drops them: every WebSocket
// and stream is cut, silently on the sending side.
func TestRollbackJoinedToPreviousRelease(t *testing.T) {
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	type result struct{ taken, dropped int }
	done := make(chan result, 1)
	go func() {
		tk, dr := previousReleaseReceive(t, f)
		done <- result{tk, dr}
	}()
	_, client := tcptest.Pair(t)
	_, inst := tcptest.Pair(t)
	sendErr := s.SendJoined(Joined{Kind: Tunnel, Port: 80, Client: client, Addr: "127.0.0.1:9", Instance: inst})
	s.Close()
	r := <-done
	if sendErr == nil && r.taken == 0 {
		t.Errorf("SendJoined to the previous release: err=nil (passed, the sender lets go), "+
			"but the receiver took %d and dropped %d: the tunnel is cut", r.taken, r.dropped)
	}
}
