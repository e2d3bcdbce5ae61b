package conformance

import (
	"fmt"
	"regexp"
	"strings"
)

// lintRequest checks a request as it reached the instance, and returns
// what a strict parser objects to.
func lintRequest(raw []byte) []string {
	he := headEnd(raw)
	if he < 0 {
		return []string{"head not complete"}
	}
	lines, issues := splitLines(raw[:he])
	if len(lines) == 0 {
		return append(issues, "no request line")
	}
	words := strings.Split(lines[0], " ")
	if len(words) != 3 {
		return append(issues, fmt.Sprintf("request line %.40q", lines[0]))
	}
	method, target, version := words[0], words[1], words[2]
	if !isToken(method) {
		issues = append(issues, fmt.Sprintf("method %.20q", method))
	}
	if version != "HTTP/1.1" && version != "HTTP/1.0" {
		issues = append(issues, fmt.Sprintf("version %.20q", version))
	}
	authority, problem := readTarget(method, target)
	if problem != "" {
		issues = append(issues, problem)
	}
	fields, more := readFields(lines[1:])
	issues = append(issues, more...)
	chunked, more := lintFraming(fields, version == "HTTP/1.0")
	issues = append(issues, more...)
	issues = append(issues, lintHost(fields, authority, version == "HTTP/1.0")...)
	issues = append(issues, lintHopByHop(fields)...)
	if chunked {
		issues = append(issues, lintChunked(raw[he:])...)
	}
	return issues
}

// readTarget checks a request-target and returns the authority of an
// absolute-form one.
func readTarget(method, target string) (authority, problem string) {
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return "", fmt.Sprintf("byte 0x%02x in the target", c)
		}
	}
	lower := strings.ToLower(target)
	switch {
	case strings.HasPrefix(target, "/"):
		return "", ""
	case target == "*" && method == "OPTIONS":
		return "", ""
	case strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://"):
		rest := target[strings.Index(target, "//")+2:]
		end := strings.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		authority = rest[:end]
		if authority == "" || strings.Contains(authority, "@") || !validAuthority(authority) {
			return authority, fmt.Sprintf("authority %.40q", authority)
		}
		return authority, ""
	}
	return "", fmt.Sprintf("target %.40q", target)
}

// lintHost checks the Host field, and that it agrees with an absolute-form
// target's authority.
func lintHost(fields []hfield, authority string, http10 bool) []string {
	hosts := values(fields, "Host")
	switch {
	case len(hosts) > 1:
		return []string{fmt.Sprintf("%d Host fields", len(hosts))}
	case len(hosts) == 0 && !http10:
		return []string{"HTTP/1.1 without Host"}
	case len(hosts) == 0:
		return nil
	case !validAuthority(hosts[0]):
		return []string{fmt.Sprintf("Host %.40q", hosts[0])}
	case authority != "" && !strings.EqualFold(authority, hosts[0]):
		return []string{fmt.Sprintf("Host %q differs from the target's authority %q", hosts[0], authority)}
	}
	return nil
}

// lintHopByHop finds what must not pass a proxy: a Connection field
// naming framing or Host (the next hop would drop them), an h2c upgrade.
func lintHopByHop(fields []hfield) []string {
	var issues []string
	for _, v := range values(fields, "Connection") {
		for _, tok := range strings.Split(v, ",") {
			switch t := strings.ToLower(strings.TrimSpace(tok)); t {
			case "host", "content-length", "transfer-encoding":
				issues = append(issues, "Connection names "+t)
			}
		}
	}
	for _, v := range values(fields, "Upgrade") {
		if strings.Contains(strings.ToLower(v), "h2c") {
			issues = append(issues, "Upgrade: h2c passed on")
		}
	}
	if len(values(fields, "HTTP2-Settings")) > 0 {
		issues = append(issues, "HTTP2-Settings passed on")
	}
	return issues
}

// statusLine is what RFC 9112 §4 allows: a 1.x version, a status of
// 100-599, SP, a reason of visible bytes, spaces and tabs.
var statusLine = regexp.MustCompile(`^HTTP/1\.[01] [1-5][0-9][0-9] [\t\x20-\x7e\x80-\xff]*$`)

// lintResponse checks a response as it reached the client: its head, and
// its body if chunked.
func lintResponse(head, body []byte, method string, status int) []string {
	lines, issues := splitLines(head)
	if len(lines) == 0 {
		return append(issues, "no status line")
	}
	if !statusLine.MatchString(lines[0]) {
		issues = append(issues, fmt.Sprintf("status line %.40q", lines[0]))
	}
	fields, more := readFields(lines[1:])
	issues = append(issues, more...)
	chunked, more := lintFraming(fields, strings.HasPrefix(lines[0], "HTTP/1.0"))
	issues = append(issues, more...)
	if chunked && body != nil && bodyAllowed(status, method) {
		issues = append(issues, lintChunked(body)...)
	}
	return issues
}
