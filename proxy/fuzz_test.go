package proxy

// Fuzz targets for the parsers and the whole exchange. Their seed corpora
// are under testdata/fuzz/<Target>/, written from fuzzSeeds by
//
//	go test ./proxy/ -run TestFuzzSeedCorpora -update-fuzz-seeds
//
// and `make fuzz` runs each target for a minute.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"smoothserve/upstream"
)

// quietServer is a Server for driving a conn's parsers without a socket.
func quietServer(tb testing.TB) *Server {
	tb.Helper()
	s, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// noDeadlines stands for the client's connection of a conn whose parsers
// and writers are driven without one: it only takes deadlines.
type noDeadlines struct{ net.Conn }

func (noDeadlines) SetDeadline(time.Time) error      { return nil }
func (noDeadlines) SetReadDeadline(time.Time) error  { return nil }
func (noDeadlines) SetWriteDeadline(time.Time) error { return nil }

// FuzzRequestHead: whatever the proxy accepts as a request head, the head
// it sends upstream reads the same way with net/http, and net/http reading
// the client's own bytes sees the same body framing.
func FuzzRequestHead(f *testing.F) {
	srv := quietServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &conn{srv: srv, clientIP: []byte("192.0.2.1"), rid: []byte("0123456789abcdef0123456789abcdef")}
		var err error
		c.head, err = readHead(bufio.NewReaderSize(bytes.NewReader(data), clientReadBuf), nil, srv.opts.MaxHeaderBytes, true)
		if err != nil {
			return
		}
		var req request
		if err := c.parseRequest(&req); err != nil {
			return
		}
		hasBody := req.contentLength > 0 || req.chunked
		// As readBody leaves it: kept whole (a small body), or not (the
		// rest streamed after the head).
		if !hasBody || req.chunked || req.contentLength <= 4096 {
			c.body = bytes.Repeat([]byte("b"), int(max(req.contentLength, 5)))
			if !hasBody {
				c.body = c.body[:0]
			}
			checkUpstreamHead(t, c, &req, true)
		}
		if hasBody {
			checkUpstreamHead(t, c, &req, false)
		}

		// net/http, reading what the client sent, must not frame its
		// body differently.
		goReq, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		goChunked := len(goReq.TransferEncoding) > 0
		if goChunked != req.chunked || !req.chunked && goReq.ContentLength != max(req.contentLength, 0) {
			t.Fatalf("framing of %q: the proxy reads chunked=%v length=%d, net/http chunked=%v length=%d",
				data, req.chunked, req.contentLength, goChunked, goReq.ContentLength)
		}
		if goReq.Method != string(req.method) {
			t.Fatalf("method of %q: the proxy reads %q, net/http %q", data, req.method, goReq.Method)
		}
	})
}

// checkUpstreamHead builds the upstream head for req and checks it.
func checkUpstreamHead(t *testing.T, c *conn, req *request, kept bool) {
	t.Helper()
	const addr = "192.0.2.9:8080"
	c.buildUpstreamHead(req, kept, addr)
	out := append([]byte(nil), c.out...)
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(out)))
	var uerr *url.Error
	if errors.As(err, &uerr) {
		// net/http refuses some targets the proxy passes on as they
		// came ("/%zz"): the instance answers them. The rest of the
		// head must still read right.
		line, rest, _ := bytes.Cut(out, []byte("\n"))
		line = append(bytes.Join(bytes.Fields(line)[:1], nil), " / HTTP/1.1\r"...)
		r, err = http.ReadRequest(bufio.NewReader(bytes.NewReader(append(append(line, '\n'), rest...))))
		if err == nil {
			r.RequestURI = string(targetSent(req))
		}
	}
	if err != nil {
		t.Fatalf("net/http cannot read the upstream head (kept=%v): %v\n%q", kept, err, out)
	}
	wantHost := string(req.host)
	if req.host == nil {
		wantHost = addr
	}
	if r.Method != string(req.method) || r.Host != wantHost || r.RequestURI != string(targetSent(req)) ||
		countFields(out, "Host") != 1 {
		t.Fatalf("upstream head reads %s %s with Host %q (%d Host fields), want %s %s with Host %q:\n%q",
			r.Method, r.RequestURI, r.Host, countFields(out, "Host"), req.method, targetSent(req), wantHost, out)
	}
	lengths, codings := countFields(out, "Content-Length"), countFields(out, "Transfer-Encoding")
	var wantLengths, wantCodings int
	var wantLength int64 = -1
	switch {
	case kept && (req.chunked || req.contentLength >= 0):
		wantLengths, wantLength = 1, int64(len(c.body))
	case !kept && req.chunked:
		wantCodings = 1
	case !kept:
		wantLengths, wantLength = 1, req.contentLength
	}
	if lengths != wantLengths || codings != wantCodings || wantLength >= 0 && r.ContentLength != wantLength ||
		wantCodings == 1 && (len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked") {
		t.Fatalf("upstream framing (kept=%v): %d Content-Length (%d), %d Transfer-Encoding %q; want %d (%d), %d:\n%q",
			kept, lengths, r.ContentLength, codings, r.TransferEncoding, wantLengths, wantLength, wantCodings, out)
	}
	if kept {
		body, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(body, c.body) {
			t.Fatalf("kept body: net/http reads %q %v, want %q:\n%q", body, err, c.body, out)
		}
	}
}

