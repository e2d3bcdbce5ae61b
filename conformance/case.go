package conformance

import (
	"fmt"
	"strings"
	"time"

	"smoothserve/conformance/recording"
)

// Class is how a proxy treated a case.
type Class int

const (
	Rejected  Class = iota // the proxy answered an error itself; nothing reached the instance
	Canonical              // forwarded canonically, answered with the instance's response
	Ambiguous              // something reached the instance, or the client, that parsers read differently
	Desynced               // a request or response went to, or came from, the wrong place
	Hung                   // no complete answer and no close within the deadline
)

var classNames = [...]string{"rejected", "canonical", "ambiguous", "desynced", "hung"}

func (c Class) String() string { return classNames[c] }

// Meaning is one request the client plausibly meant.
type Meaning struct {
	Method, Target, Host string // Target in origin-form (or "*"); Host "" with AnyHost
	AnyHost              bool   // no Host to check: the client sent none
	Body                 string
	Headers              []string // fields that must reach the instance (the proxies in front add them)
}

// Answer is an answer case's scripted response and what it means.
type Answer struct {
	Script recording.Script
	Status int    // the status the instance meant; 0: its answer has no one meaning
	Body   string // the body it meant, decoded
}

// Expect is what smoothserve should do with a case.
type Expect struct {
	Class  Class
	Status string        // "400", "4xx", "414|431", or "" for any; several final statuses joined by ","
	Within time.Duration // the outcome (answer or close) must come within this; 0: the deadline
}

// A Case is raw bytes a client sends, and what it meant by them.
type Case struct {
	ID, Name string
	Parts    []string      // written in turn, Gap apart
	Gap      time.Duration // between parts
	Want     []Meaning     // the requests the client sent, as it meant them
	Answer   *Answer       // for an answer case: the instance's scripted answer
	Expect   Expect
	// Prompt: the first response must arrive within this after the last
	// part is written, or the case is hung (0: the deadline).
	Prompt time.Duration
}

// Raw is all the bytes of the case.
func (c *Case) Raw() string { return strings.Join(c.Parts, "") }

// methods lists the method of each request sent, for framing responses.
func (c *Case) methods() []string {
	m := make([]string, len(c.Want))
	for i, w := range c.Want {
		m[i] = w.Method
	}
	return m
}

func (e Expect) String() string {
	if e.Status == "" {
		return e.Class.String()
	}
	return e.Class.String() + " " + e.Status
}

// statusMatches reports whether got (statuses joined by ",") fits pattern:
// alternatives split by "|", each status a number with "x" for any digit.
func statusMatches(pattern, got string) bool {
	if pattern == "" {
		return true
	}
	for _, alt := range strings.Split(pattern, "|") {
		if matchStatuses(alt, got) {
			return true
		}
	}
	return false
}

func matchStatuses(pattern, got string) bool {
	ps, gs := strings.Split(pattern, ","), strings.Split(got, ",")
	if len(ps) != len(gs) {
		return false
	}
	for i := range ps {
		if len(ps[i]) != len(gs[i]) {
			return false
		}
		for j := range ps[i] {
			if ps[i][j] != 'x' && ps[i][j] != gs[i][j] {
				return false
			}
		}
	}
	return true
}

// Helpers to write cases with.

const host = "h.test"

// get is the request the client meant by a plain GET of target.
func get(target string) Meaning { return Meaning{Method: "GET", Target: target, Host: host} }

func reject(status string) Expect    { return Expect{Class: Rejected, Status: status} }
func canonical(status string) Expect { return Expect{Class: Canonical, Status: status} }

// rejectNow is a rejection that must come at once, not at a timeout.
func rejectNow(status string) Expect {
	return Expect{Class: Rejected, Status: status, Within: time.Second}
}

// head joins a start line and header lines with CRLF, ending the head.
func head(start string, fields ...string) string {
	var b strings.Builder
	b.WriteString(start + "\r\n")
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// chunked encodes body as one chunk and the last chunk.
func chunked(body string) string {
	if body == "" {
		return "0\r\n\r\n"
	}
	return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
}

// one is a case of one request part.
func one(id, name, raw string, want Meaning, e Expect) Case {
	return Case{ID: id, Name: name, Parts: []string{raw}, Want: []Meaning{want}, Expect: e}
}

// AllCases returns every case: request cases, then answer cases.
func AllCases() []Case {
	var all []Case
	for _, family := range [][]Case{
		requestLineCases(), hostCases(), framingCases(), chunkCases(),
		smugglingCases(), headerCases(), connectionCases(), pipelineCases(),
		answerCases(),
	} {
		all = append(all, family...)
	}
	return all
}
