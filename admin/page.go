package admin

import (
	"html/template"
	"net/url"
	"sync"
)

// pageTemplate has two templates: "page", the whole page, and "status",
// its part that the page's script fetches from /fragment every 2 s and puts
// in place. Actions are forms (POST, with the token), which the script
// sends with fetch to show their outcome; they work without it too.
// Parsed when the page is first served, not at process start nor when the
// admin listener is set up: every upgrade starts a process, and most
// never serve the page.
var pageTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("admin").Funcs(template.FuncMap{
		"action":      newActionForm,
		"servicePath": servicePath,
	}).Parse(pageHTML + statusHTML))
})

// actionForm is one action's form: where it posts, its button, the
// question to confirm it with ("" none) and the token.
type actionForm struct {
	URL, Label, Confirm, Token string
}

func newActionForm(url, label, confirm, token string) actionForm {
	return actionForm{URL: url, Label: label, Confirm: confirm, Token: token}
}

// servicePath is the URL of an action on the named service.
func servicePath(name, verb string) string {
	return "/api/services/" + url.PathEscape(name) + "/" + verb
}

const pageHTML = `{{define "page"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>smoothserve</title>
<style nonce="{{.Nonce}}">
body{font:14px/1.45 system-ui,sans-serif;margin:1.2em 2em;color:#222;background:#f6f6f6}
h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.1em;margin:.3em 0}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:.8em 0;overflow-x:auto}
table{border-collapse:collapse;margin:.4em 0}
th,td{padding:.15em .8em;text-align:left;border-bottom:1px solid #eee;white-space:nowrap}
th{font-weight:600;color:#555}td.n{text-align:right;font-variant-numeric:tabular-nums}
.state,.outcome{padding:.05em .5em;border-radius:.8em;background:#e4e4e4;font-size:.9em}
.st-ready,.st-running,.o-ok{background:#c8f0c8}
.st-starting,.st-draining,.st-stopping,.st-drained,.o-running{background:#fff0b0}
.st-backoff,.st-stopped,.o-failed,.o-aborted{background:#f8c8c8}
.err td{color:#a00;border-bottom:none;white-space:normal}
.muted{color:#666}.mode{margin:.3em 0 .6em}
form.action{display:inline;margin-right:.4em}
button{font:inherit;padding:.1em .7em;cursor:pointer}
#outcomes{list-style:none;padding:0}#outcomes li{margin:.2em 0}
li.ok{color:#060}li.failed{color:#a00}li.pending{color:#666}
#conn{color:#a00}
</style></head>
<body>
<h1>smoothserve</h1>
<div id="status">{{template "status" .}}</div>
<p id="conn" hidden></p>
<ul id="outcomes"></ul>
<script nonce="{{.Nonce}}">
(() => {
  const box = document.getElementById('status');
  const conn = document.getElementById('conn');
  const outcomes = document.getElementById('outcomes');
  let loading = false;
  async function refresh() {
    if (loading) return;
    loading = true;
    try {
      const r = await fetch('/fragment', {cache: 'no-store'});
      if (!r.ok) throw new Error('HTTP ' + r.status);
      box.innerHTML = await r.text();
      conn.hidden = true;
    } catch (e) {
      conn.textContent = 'status not refreshed: ' + e.message;
      conn.hidden = false;
    } finally {
      loading = false;
    }
  }
  setInterval(refresh, 2000);
  function note(label) {
    const li = document.createElement('li');
    const at = new Date().toLocaleTimeString();
    li.className = 'pending';
    li.textContent = at + ' ' + label + ': …';
    outcomes.prepend(li);
    while (outcomes.children.length > 20) outcomes.lastChild.remove();
    return (res) => {
      li.className = res.ok ? 'ok' : 'failed';
      li.textContent = at + ' ' + label + ': ' + (res.ok ? (res.message || 'done') : 'failed: ' + res.error);
    };
  }
  document.addEventListener('submit', async (ev) => {
    const f = ev.target;
    if (!f.classList.contains('action')) return;
    ev.preventDefault();
    if (f.dataset.confirm && !confirm(f.dataset.confirm)) return;
    const done = note(f.dataset.label);
    let res;
    try {
      const r = await fetch(f.action, {method: 'POST', headers: {'X-CSRF-Token': f.elements.csrf.value}});
      res = await r.json().catch(() => ({ok: false, error: 'HTTP ' + r.status}));
    } catch (e) {
      res = {ok: false, error: e.message};
    }
    done(res);
    refresh();
  });
})();
</script>
</body></html>
{{end}}`