// targetSent is the request target the proxy sends for req.
func targetSent(req *request) []byte {
	if len(req.target) == 0 || req.target[0] != '/' && req.target[0] != '*' {
		return append([]byte("/"), req.target...)
	}
	return req.target
}

// FuzzChunked: the chunked decoder and the chunk relay agree: what the
// relay writes decodes to what the decoder reads, and is strict.
func FuzzChunked(f *testing.F) {
	srv := quietServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var dec chunkedDecoder
		dec.reset(bufio.NewReader(bytes.NewReader(data)))
		decoded, decErr := io.ReadAll(&dec)
		// The check before an HTTP/2 head, on what came with it (any
		// prefix): bad only where the decoder finds the body bad, and, on
		// all of it, bad wherever the decoder does.
		for _, n := range []int{len(data), len(data) / 2, len(data) / 3} {
			br := bufio.NewReaderSize(bytes.NewReader(data[:n]), len(data)+16)
			br.Peek(n)
			ahead := badChunkAhead(br)
			if ahead && !errors.Is(decErr, errBadChunk) || n == len(data) && !ahead && errors.Is(decErr, errBadChunk) {
				t.Fatalf("%q: badChunkAhead of %d bytes says %v, the decoder %v", data, n, ahead, decErr)
			}
		}

		var out bytes.Buffer
		c := &conn{srv: srv, nc: noDeadlines{}, bw: bufio.NewWriter(&out)}
		// The relay reads the instance's reader, c.rel.uc.R; bodyLength
		// keeps awaitBody from waiting on its socket, which it has none of.
		c.rel = relay{framing: bodyLength, uc: &upstream.Conn{R: bufio.NewReader(bytes.NewReader(data))}}
		relayErr := c.relayChunked()
		c.bw.Flush()
		if (decErr == nil) != (relayErr == nil) {
			t.Fatalf("%q: the decoder says %v, the relay %v", data, decErr, relayErr)
		}
		if decErr != nil {
			return
		}
		got, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(out.Bytes())))
		if err != nil || !bytes.Equal(got, decoded) {
			t.Fatalf("%q: relayed as %q, which decodes to %q (%v), want %q", data, out.Bytes(), got, err, decoded)
		}
		var raw []byte
		var body bytes.Buffer
		br := bufio.NewReader(bytes.NewReader(out.Bytes()))
		if err := strictChunks(br, &raw, &body); err != nil || br.Buffered() > 0 {
			t.Fatalf("%q: relayed as %q: %v (%d bytes after)", data, out.Bytes(), err, br.Buffered())
		}
		// With a head in front, net/http reads the same body, trailer and all.
		msg := append([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), out.Bytes()...)
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(msg)), nil)
		if err != nil {
			t.Fatalf("net/http: %v\n%q", err, msg)
		}
		if got, err := io.ReadAll(resp.Body); err != nil || !bytes.Equal(got, decoded) {
			t.Fatalf("net/http reads %q (%v) from %q, want %q", got, err, out.Bytes(), decoded)
		}
	})
}

// fuzzRequests are the requests FuzzResponseHead answers.
var fuzzRequests = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
}

// FuzzResponseHead: whatever response head the proxy accepts from an
// instance, the head it writes to the client is strict and reads the same
// with net/http.
func FuzzResponseHead(f *testing.F) {
	srv := quietServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &conn{srv: srv, nc: noDeadlines{}}
		var err error
		c.rhead, err = readHead(bufio.NewReaderSize(bytes.NewReader(data), 16<<10), nil, maxResponseHead, false)
		if err != nil {
			return
		}
		var resp response
		if err := c.parseResponse(&resp); err != nil {
			return
		}
		for _, raw := range fuzzRequests {
			c.head = []byte(raw)
			var req request
			if err := c.parseRequest(&req); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			c.bw = bufio.NewWriter(&out)
			framing, keep := bodyNone, false
			switch {
			case resp.status == 101:
				if !req.websocket || !resp.websocket {
					continue // 502
				}
				c.writeResponseHead(&req, &resp, bodyNone, false, encNone)
			case resp.status < 200:
				if req.minor == 0 {
					continue // not passed on
				}
				c.writeInterim(&resp)
			default:
				// As exchange frames it.
				framing = framingOf(&req, &resp)
				keep = keepsAlive(&req, framing)
				c.writeResponseHead(&req, &resp, framing, keep, encNone)
			}
			c.bw.Flush()
			head := out.Bytes()
			br := bufio.NewReader(bytes.NewReader(head))
			w, err := readStrictHead(br)
			if err != nil || br.Buffered() > 0 {
				t.Fatalf("answering %q, %q was written as\n%q\n%v", firstLine(raw), data, head, err)
			}
			if !keep && resp.status >= 200 && !headerHasToken(w.header, "Connection", "close") {
				t.Fatalf("answering %q, %q was written without Connection: close:\n%q", firstLine(raw), data, head)
			}
			// net/http reads the head the same, with a body as framed.
			msg := append([]byte(nil), head...)
			switch {
			case framing == bodyLength && resp.contentLength <= 1<<16:
				msg = append(msg, bytes.Repeat([]byte("b"), int(resp.contentLength))...)
			case framing == bodyChunked && req.minor == 1:
				msg = append(msg, "1\r\nb\r\n0\r\n\r\n"...)
			case framing == bodyChunked || framing == bodyUntilClose:
				msg = append(msg, 'b')
			}
			method, _, _ := strings.Cut(raw, " ")
			got, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(msg)), &http.Request{Method: method})
			if err != nil || got.StatusCode != resp.status {
				t.Fatalf("answering %q, %q was written as\n%q\nwhich net/http reads as %v %v", firstLine(raw), data, head, got, err)
			}
			if framing != bodyLength || resp.contentLength <= 1<<16 {
				if _, err := io.ReadAll(got.Body); err != nil {
					t.Fatalf("answering %q, %q: net/http reads no body from %q: %v", firstLine(raw), data, msg, err)
				}
			}
		}
	})
}

