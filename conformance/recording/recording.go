// Package recording is what the conformance suite and its recording
// instance (conformance/recorder) share: how the instance is configured,
// what it records of each request that reaches it, the scripted answers it
// can give, and the lenient framing it reads requests with.
//
// The framing is deliberately that of a typical lenient backend (bare LF
// ends a line, Transfer-Encoding naming chunked last wins over
// Content-Length): the suite judges what a proxy forwards with a strict
// parser of its own, and this one only decides where the instance thinks a
// request ends, which is what a smuggled request exploits.
package recording

// Environment of the recorder, set in the service's yaml.
const (
	// EnvControl is host:port of the control listener (GET /records,
	// POST /reset).
	EnvControl = "RECORDER_CONTROL"
	// EnvLanes lists more listeners, one per proxy in front:
	// "nginx=127.0.0.1:1234,haproxy=127.0.0.1:1235". The -port listener
	// is lane MainLane.
	EnvLanes = "RECORDER_LANES"
	// EnvScripts is the path of a JSON file: a map of Script by case id.
	EnvScripts = "RECORDER_SCRIPTS"
)

// MainLane names the listener the instance was started with (-port).
const MainLane = "smoothserve"

// Paths the recorder gives a meaning to, and the header naming a response.
const (
	// AnswerPath + id: answer with Script id instead of the echo.
	AnswerPath = "/answer/"
	// ProbePath + id: the request the suite sends after each case, on a
	// new connection, to see whether anything of the case reaches it.
	ProbePath = "/probe/"
	// SeqHeader is in every echo: the Seq of the request it answers.
	SeqHeader = "X-Recorder-Seq"
)

// A Record is one request, or the start of one, as it reached the instance.
type Record struct {
	Seq      int    // per lane, from 1, in order of arrival
	Conn     int    // the connection it came on, numbered per lane
	Raw      []byte // its bytes as framed: head and body
	Head     bool   // the head is complete
	Complete bool   // the whole request arrived (or could not be framed) and was answered
	Aborted  bool   // the connection ended before it was complete
	Bad      bool   // it could not be framed: answered 400 and the connection closed
	Carried  bool   // it began before the last reset
	Method   string // the request line's first word
	Target   string // the request line's second word
}

// A Script is a raw answer: Raw is written as it is, then the connection
// is closed if Close, or else read on for the next request.
type Script struct {
	Raw   []byte
	Close bool
}
