package conformance

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"smoothserve/conformance/recording"
)

// Result is how one proxy treated one case.
type Result struct {
	Class   Class
	Status  string        // the final statuses the client got, joined by ","; "closed": none
	Elapsed time.Duration // until the answers were complete or the connection closed
	Notes   []string      // why this class
}

// classify judges a case from what the client saw and what reached the
// instance. The checks go from the worst class down: a desync hides
// everything else, then a hang, then what reached either side.
func classify(c *Case, ex *exchange, recs []recording.Record) (res Result) {
	res = Result{Status: statuses(ex), Elapsed: ex.elapsed}
	if ex.err != nil {
		res.Class, res.Notes = Hung, []string{"cannot connect: " + ex.err.Error()}
		return res
	}
	forwarded, retries := caseRecords(recs)
	if d := desyncs(c, ex, forwarded, recs); len(d) > 0 {
		res.Class, res.Notes = Desynced, d
		return res
	}
	defer func() {
		if retries > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("the proxy sent the same request %d more times", retries))
		}
	}()
	switch {
	case !ex.complete && !ex.closed:
		res.Class, res.Notes = Hung, []string{fmt.Sprintf("no complete answer within %v", answerDeadline)}
		return res
	case c.Prompt > 0 && (ex.first < 0 || ex.first > c.Prompt):
		res.Class, res.Notes = Hung, []string{fmt.Sprintf("first answer after %v, not within %v", ex.first.Round(time.Millisecond), c.Prompt)}
		return res
	}
	if c.Answer != nil {
		res.Class, res.Notes = classifyAnswer(c, ex, forwarded)
	} else {
		res.Class, res.Notes = classifyRequest(c, ex, forwarded, recs)
	}
	return res
}

// caseRecords returns the complete requests of the case itself: not the
// probe's, not one begun in an earlier case, and not a retry (the same
// bytes again on another connection: a proxy may resend an idempotent
// request the instance closed on without an answer).
func caseRecords(recs []recording.Record) (forwarded []recording.Record, retries int) {
	for _, r := range recs {
		if !r.Complete || r.Carried || strings.HasPrefix(r.Target, recording.ProbePath) {
			continue
		}
		if slices.ContainsFunc(forwarded, func(f recording.Record) bool { return f.Conn != r.Conn && bytes.Equal(f.Raw, r.Raw) }) {
			retries++
			continue
		}
		forwarded = append(forwarded, r)
	}
	return forwarded, retries
}

// desyncs lists the ways a request or response of the case went astray.
func desyncs(c *Case, ex *exchange, forwarded, all []recording.Record) []string {
	var d []string
	index := map[int]int{}
	for i, r := range forwarded {
		index[r.Seq] = i
	}
	last := -1
	for _, r := range ex.responses {
		if r.seq == 0 {
			continue
		}
		i, ok := index[r.seq]
		switch {
		case !ok:
			d = append(d, fmt.Sprintf("got the instance's answer to another request (seq %d)", r.seq))
		case i <= last:
			d = append(d, "answers out of order")
		}
		last = max(last, i)
	}
	if len(forwarded) > len(c.Want) {
		d = append(d, fmt.Sprintf("the instance saw %d requests, the client sent %d", len(forwarded), len(c.Want)))
	}
	for _, r := range forwarded {
		if strings.HasPrefix(r.Target, "/smuggled") && !wantsTarget(c, "/smuggled") {
			d = append(d, "a smuggled request reached the instance")
		}
	}
	if len(ex.stray) > 0 {
		d = append(d, fmt.Sprintf("%d bytes after the last answer: %.40q", len(ex.stray), ex.stray))
	}
	for _, r := range all {
		switch {
		case r.Carried && r.Complete:
			d = append(d, "a request begun before this case ended in it")
		case strings.HasPrefix(r.Target, recording.ProbePath) && !bytes.HasPrefix(r.Raw, []byte("GET "+recording.ProbePath)):
			d = append(d, fmt.Sprintf("the next request reached the instance as %.40q", r.Raw))
		}
	}
	if p := probeProblem(c.ID, ex.probe); p != "" {
		d = append(d, "the next request "+p)
	}
	return d
}

func wantsTarget(c *Case, target string) bool {
	for _, w := range c.Want {
		if w.Target == target {
			return true
		}
	}
	return false
}

// probeProblem says what is wrong with the answer to the probe, if
// anything: it must be the instance's echo of it, and nothing more.
func probeProblem(id string, p *exchange) string {
	switch {
	case p == nil || p.err != nil:
		return "could not be sent"
	case !p.complete && p.closed:
		return "was closed unanswered"
	case !p.complete:
		return "got no answer"
	}
	r := p.responses[len(p.responses)-1]
	want := fmt.Sprintf("target=%q", recording.ProbePath+id)
	if r.status != 200 || r.seq == 0 || !bytes.Contains(r.body, []byte(want)) || r.err != "" {
		return "got " + summary(r)
	}
	return ""
}

// summary shows a response in a few words.
func summary(r response) string {
	if r.err != "" {
		return fmt.Sprintf("an unreadable answer %.40q", r.raw)
	}
	return fmt.Sprintf("%d %.40q", r.status, r.body)
}

