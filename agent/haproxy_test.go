package agent

import (
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"smoothserve/internal/syncbuf"
)

// TestHAProxyFollowsAgent runs a real HAProxy whose one server is checked
// by the agent, flips the agent's State and reads HAProxy's view of the
// server from its stats socket after each flip. It also shows why Serving
// must say "ready": an agent that answers a plain "up" leaves a drained or
// maintained server out.
func TestHAProxyFollowsAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real HAProxy for several seconds")
	}
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed (bench/install-deps.sh haproxy installs Debian's); skipping the test against a real HAProxy")
	}

	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(web.Close)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &plainUpListener{Listener: raw}
	var state atomic.Int64
	startServeOn(t, ln, func() State { return State(state.Load()) }, nil)

	dir := t.TempDir()
	sock := filepath.Join(dir, "stats.sock")
	cfg := fmt.Sprintf(`global
	stats socket %s mode 600 level admin
defaults
	mode http
	timeout connect 1s
	timeout client 5s
	timeout server 5s
backend be
	server web %s weight 100 check inter 200ms agent-check agent-port %d agent-inter 200ms agent-send "be/web\n"
`, sock, web.Listener.Addr(), raw.Addr().(*net.TCPAddr).Port)
	hp := startHAProxy(t, bin, dir, cfg)

	steps := []struct {
		name      string
		set       func()
		plainUps  int64  // plain "up" answers to give before looking
		status    string // what "show stat" starts the server's status with
		adminBits string // srv_admin_state: 8 forced drain, 1 forced maint
		inLB      string // the backend's usable active servers
		agent     string // what agent_status starts with: the agent was heard
	}{
		// "up ready" passes as a layer 7 check; "drain" and "maint" carry
		// no health word: "CHECKED No status change".
		{name: "serving", set: func() { state.Store(int64(Serving)) }, status: "UP", adminBits: "0", inLB: "1", agent: "L7OK"},
		{name: "draining", set: func() { state.Store(int64(Draining)) }, status: "DRAIN", adminBits: "8", inLB: "0", agent: "CHECKED"},
		{name: "plain up after drain", set: func() { ln.plainUp.Store(true) }, plainUps: 3, status: "DRAIN", adminBits: "8", inLB: "0", agent: "L7OK"},
		{name: "serving again", set: func() { ln.plainUp.Store(false); state.Store(int64(Serving)) }, status: "UP", adminBits: "0", inLB: "1", agent: "L7OK"},
		{name: "maintenance", set: func() { state.Store(int64(Maintenance)) }, status: "MAINT", adminBits: "1", inLB: "0", agent: "CHECKED"},
		{name: "plain up after maint", set: func() { ln.plainUp.Store(true) }, plainUps: 3, status: "MAINT", adminBits: "1", inLB: "0", agent: "L7OK"},
		{name: "serving at last", set: func() { ln.plainUp.Store(false); state.Store(int64(Serving)) }, status: "UP", adminBits: "0", inLB: "1", agent: "L7OK"},
	}
	for _, st := range steps {
		from := ln.answered.Load()
		st.set()
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, err := readView(sock)
			matches := err == nil && strings.HasPrefix(v.status, st.status) && v.adminState == st.adminBits &&
				v.backendAct == st.inLB && strings.HasPrefix(v.agent, st.agent)
			if matches && ln.answered.Load()-from >= st.plainUps {
				t.Logf("%-21s HAProxy: %v", st.name+":", v)
				break
			}
			if time.Now().After(deadline) || hp.exited() {
				t.Fatalf("%s: HAProxy shows %v (err %v) after %d plain ups; want status %s..., srv_admin_state %s, backend act %s, agent %s...\nhaproxy output:\n%s",
					st.name, v, err, ln.answered.Load()-from, st.status, st.adminBits, st.inLB, st.agent, hp.output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// plainUpListener answers "up\n" itself while plainUp is set, instead of
// handing the connection to Serve: what an agent that never says "ready"
// would answer.
type plainUpListener struct {
	net.Listener
	plainUp  atomic.Bool
	answered atomic.Int64 // plain "up" answers given
}

func (l *plainUpListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.plainUp.Load() {
			return c, err
		}
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(c, "up\n"); err == nil {
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
			l.answered.Add(1)
		}
		c.Close()
	}
}

// view is HAProxy's view of the server: from "show stat" its status,
// weight and last agent check, and the number of usable active servers of
// its backend; from "show servers state" its operational state (2 running)
// and administrative state (bits: 1 forced maint, 8 forced drain).
type view struct {
	status, weight, agent, backendAct, opState, adminState string
}

func (v view) String() string {
	return fmt.Sprintf("status=%q weight=%s agent=%q backend act=%s srv_op_state=%s srv_admin_state=%s",
		v.status, v.weight, v.agent, v.backendAct, v.opState, v.adminState)
}

func readView(sock string) (view, error) {
	var v view
	stat, err := askHAProxy(sock, "show stat")
	if err != nil {
		return v, err
	}
	stat = strings.TrimPrefix(stat, "# ")
	row, err := findRow(stat, ",", "be", "web")
	if err != nil {
		return v, fmt.Errorf("show stat: %w", err)
	}
	v.status, v.weight = row["status"], row["weight"]
	v.agent = row["agent_status"] + " " + row["agent_desc"]
	if row, err = findRow(stat, ",", "be", "BACKEND"); err != nil {
		return v, fmt.Errorf("show stat: %w", err)
	}
	v.backendAct = row["act"]
	state, err := askHAProxy(sock, "show servers state be")
	if err != nil {
		return v, err
	}
	// A version line, then "# be_id be_name srv_id srv_name ...".
	_, state, _ = strings.Cut(state, "\n# ")
	row, err = findRow(state, " ", "be", "web")
	if err != nil {
		return v, fmt.Errorf("show servers state: %w", err)
	}
	v.opState, v.adminState = row["srv_op_state"], row["srv_admin_state"]
	return v, nil
}

// findRow returns the row of table (a header line, then one line a row)
// whose first two name columns are backend and server, by column name.
func findRow(table, sep, backend, server string) (map[string]string, error) {
	r := csv.NewReader(strings.NewReader(table))
	r.Comma = rune(sep[0])
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	records, err := r.ReadAll()
	if err != nil || len(records) == 0 {
		return nil, fmt.Errorf("unreadable table %q: %v", table, err)
	}
	header := records[0]
	for _, rec := range records[1:] {
		row := make(map[string]string, len(header))
		for i, name := range header {
			if i < len(rec) {
				row[name] = rec[i]
			}
		}
		if (row["pxname"] == backend || row["be_name"] == backend) && (row["svname"] == server || row["srv_name"] == server) {
			return row, nil
		}
	}
	return nil, fmt.Errorf("no row for %s/%s in %q", backend, server, table)
}

// askHAProxy sends one command to the stats socket and returns the answer.
func askHAProxy(sock, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// haproxy is an HAProxy run in the foreground as the test's child.
type haproxy struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	out  syncbuf.Buffer
}

func startHAProxy(t *testing.T, bin, dir, cfg string) *haproxy {
	t.Helper()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	hp := &haproxy{done: make(chan struct{})}
	hp.cmd = exec.Command(bin, "-db", "-f", path)
	hp.cmd.Stdout, hp.cmd.Stderr = &hp.out, &hp.out
	if err := hp.cmd.Start(); err != nil {
		t.Fatalf("starting haproxy: %v", err)
	}
	go func() {
		hp.cmd.Wait()
		close(hp.done)
	}()
	t.Cleanup(func() {
		// SIGTERM is HAProxy's immediate stop; SIGKILL if it lingers.
		hp.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-hp.done:
		case <-time.After(5 * time.Second):
			hp.cmd.Process.Kill()
			<-hp.done
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("haproxy output:\n%s", hp.output())
		}
	})
	return hp
}

func (hp *haproxy) exited() bool {
	select {
	case <-hp.done:
		return true
	default:
		return false
	}
}

func (hp *haproxy) output() string { return hp.out.String() }
