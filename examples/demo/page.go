package main

import (
	"io"
	"net/http"
	"strconv"
)

// wsPage is /ws.html: a page whose script talks to /ws as a browser app
// does, for a person to watch and for the e2e browser test to read. It
// opens a WebSocket to /ws on the page's own host (same origin, as /ws
// requires), sends "n=1", "n=2", ... every 100 ms, and keeps in
// window.wsLog one record per WebSocket it opened, oldest first:
//
//	state     "connecting", "open" or "closed"
//	sent      how many numbered messages it sent
//	echoes    every message received, in order ("echo: n=1", ...)
//	times     when each echo came, in ms since the page loaded
//	code      the close event's code (1001, 1006, ...), or null while open
//	reason    the close event's reason
//	wasClean  the close event's wasClean
//	errors    how many error events it had
//
// wsOpen() opens one more WebSocket (as an app reconnects) and returns its
// index in wsLog; wsStop(i) stops WebSocket i sending, so that a reader can
// wait for the echo of every message sent.
const wsPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>demo: WebSocket echo</title>
</head>
<body>
<h1>WebSocket echo</h1>
<pre id="status">starting</pre>
<script>
"use strict";
window.wsLog = [];
const timers = [];

window.wsOpen = function () {
  const i = wsLog.length;
  const rec = {state: "connecting", sent: 0, echoes: [], times: [],
    code: null, reason: null, wasClean: null, errors: 0};
  wsLog.push(rec);
  const ws = new WebSocket("ws://" + location.host + "/ws");
  ws.onopen = function () {
    rec.state = "open";
    timers[i] = setInterval(function () {
      if (ws.readyState === WebSocket.OPEN) {
        rec.sent++;
        ws.send("n=" + rec.sent);
      }
    }, 100);
  };
  ws.onmessage = function (ev) {
    rec.echoes.push(String(ev.data));
    rec.times.push(Math.round(performance.now()));
  };
  ws.onerror = function () { rec.errors++; };
  ws.onclose = function (ev) {
    rec.state = "closed";
    rec.code = ev.code;
    rec.reason = ev.reason;
    rec.wasClean = ev.wasClean;
    clearInterval(timers[i]);
  };
  return i;
};

window.wsStop = function (i) { clearInterval(timers[i]); };

setInterval(function () {
  document.getElementById("status").textContent = wsLog.map(function (r, i) {
    const last = r.echoes.length ? r.echoes[r.echoes.length - 1] : "-";
    const end = r.state === "closed" ? " code=" + r.code + " reason=" + JSON.stringify(r.reason) : "";
    return "#" + i + " " + r.state + " sent=" + r.sent + " echoes=" + r.echoes.length + " last=" + last + end;
  }).join("\n");
}, 200);

wsOpen();
</script>
</body>
</html>
`

// serveWSPage answers /ws.html with wsPage.
func serveWSPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(wsPage)))
	io.WriteString(w, wsPage)
}
