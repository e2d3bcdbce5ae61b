package connpass

import (
	"bufio"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/sockconn"
	"smoothserve/internal/tcptest"
)

func receiveAll(t *testing.T, s *Sender, recv func(fn func(Item)) error) (<-chan Item, <-chan error) {
	t.Helper()
	items := make(chan Item, 16)
	done := make(chan error, 1)
	go func() {
		done <- recv(func(it Item) { items <- it })
		close(items)
	}()
	return items, done
}

func TestPassedConnectionGoesOnWithItsBufferedBytes(t *testing.T) {
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	items, done := receiveAll(t, s, func(fn func(Item)) error { return Receive(f, fn) })

	client, server := tcptest.Pair(t)
	// The sender has read the start of a request; the rest is still in the
	// socket.
	if _, err := client.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 16)
	if _, err := io.ReadFull(server, head); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(8080, head, server); err != nil {
		t.Fatal(err)
	}
	server.Close() // the sender's descriptor only: the connection stays open
	if _, err := client.Write([]byte("Host: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}

	var it Item
	select {
	case it = <-items:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received within 5s")
	}
	defer it.Conn.Close()
	if it.Kind != Client || it.Port != 8080 || string(it.Buffered) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("got port %d, buffered %q", it.Port, it.Buffered)
	}
	if _, ok := it.Conn.(*sockconn.Conn); !ok {
		t.Fatalf("received a %T, want *sockconn.Conn", it.Conn)
	}
	if got, want := it.Conn.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("the receiver's RemoteAddr %s, want the client's %s", got, want)
	}
	it.Conn.SetDeadline(time.Now().Add(5 * time.Second))
	rest, err := bufio.NewReader(it.Conn).ReadString('\n')
	if err != nil || rest != "Host: a\r\n" {
		t.Fatalf("the receiver read %q, %v; want the rest of the request", rest, err)
	}
	if _, err := it.Conn.Write([]byte("HTTP/1.1 200 OK\r\n")); err != nil {
		t.Fatal(err)
	}
	client.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || got != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("the client read %q, %v; want the receiver's answer", got, err)
	}

	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Receive did not return after the sender closed")
	}
}

