package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "write the seed corpora of the fuzz targets under testdata/fuzz")

// fuzzSeeds are the seed inputs of each fuzz target, one []byte per
// argument: the usual, the odd but sound, and the attacks the tests name.
var fuzzSeeds = map[string][][]string{
	"FuzzRequestHead": {
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"GET http://b.test/x?q=1 HTTP/1.1\r\nHost: a.test\r\n\r\n"},
		{"GET http://a?q HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"GET https://h#f HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"},
		{"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n"},
		{"GET / HTTP/1.0\r\n\r\n"},
		{"POST / HTTP/1.0\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc"},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Foo, Host, Content-Length\r\nX-Foo: 1\r\nKeep-Alive: 5\r\n\r\n"},
		{"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"},
		{"\r\nGET / HTTP/1.1\nHost: a\n\n"},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"POST / HTTP/1.1\r\nHost: a\r\nX-A: x\rTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 05\r\n\r\nhello"},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"},
		{"GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"GET / HTTP/1.1\r\nHost: [::1]:8080\r\nX-Forwarded-For: 1.2.3.4\r\nX-Request-Id: abc\r\n\r\n"},
		{"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nTrailer: X\r\nProxy-Connection: keep-alive\r\n\r\n"},
		{"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9\r\n\r\n"},
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{"GET / HTTP/2.0\r\nHost: a\r\n\r\n"},
		{"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"},
	},
	"FuzzChunked": {
		{"5\r\nhello\r\n0\r\n\r\n"},
		{"5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"},
		{"5 ;a=\"b\"\r\nhello\r\n0\r\n\r\n"},
		{"a\nhelloworld\n0\n\n"},
		{"0\r\n\r\n"},
		{"1\r\na\r\n1\r\nb\r\n0\r\nA: b\r\nC: d\r\n\r\n"},
		{"FFFFFFFFFFFFFFF\r\n"},
		{"5\r\nhellox0\r\n\r\n"},
		{"-1\r\n"},
		{"0x5\r\nhello\r\n0\r\n\r\n"},
		{"5\r\nhel"},
		{"0\r\nbad trailer\r\n\r\n"},
		{"5\r\nhello\r\r\n0\r\n\r\n"},
		{"100\r\n" + strings.Repeat("x", 256) + "\r\n0\r\n\r\n"},
	},
	"FuzzResponseHead": {
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"},
		{"HTTP/1.0 200 OK\r\nX-A: b\r\n\r\n"},
		{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"},
		{"HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\n"},
		{"HTTP/1.1 304 Not Modified\r\nContent-Length: 6\r\nETag: \"x\"\r\n\r\n"},
		{"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
		{"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"},
		{"HTTP/1.1 100 Continue\r\n\r\n"},
		{"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop, Content-Length\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\n"},
		{"HTTP/1.1 200 OK\nX-A: b\nContent-Length: 5\n\n"},
		{"HTTP/1.1 200 \xe9t\xe9\r\nX-A: caf\xe9\r\n\r\n"},
		{"HTTP/1.1 200 O\tK\r\n\r\n"},
		{"HTTP/1.1 200\r\nContent-Length: 5\r\n\r\n"},
		{"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n"},
		{"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"},
		{"HTTP/1.1 2OO OK\r\n\r\n"},
		{"HTTP/2.0 200 OK\r\n\r\n"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n"},
		{"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n"},
		{"HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 9\r\n\r\n"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
		{"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
	},
	"FuzzExchange": {
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0\r\nX-T: 1\r\n\r\n"},
		{"GET / HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.0 200 OK\r\n\r\nuntil the close"},
		{"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nLEAKED"},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\nLEAKED"},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nLEAKED"},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nping", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\npong"},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!"},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", ""},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"},
		{"POST / HTTP/1.1\r\nHost: a\r\nX-A: x\rTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHo", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/2.0 200 OK\r\n\r\n"},
		{"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	},
}

// TestFuzzSeedCorpora checks that every seed of fuzzSeeds is in the
// target's corpus under testdata/fuzz, and writes it there with
// -update-fuzz-seeds.
func TestFuzzSeedCorpora(t *testing.T) {
	for target, seeds := range fuzzSeeds {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, args := range seeds {
			var sb strings.Builder
			sb.WriteString("go test fuzz v1\n")
			for _, a := range args {
				sb.WriteString("[]byte(" + strconv.Quote(a) + ")\n")
			}
			sum := sha256.Sum256([]byte(sb.String()))
			path := filepath.Join(dir, "seed-"+hex.EncodeToString(sum[:8]))
			if *updateFuzzSeeds {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if got, err := os.ReadFile(path); err != nil || string(got) != sb.String() {
				t.Errorf("%s: seed %q is missing (%v); run go test ./proxy/ -run TestFuzzSeedCorpora -update-fuzz-seeds", target, args, err)
			}
		}
	}
}
