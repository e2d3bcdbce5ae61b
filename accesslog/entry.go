package accesslog

import (
	"strconv"
	"time"
)

// Entry is one request, as a connection knows it: byte slices that point
// into its own buffers, so that making a line allocates nothing.
type Entry struct {
	Time      time.Time // when the request began
	Client    []byte    // the client's address (the one a trusted proxy named, if any)
	Method    []byte
	Target    []byte
	Proto     string // "HTTP/1.1", "HTTP/2.0"
	Status    int
	Bytes     int64         // sent to the client, head and body
	Duration  time.Duration // from the request's first byte to its last byte sent
	Upstream  time.Duration // waiting for and reading from the instance; 0: none asked
	Service   string
	Slot      int // -1: no instance
	Port      []byte
	Retried   bool
	UserAgent []byte
	Referer   []byte
	// Line, when not empty, is the first line of a request that could not
	// be parsed, as it came: logged instead of Method, Target and Proto
	// (the combined format's request, as nginx's $request; JSON's
	// "request", with method, path and proto empty).
	Line []byte
}

// Append appends e's line, in format f, to b.
func (e *Entry) Append(b []byte, f Format) []byte {
	if f == JSON {
		return e.appendJSON(b)
	}
	return e.appendCombined(b)
}

func (e *Entry) appendCombined(b []byte) []byte {
	if len(e.Client) == 0 {
		b = append(b, '-')
	} else {
		b = appendQuoted(b, e.Client) // a trusted proxy's word: escaped all the same
	}
	b = append(b, " - - ["...)
	b = e.Time.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	if len(e.Line) > 0 {
		b = appendQuoted(b, e.Line)
	} else {
		b = appendQuoted(b, e.Method)
		b = append(b, ' ')
		b = appendQuoted(b, e.Target)
		b = append(b, ' ')
		b = append(b, e.Proto...)
	}
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, " \""...)
	b = appendQuotedOr(b, e.Referer)
	b = append(b, "\" \""...)
	b = appendQuotedOr(b, e.UserAgent)
	b = append(b, "\" rt="...)
	b = appendSeconds(b, e.Duration)
	b = append(b, " urt="...)
	if e.Slot < 0 {
		b = append(b, '-')
	} else {
		b = appendSeconds(b, e.Upstream)
	}
	b = append(b, " service="...)
	if e.Service == "" {
		b = append(b, '-')
	} else {
		b = append(b, e.Service...)
	}
	b = append(b, " instance="...)
	b = e.appendInstance(b)
	b = append(b, " retried="...)
	b = strconv.AppendBool(b, e.Retried)
	return append(b, '\n')
}

func (e *Entry) appendInstance(b []byte) []byte {
	if e.Slot < 0 {
		return append(b, '-')
	}
	b = strconv.AppendInt(b, int64(e.Slot), 10)
	b = append(b, ':')
	return append(b, e.Port...)
}

func (e *Entry) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","client":`...)
	b = appendJSONString(b, e.Client)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.Method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.Target)
	b = append(b, `,"proto":"`...)
	b = append(b, e.Proto...)
	b = append(b, '"')
	if len(e.Line) > 0 {
		b = append(b, `,"request":`...)
		b = appendJSONString(b, e.Line)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, `,"duration":`...)
	b = appendSeconds(b, e.Duration)
	b = append(b, `,"upstream_time":`...)
	if e.Slot < 0 {
		b = append(b, "null"...) // as "urt=-": no instance was asked
	} else {
		b = appendSeconds(b, e.Upstream)
	}
	b = append(b, `,"service":`...)
	b = append(b, '"')
	b = append(b, e.Service...) // a service name is a plain word
	b = append(b, '"')
	b = append(b, `,"instance":"`...)
	b = e.appendInstance(b)
	b = append(b, `","retried":`...)
	b = strconv.AppendBool(b, e.Retried)
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, e.UserAgent)
	b = append(b, `,"referer":`...)
	b = appendJSONString(b, e.Referer)
	return append(b, "}\n"...)
}

// appendSeconds writes d in seconds with millisecond precision, as nginx's
// $request_time.
func appendSeconds(b []byte, d time.Duration) []byte {
	ms := d.Milliseconds()
	b = strconv.AppendInt(b, ms/1000, 10)
	b = append(b, '.')
	frac := ms % 1000
	b = append(b, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return b
}

func appendOr(b, v []byte, none byte) []byte {
	if len(v) == 0 {
		return append(b, none)
	}
	return append(b, v...)
}

func appendQuotedOr(b, v []byte) []byte {
	if len(v) == 0 {
		return append(b, '-')
	}
	return appendQuoted(b, v)
}

// appendQuoted escapes what would break a combined line, as nginx does:
// '"', '\\' and bytes outside printable ASCII as \xHH.
func appendQuoted(b, v []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range v {
		if c == '"' || c == '\\' || c < 0x20 || c > 0x7e {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}

// appendJSONString writes v as a JSON string; bytes outside printable
// ASCII are \u00HH, so the line is valid JSON whatever the client sent.
func appendJSONString(b, v []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, c := range v {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