// blankLines counts the places a request head could end in data: a bound
// on the requests in it.
func blankLines(data []byte) int {
	return bytes.Count(data, []byte("\n\n")) + bytes.Count(data, []byte("\n\r\n"))
}

// clientRequests splits data into the requests the proxy reads from it, as
// far as they go, for the method and version of each.
func clientRequests(srv *Server, data []byte) []request {
	c := &conn{srv: srv}
	br := bufio.NewReaderSize(bytes.NewReader(data), clientReadBuf)
	var reqs []request
	for {
		var err error
		if c.head, err = readHead(br, nil, srv.opts.MaxHeaderBytes, true); err != nil {
			return reqs
		}
		var req request
		if c.parseRequest(&req) != nil {
			return reqs
		}
		reqs = append(reqs, req) // its slices point into a head not reused
		switch {
		case req.chunked:
			c.dec.reset(br)
			if _, err := io.Copy(io.Discard, &c.dec); err != nil {
				return reqs
			}
		case req.contentLength > 0:
			if n, _ := br.Discard(int(min(req.contentLength, 1<<30))); int64(n) < req.contentLength {
				return reqs
			}
		}
	}
}

// FuzzExchange sends arbitrary client bytes through a proxy to an instance
// that answers arbitrary bytes and closes: no hang, every request the
// instance gets reads with net/http, every response the client gets is
// strict, and there are never more responses than requests.
func FuzzExchange(f *testing.F) {
	fx := startProxy(f, Options{HeaderTimeout: 300 * time.Millisecond, IdleTimeout: 500 * time.Millisecond,
		BodyTimeout: 300 * time.Millisecond, ShutdownGrace: 100 * time.Millisecond})
	srv := quietServer(f)
	f.Fuzz(func(t *testing.T, client, answer []byte) {
		in := startScripted(t, func(sc *scriptConn) {
			sc.SetDeadline(time.Now().Add(time.Second))
			sc.next()
			sc.Write(answer)
		})
		set := in.set("s", 20*time.Millisecond)
		fx.srv.SetRoutes([]Route{{Port: 1, Set: set}})
		t.Cleanup(set.Backends()[0].Down)

		cl := dialRaw(t, fx.addr)
		cl.c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := cl.c.Write(client); err != nil {
			return // the proxy refused and closed while we wrote
		}
		cl.c.CloseWrite()
		reqs := clientRequests(srv, client)
		finals := 0
		for {
			if _, err := cl.br.Peek(1); err != nil {
				if isTimeout(err) {
					t.Fatalf("no end to the exchange after 3 s, after %d responses", finals)
				}
				break // closed
			}
			var req request
			if finals < len(reqs) {
				req = reqs[finals]
			} else {
				req = request{method: []byte("GET"), minor: 1}
			}
			r, err := readStrict(cl.br, string(req.method))
			if errors.Is(err, errTruncated) {
				break // the instance's body ended early; so did the connection
			}
			if err != nil {
				t.Fatalf("response %d: %v\nread: %q", finals, err, r.raw)
			}
			if r.status < 200 && r.status != 101 {
				if req.minor == 0 {
					t.Fatalf("response %d: an interim %d to an HTTP/1.0 request", finals, r.status)
				}
				continue
			}
			finals++
			if r.status == 101 {
				io.Copy(io.Discard, cl.br) // the tunnel's bytes
				break
			}
		}
		if bound := blankLines(client) + 1; finals > bound {
			t.Fatalf("%d responses to at most %d requests", finals, bound)
		}
		for _, seen := range in.requests() {
			var uerr *url.Error
			if seen.err != nil && !errors.As(seen.err, &uerr) {
				t.Fatalf("the instance got a request net/http cannot read: %v\n%q", seen.err, seen.head)
			}
		}
	})
}
