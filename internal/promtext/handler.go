package promtext

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
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
			gw := gzip.NewWriter(&z)
			gw.Write(body) // writes to memory: no error
			gw.Close()
			body = z.Bytes()
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})
}

// acceptsGzip reports whether Accept-Encoding lists gzip with a weight
// above 0 (RFC 9110, 12.5.3).
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
						q = f
					}
				}
			}
			return q > 0
		}
	}
	return false
}