// statuses lists the final statuses the client got.
func statuses(ex *exchange) string {
	var ss []string
	for _, r := range ex.responses {
		switch {
		case r.interim:
		case r.http09:
			ss = append(ss, "0.9")
		case r.err != "":
			ss = append(ss, "malformed")
		case r.status == 0 && r.cut:
			ss = append(ss, "cut")
		case r.cut:
			ss = append(ss, strconv.Itoa(r.status)+" cut")
		case r.complete:
			ss = append(ss, strconv.Itoa(r.status))
		}
	}
	if len(ss) == 0 && ex.closed {
		return "closed"
	}
	return strings.Join(ss, ",")
}

// classifyRequest judges a request case that neither desynced nor hung.
func classifyRequest(c *Case, ex *exchange, forwarded, all []recording.Record) (Class, []string) {
	var notes []string
	if len(forwarded) == 0 {
		for _, r := range all {
			if r.Aborted && !r.Carried && !strings.HasPrefix(r.Target, recording.ProbePath) {
				notes = append(notes, fmt.Sprintf("the instance got %d bytes of a request, then the proxy closed", len(r.Raw)))
			}
		}
		for _, r := range ex.responses {
			if !r.interim && r.status > 0 && r.status < 400 {
				notes = append(notes, fmt.Sprintf("the proxy answered %d itself", r.status))
			}
		}
		return Rejected, notes
	}
	answered := 0
	for _, r := range ex.responses {
		if r.seq > 0 {
			answered++
			notes = append(notes, responseProblems("answer", r)...)
		}
	}
	if answered < len(forwarded) {
		return Desynced, []string{fmt.Sprintf("the instance answered %d requests, the client got %d of its answers", len(forwarded), answered)}
	}
	for i, r := range forwarded {
		for _, issue := range lintRequest(r.Raw) {
			notes = append(notes, "forwarded: "+issue)
		}
		if i < len(c.Want) {
			notes = append(notes, meaningProblems(r.Raw, c.Want[i])...)
		}
	}
	if len(notes) > 0 {
		return Ambiguous, notes
	}
	return Canonical, nil
}

// classifyAnswer judges an answer case that neither desynced nor hung.
func classifyAnswer(c *Case, ex *exchange, forwarded []recording.Record) (Class, []string) {
	a := c.Answer
	var final *response
	var notes []string
	for i := range ex.responses {
		r := &ex.responses[i]
		if !r.interim {
			final = r
			break
		}
		notes = append(notes, responseProblems("interim", *r)...)
	}
	switch {
	case final == nil:
		return Rejected, []string{"closed before any answer"}
	case final.cut:
		return Rejected, []string{"the answer was cut short"}
	case final.err == "" && proxyError(final.status) && final.status != a.Status:
		return Rejected, nil
	}
	notes = append(notes, responseProblems("answer", *final)...)
	if a.Status == 0 {
		notes = append(notes, "the instance's answer has no one meaning, yet the client got one")
	} else if final.err == "" && final.status != a.Status {
		notes = append(notes, fmt.Sprintf("status %d, the instance meant %d", final.status, a.Status))
	}
	if a.Status != 0 && final.err == "" && string(final.body) != a.Body {
		notes = append(notes, fmt.Sprintf("body %.30q, the instance meant %.30q", final.body, a.Body))
	}
	for _, r := range forwarded {
		for _, issue := range lintRequest(r.Raw) {
			notes = append(notes, "forwarded: "+issue)
		}
	}
	if len(notes) > 0 {
		return Ambiguous, notes
	}
	return Canonical, nil
}

// proxyError reports whether a status is one a proxy answers a bad
// answer with.
func proxyError(status int) bool {
	return status == 500 || status == 502 || status == 503 || status == 504
}

// responseProblems lists what is wrong with a response the client got.
func responseProblems(what string, r response) []string {
	var notes []string
	if r.err != "" {
		notes = append(notes, what+": "+r.err)
	}
	for _, issue := range r.issues {
		notes = append(notes, what+": "+issue)
	}
	return notes
}

// meaningProblems re-reads a forwarded request with net/http and compares
// it with what the client meant.
func meaningProblems(raw []byte, want Meaning) []string {
	src := bytes.NewReader(raw)
	br := bufio.NewReader(src)
	req, err := http.ReadRequest(br)
	if err != nil {
		return []string{"net/http cannot read the forwarded request: " + err.Error()}
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return []string{"net/http cannot read the forwarded body: " + err.Error()}
	}
	var notes []string
	if left := br.Buffered() + src.Len(); left != 0 {
		notes = append(notes, fmt.Sprintf("net/http ends the forwarded request %d bytes early", left))
	}
	target := req.RequestURI
	if req.URL.IsAbs() {
		target = req.URL.RequestURI()
	}
	if req.Method != want.Method {
		notes = append(notes, fmt.Sprintf("method %q, meant %q", req.Method, want.Method))
	}
	if target != want.Target {
		notes = append(notes, fmt.Sprintf("target %.40q, meant %.40q", target, want.Target))
	}
	if !want.AnyHost && !strings.EqualFold(req.Host, want.Host) {
		notes = append(notes, fmt.Sprintf("host %q, meant %q", req.Host, want.Host))
	}
	if string(body) != want.Body {
		notes = append(notes, fmt.Sprintf("body %.30q, meant %.30q", body, want.Body))
	}
	for _, h := range want.Headers {
		if req.Header.Get(h) == "" {
			notes = append(notes, h+" missing")
		}
	}
	return notes
}
