package proxy

import (
	"net/http"
	"sync/atomic"
	"time"
)

// dateLine is a Date field, "Date: <IMF-fixdate>\r\n", for one second.
type dateLine struct {
	sec  int64
	line []byte // never written once published
}

// dateNow is the Date field of the last second one was asked for: made once
// a second by whichever connection first needs it, read by all.
var dateNow atomic.Pointer[dateLine]

// appendDate appends the Date field for now: the proxy's own answers carry
// one, and so does an instance's that came without (RFC 9110 6.6.1: a
// recipient with a clock adds it when it forwards).
func appendDate(b []byte, now time.Time) []byte {
	sec := now.Unix()
	d := dateNow.Load()
	if d == nil || d.sec != sec {
		line := now.UTC().AppendFormat([]byte("Date: "), http.TimeFormat)
		d = &dateLine{sec: sec, line: append(line, "\r\n"...)}
		dateNow.Store(d)
	}
	return append(b, d.line...)
}
