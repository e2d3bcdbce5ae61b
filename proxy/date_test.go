package proxy

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// Every answer the client gets carries one Date, over HTTP/1.1 as over
// HTTP/2: the instance's when it sent one, else the proxy's own, as for
// the proxy's own answers (RFC 9110 6.6.1).
func TestEveryAnswerHasADate(t *testing.T) {
	t.Parallel()
	const theirs = "Sat, 01 Jan 2000 00:00:00 GMT"
	for _, tt := range []struct {
		name, answer string
		status       int
		date         string // "" for now's
	}{
		{"instance without", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi\n", 200, ""},
		{"instance with", "HTTP/1.1 200 OK\r\ndate: " + theirs + "\r\nContent-Length: 3\r\n\r\nhi\n", 200, theirs},
		{"instance without, no body", "HTTP/1.1 204 No Content\r\n\r\n", 204, ""},
		{"the proxy's own", "HTTP/1.1 2000 what\r\n\r\n", 502, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := startScripted(t, answerEach(tt.answer))
			f := startTLSProxy(t, Options{}, Route{Port: 2, Set: in.set("s", 30*time.Second)})
			for _, h2 := range []bool{false, true} {
				before := time.Now().Truncate(time.Second)
				resp, err := f.client(h2).Get("https://a.test/")
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				after := time.Now()
				dates := resp.Header.Values("Date")
				if resp.StatusCode != tt.status || len(dates) != 1 {
					t.Fatalf("over %s: %d with Date %q; want %d with one Date", resp.Proto, resp.StatusCode, dates, tt.status)
				}
				if tt.date != "" {
					if dates[0] != tt.date {
						t.Errorf("over %s: Date %q, want the instance's %q", resp.Proto, dates[0], tt.date)
					}
					continue
				}
				d, err := http.ParseTime(dates[0])
				if err != nil || d.Before(before) || d.After(after) || dates[0] != d.Format(http.TimeFormat) {
					t.Errorf("over %s: Date %q (%v), want an IMF-fixdate between %v and %v", resp.Proto, dates[0], err, before, after)
				}
			}
		})
	}
}

// The Date field is made once a second, and each second's is its own.
func TestAppendDate(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 17, 0, 0, 0, time.FixedZone("x", 3600))
	for _, tt := range []struct {
		at   time.Time
		want string
	}{
		{t0, "Date: Sat, 05 Dec 2026 16:00:00 GMT\r\n"},
		{t0.Add(900 * time.Millisecond), "Date: Sat, 05 Dec 2026 16:00:00 GMT\r\n"},
		{t0.Add(time.Second), "Date: Sat, 05 Dec 2026 16:00:01 GMT\r\n"},
		{t0, "Date: Sat, 05 Dec 2026 16:00:00 GMT\r\n"}, // the clock stepped back
	} {
		if got := string(appendDate([]byte("x"), tt.at)); got != "x"+tt.want {
			t.Errorf("appendDate at %v = %q, want %q", tt.at, got, "x"+tt.want)
		}
	}
	now := time.Now()
	appendDate(nil, now)
	b := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { b = appendDate(b[:0], now) }); n != 0 {
		t.Errorf("appendDate within a second allocates %v times, want 0", n)
	}
}