const statusHTML = `{{define "status"}}
<p>pid <b>{{.Pid}}</b>, up <b>{{.Uptime}}</b> <span class="muted">(since {{.StartedAt}}; as of {{.Now}})</span>{{if .Host}}; host <span class="state st-{{.Host}}">{{.Host}}</span>{{if .HostSince}} <span class="muted">(since {{.HostSince}}: /health answers 503)</span>{{end}}{{end}}</p>
<p class="mode">{{if .ReadOnly}}<span class="muted">read-only: set AdminAuth to allow actions</span>
{{- else if .User}}signed in as <b>{{.User}}</b> &nbsp;{{template "form" (action "/api/upgrade" "upgrade smoothserve" "Replace smoothserve by its binary as it is on disk now?" .Token)}}
{{- else}}<span class="muted">read-only until you</span> <a href="/login">log in</a>{{end}}</p>
{{range .Services}}<section class="service" id="service-{{.Name}}">
<h2>{{.Name}} <span class="state st-{{.State}}">{{.State}}</span></h2>
<p>port {{.Port}} · hosts {{.Hosts}} · instance ports {{.Ports}}</p>
{{if $.User}}<p class="actions">
{{- if eq .State "running"}}{{template "form" (action (servicePath .Name "restart") (print "restart " .Name) "" $.Token)}}
{{- template "form" (action (servicePath .Name "stop") (print "stop " .Name) (print "Stop " .Name "? Its requests get 503 until it is started.") $.Token)}}{{end}}
{{- if eq .State "stopped"}}{{template "form" (action (servicePath .Name "start") (print "start " .Name) "" $.Token)}}{{end}}</p>
{{end}}<table>
<thead><tr><th>slot</th><th>port</th><th>pid</th><th>state</th><th>in flight</th><th>served</th><th>restarts</th><th>uptime</th>
{{- if .Usage}}<th>cpu</th><th>memory</th>{{end}}</tr></thead>
<tbody>{{$usage := .Usage}}{{range .Instances}}
<tr class="instance"><td class="n">{{.Slot}}</td><td class="n">{{.Port}}</td><td class="n">{{.Pid}}</td><td><span class="state st-{{.State}}">{{.State}}</span></td><td class="n">{{.Inflight}}</td><td class="n">{{.Served}}</td><td class="n">{{.Restarts}}</td><td class="n">{{.Uptime}}</td>
{{- if $usage}}<td class="n">{{.CPU}}</td><td class="n">{{.Memory}}</td>{{end}}</tr>
{{- if .Error}}<tr class="err"><td></td><td colspan="7">{{.Error}}</td></tr>{{end}}
{{- else}}<tr><td colspan="8" class="muted">no instances</td></tr>{{end}}
</tbody></table>
{{with .Rollout}}<p class="rollout">last rollout: {{.Trigger}}, {{.When}} ({{.Ago}} ago): <span class="outcome o-{{.Outcome}}">{{.Outcome}}</span>
{{- if .Took}} in {{.Took}}{{end}}, {{.Replaced}} replaced{{if .Error}}: {{.Error}}{{end}}</p>
{{- else}}<p class="rollout muted">no rollout yet</p>{{end}}
</section>
{{else}}<p class="muted">no services</p>
{{end}}{{end}}
{{define "form"}}<form class="action" method="post" action="{{.URL}}" data-label="{{.Label}}"{{if .Confirm}} data-confirm="{{.Confirm}}"{{end}}>
<input type="hidden" name="csrf" value="{{.Token}}"><button type="submit">{{.Label}}</button></form>{{end}}`
