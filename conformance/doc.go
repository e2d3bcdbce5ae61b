// Package conformance is a differential suite of raw HTTP/1.1: request
// cases (request lines, Host, framing, header syntax, hop-by-hop fields,
// pipelining) and answer cases (an instance's malformed, ambiguous or
// unusual responses), sent through smoothserve, nginx and HAProxy, each in
// front of the same recording instance (conformance/recorder), and a
// table of how each proxy treated each case:
//
//   - rejected: the proxy answered an error itself, and nothing reached the
//     instance (an answer case: the client got the proxy's 502, or the
//     connection closed, or the answer was cut short);
//   - canonical: what reached the instance re-parses the same with
//     net/http and a strict RFC 9110/9112 reading, and means what the client
//     meant; the client got the instance's answer, well-formed;
//   - ambiguous: a second parser could read what was forwarded differently
//     (bare CR, two lengths, obs-fold, h2c passed on, a Host that is not the
//     target's authority, a malformed answer passed to the client, ...);
//   - desynced: the instance saw more requests than the client sent, or
//     answered some the client never got, or a response reached another
//     request: the probe sent after every case, on a new connection, must
//     get exactly its own answer;
//   - hung: no complete answer and no close within 3 s (or, where the case
//     says, no first answer within 1 s).
//
// What the package guarantees:
//   - A case is judged only by its own requests: the cases of a proxy run
//     one after another, with the recorder's records reset before each;
//     the proxies run side by side on lanes (listeners) of their own.
//   - Every case of the smoothserve column says what smoothserve should do
//     (class and status), and TestConformance fails for each that it does
//     not do; the nginx and HAProxy columns never fail it.
//   - Every process the suite starts is stopped by pid when it ends, and
//     every wait is bounded.
//
// `go test ./conformance` runs the smoothserve column. `make conformance`
// runs all three and prints the table (Markdown); by hand:
//
//	CONFORMANCE_PROXIES=smoothserve,nginx,haproxy go test ./conformance -run TestConformance -v
//
// CONFORMANCE_CASES selects cases by a regular expression on their ids
// ("^A", "K1[5-7]"); CONFORMANCE_OUT names a file to write the table to.
//
// Case ids: L request line, H Host, F Content-Length and
// Transfer-Encoding, K chunked syntax, S smuggling, X header syntax,
// C hop-by-hop fields (Connection, Upgrade, Expect), P pipelining and line
// ends, A the instance's answers.
package conformance