func TestMalformedMessageIsSkippedAndReported(t *testing.T) {
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	items, done := receiveAll(t, s, func(fn func(Item)) error { return Receive(f, fn) })
	// A message without a descriptor, one for port 0, a good one, and one
	// of an unknown kind.
	if _, _, err := s.uc.WriteMsgUnix([]byte("\x1f\x90GET"), nil, nil); err != nil {
		t.Fatal(err)
	}
	_, server := tcptest.Pair(t)
	raw, _ := server.SyscallConn()
	raw.Control(func(fd uintptr) {
		_, _, err = s.uc.WriteMsgUnix([]byte("c\x00\x00"), syscall.UnixRights(int(fd)), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, server2 := tcptest.Pair(t)
	if err := s.Send(9, nil, server2); err != nil {
		t.Fatal(err)
	}
	_, server3 := tcptest.Pair(t)
	raw, _ = server3.SyscallConn()
	raw.Control(func(fd uintptr) {
		_, _, err = s.uc.WriteMsgUnix([]byte("x"), syscall.UnixRights(int(fd)), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	var got []Item
	for it := range items {
		got = append(got, it)
		it.Conn.Close()
	}
	if len(got) != 1 || got[0].Port != 9 {
		t.Fatalf("received %+v, want only the well-formed connection", got)
	}
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "0 descriptors") || !strings.Contains(err.Error(), "port 0") ||
		!strings.Contains(err.Error(), `unknown kind 'x'`) {
		t.Fatalf("Receive's error = %v; want the three bad messages named", err)
	}
}

func TestSendFailsWhenTheReceiverIsGoneAndTheConnectionStaysUsable(t *testing.T) {
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // the receiving process died
	defer s.Close()
	client, server := tcptest.Pair(t)
	if err := s.Send(8080, nil, server); err == nil {
		t.Fatal("Send succeeded with nobody to receive")
	}
	if _, err := server.Write([]byte("still mine\n")); err != nil {
		t.Fatal(err)
	}
	client.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := bufio.NewReader(client).ReadString('\n'); err != nil || got != "still mine\n" {
		t.Fatalf("client read %q, %v", got, err)
	}
}

func TestSendRefusesOversizedParts(t *testing.T) {
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer s.Close()
	_, server := tcptest.Pair(t)
	if err := s.Send(70000, nil, server); err == nil || !strings.Contains(err.Error(), "not a TCP port") {
		t.Errorf("port 70000: %v", err)
	}
	if err := s.Send(1, make([]byte, MaxBuffered+1), server); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("too much read ahead: %v", err)
	}
}

func TestIdleConnectionToAnInstanceIsPassedWithItsAddress(t *testing.T) {
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	items, done := receiveAll(t, s, func(fn func(Item)) error { return Receive(f, fn) })
	instance, proxySide := tcptest.Pair(t) // the proxy's end of a pooled connection
	if err := s.SendIdle("127.0.0.1:8101", proxySide); err != nil {
		t.Fatal(err)
	}
	proxySide.Close()
	s.Close()
	it, ok := <-items
	if !ok {
		t.Fatalf("nothing received: %v", <-done)
	}
	defer it.Conn.Close()
	if it.Kind != Idle || it.Addr != "127.0.0.1:8101" || it.Port != 0 || it.Buffered != nil {
		t.Fatalf("got %+v", it)
	}
	if _, ok := it.Conn.(*sockconn.Conn); !ok {
		t.Fatalf("received a %T, want *sockconn.Conn (four system calls, not net.FileConn's fifteen)", it.Conn)
	}
	if _, err := it.Conn.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	instance.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := bufio.NewReader(instance).ReadString('\n'); err != nil || got != "GET / HTTP/1.1\r\n" {
		t.Fatalf("the instance read %q, %v", got, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.SendIdle("", proxySide); err == nil {
		t.Error("SendIdle with no address succeeded")
	}
}

func TestJoinedConnectionsArePassedTogetherWithTheirBytesAndState(t *testing.T) {
	for _, kind := range []Kind{Tunnel, Stream} {
		t.Run(string(kind), func(t *testing.T) {
			s, f, err := NewPair()
			if err != nil {
				t.Fatal(err)
			}
			items, done := receiveAll(t, s, func(fn func(Item)) error { return Receive(f, fn) })
			client, clientSide := tcptest.Pair(t)
			instance, instanceSide := tcptest.Pair(t)
			j := Joined{Kind: kind, Port: 8080, Buffered: []byte("to the instance"), Client: clientSide,
				Addr: "127.0.0.1:8101", Instance: instanceSide, InstanceBuffered: []byte("to the client")}
			if kind == Stream {
				j.State = []byte{1, 2, 3}
			}
			if err := s.SendJoined(j); err != nil {
				t.Fatal(err)
			}
			clientSide.Close()
			instanceSide.Close()
			s.Close()
			it, ok := <-items
			if !ok {
				t.Fatalf("nothing received: %v", <-done)
			}
			defer it.Conn.Close()
			defer it.Instance.Close()
			if it.Kind != kind || it.Port != 8080 || it.Addr != "127.0.0.1:8101" || string(it.Buffered) != "to the instance" ||
				string(it.InstanceBuffered) != "to the client" || string(it.State) != string(j.State) {
				t.Fatalf("got %+v", it)
			}
			if _, ok := it.Instance.(*sockconn.Conn); !ok {
				t.Fatalf("the instance's connection is a %T, want *sockconn.Conn", it.Instance)
			}
			// Each descriptor is its own connection, the right way round.
			for _, p := range []struct {
				name   string
				passed net.Conn
				other  net.Conn
				msg    string
			}{{"client", it.Conn, client, "to client\n"}, {"instance", it.Instance, instance, "to instance\n"}} {
				if _, err := p.passed.Write([]byte(p.msg)); err != nil {
					t.Fatal(err)
				}
				p.other.SetDeadline(time.Now().Add(5 * time.Second))
				if got, err := bufio.NewReader(p.other).ReadString('\n'); got != p.msg {
					t.Fatalf("the %s read %q, %v; want %q", p.name, got, err, p.msg)
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSendJoinedRefusesWhatItCannotCarry(t *testing.T) {
	s, f, err := NewPair()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer s.Close()
	_, a := tcptest.Pair(t)
	_, b := tcptest.Pair(t)
	good := Joined{Kind: Tunnel, Port: 1, Client: a, Addr: "127.0.0.1:1", Instance: b}
	for _, tc := range []struct {
		name string
		mod  func(j *Joined)
		want string
	}{
		{"kind", func(j *Joined) { j.Kind = Client }, "not a joined connection"},
		{"port", func(j *Joined) { j.Port = 0 }, "not a TCP port"},
		{"address", func(j *Joined) { j.Addr = "" }, "empty or longer"},
		{"read ahead", func(j *Joined) { j.InstanceBuffered = make([]byte, MaxBuffered+1) }, "more than"},
		{"state", func(j *Joined) { j.State = make([]byte, maxState+1) }, "more than"},
	} {
		j := good
		tc.mod(&j)
		if err := s.SendJoined(j); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
