package promtext

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Handler serves, at each request, the text of a Set that collect fills.
// A Set with an error is answered 500 with the error, as client_golang's
// handler does by default: a scrape that fails is seen, a partial one is
// not. The text is gzipped for a client that accepts gzip (Prometheus
// does).
func Handler(collect func(*Set)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s Set
		collect(&s)
		var text bytes.Buffer
		if _, err := s.WriteTo(&text); err != nil {
			http.Error(w, "collecting metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ContentType)
		h.Add("Vary", "Accept-Encoding")
		body := text.Bytes()
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			var z bytes.Buffer
			gw := gzipWriters.Get().(*gzip.Writer)
			gw.Reset(&z)
			gw.Write(body) // writes to memory: no error
			gw.Close()
			gzipWriters.Put(gw)
			body = z.Bytes()
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})
}

// gzipWriters keeps gzip's writers between scrapes: each holds about
// 800 KB of compressor state, and Prometheus asks for gzip at every one.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// acceptsGzip reports whether Accept-Encoding takes gzip: lists it, or
// "*" without listing it, with a weight above 0 (RFC 9110, 12.5.3).
func acceptsGzip(values []string) bool {
	gzipQ, starQ := -1.0, -1.0
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			var dst *float64
			switch coding = strings.TrimSpace(coding); {
			case strings.EqualFold(coding, "gzip"):
				dst = &gzipQ
			case coding == "*":
				dst = &starQ
			default:
				continue
			}
			*dst = 1
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
						*dst = f
					}
				}
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}
