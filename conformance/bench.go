package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"smoothserve/conformance/recording"
	"smoothserve/internal/freeport"
	"smoothserve/internal/proctree"
)

// Binaries are the programs the suite builds and runs.
type Binaries struct{ Smoothserve, Recorder string }

// Column is one proxy in front of the recorder.
type Column struct {
	Name    string // "smoothserve", "nginx" or "haproxy"
	Version string
	addr    string // where clients reach it
	lane    string // the recorder's lane it forwards to
	logs    func() string
}

// Bench is smoothserve running the recorder, and the other proxies in
// front of the same recorder process, each on a lane of its own.
type Bench struct {
	Columns []*Column
	Missing []string // proxies asked for that cannot run here, and why
	control string   // the recorder's control address
	stops   []func() // in the order they are to run
}

// Port offsets in the block StartBench reserves.
const (
	portSmoothserve = iota
	portInstance    // and the next: the service reserves two
	_
	portControl
	portNginx
	portNginxLane
	portHAProxy
	portHAProxyLane
	portCount
)

// StartBench starts smoothserve with the recorder as its one service,
// then nginx and HAProxy, if asked (names) and installed, in front of the
// recorder. Stop ends everything it started, also when it fails.
func StartBench(dir string, bins Binaries, names []string, cases []Case) (*Bench, error) {
	base, err := freeport.Range(portCount)
	if err != nil {
		return nil, err
	}
	addr := func(offset int) string { return "127.0.0.1:" + strconv.Itoa(base+offset) }
	b := &Bench{control: addr(portControl)}
	scripts := filepath.Join(dir, "scripts.json")
	if err := writeScripts(scripts, cases); err != nil {
		return b, err
	}
	lanes := fmt.Sprintf("nginx=%s,haproxy=%s", addr(portNginxLane), addr(portHAProxyLane))
	ss, err := b.startSmoothserve(filepath.Join(dir, "smoothserve"), bins, base, map[string]string{
		recording.EnvControl: b.control, recording.EnvLanes: lanes, recording.EnvScripts: scripts,
	})
	if err != nil {
		return b, err
	}
	for _, name := range names {
		switch name {
		case "smoothserve":
			b.Columns = append(b.Columns, ss)
		case "nginx":
			b.startOther(nginxSetup, filepath.Join(dir, "nginx"), addr(portNginx), addr(portNginxLane))
		case "haproxy":
			b.startOther(haproxySetup, filepath.Join(dir, "haproxy"), addr(portHAProxy), addr(portHAProxyLane))
		default:
			b.Missing = append(b.Missing, name+": not a proxy the suite knows")
		}
	}
	return b, nil
}

// Stop stops every process the bench started, by pid.
func (b *Bench) Stop() {
	for i := len(b.stops) - 1; i >= 0; i-- {
		b.stops[i]()
	}
	b.stops = nil
}

func writeScripts(path string, cases []Case) error {
	scripts := map[string]recording.Script{}
	for _, c := range cases {
		if c.Answer != nil {
			scripts[c.ID] = c.Answer.Script
		}
	}
	data, err := json.Marshal(scripts)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func (b *Bench) startSmoothserve(dir string, bins Binaries, base int, env map[string]string) (*Column, error) {
	if err := os.MkdirAll(filepath.Join(dir, "services"), 0o755); err != nil {
		return nil, err
	}
	main := fmt.Sprintf("ProxyAddr: 127.0.0.1\nProxyPort: %d\nSubConfigDir: services\nLogDir: logs\n"+
		"ControlSocket: smoothserve.sock\nPidFile: smoothserve.pid\nStateDir: .\n", base+portSmoothserve)
	var service strings.Builder
	fmt.Fprintf(&service, "name: rec\nstart_instance_port: %d\ninstance_count: 1\nexecutable_path: %s\nenv:\n",
		base+portInstance, bins.Recorder)
	for k, v := range env {
		fmt.Fprintf(&service, "  %s: %q\n", k, v)
	}
	if err := os.WriteFile(filepath.Join(dir, "smoothserve.yaml"), []byte(main), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "services", "rec.yaml"), []byte(service.String()), 0o644); err != nil {
		return nil, err
	}
	c, err := startChild("smoothserve", dir, []string{bins.Smoothserve, "--config", filepath.Join(dir, "smoothserve.yaml")}, nil)
	if err != nil {
		return nil, err
	}
	b.stops = append(b.stops, func() { stopSmoothserve(c) })
	col := &Column{Name: "smoothserve", Version: "this tree", addr: "127.0.0.1:" + strconv.Itoa(base+portSmoothserve),
		lane: recording.MainLane, logs: func() string { return c.out.String() + readTail(filepath.Join(dir, "logs", "rec.log")) }}
	if err := waitServing(col.addr, c); err != nil {
		return nil, fmt.Errorf("smoothserve: %w\n%s", err, col.logs())
	}
	return col, nil
}

// stopSmoothserve stops it gracefully (it stops the recorder), then kills
// whatever of it is left, by pid.
func stopSmoothserve(c *child) {
	kids := proctree.Children(c.pid())
	c.stop(syscall.SIGTERM, 5*time.Second)
	for _, pid := range kids {
		syscall.Kill(-pid, syscall.SIGKILL) // the instance's process group
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// otherSetup says how to run nginx or HAProxy.
type otherSetup struct {
	name, command, config string
	argv                  func(dir, config string) []string
	version               func() string
	render                func(dir, listen, upstream string) string
	stopSig               syscall.Signal
}

// startOther starts nginx or HAProxy in dir, listening on listen, in
// front of the recorder's lane at upstream. A proxy that is not installed
// or does not start is noted in b.Missing.
func (b *Bench) startOther(s otherSetup, dir, listen, upstream string) {
	if _, err := exec.LookPath(s.command); err != nil {
		b.Missing = append(b.Missing, s.name+": not installed (make conformance installs it from Debian)")
		return
	}
	if err := b.runOther(s, dir, listen, upstream); err != nil {
		b.Missing = append(b.Missing, s.name+": "+err.Error())
	}
}

func (b *Bench) runOther(s otherSetup, dir, listen, upstream string) error {
	for _, sub := range []string{"", "temp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	config := filepath.Join(dir, s.config)
	if err := os.WriteFile(config, []byte(s.render(dir, listen, upstream)), 0o644); err != nil {
		return err
	}
	c, err := startChild(s.name, dir, s.argv(dir, config), nil)
	if err != nil {
		return err
	}
	b.stops = append(b.stops, func() { c.stop(s.stopSig, 5*time.Second) })
	col := &Column{Name: s.name, Version: s.version(), addr: listen, lane: s.name, logs: c.out.String}
	if err := waitServing(listen, c); err != nil {
		return fmt.Errorf("%w\n%s", err, c.out.String())
	}
	b.Columns = append(b.Columns, col)
	return nil
}

// waitServing waits until a probe through addr gets the recorder's echo.
func waitServing(addr string, c *child) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		problem := probeProblem("ready", probe(addr, "ready"))
		if problem == "" {
			return nil
		}
		if c.exited() {
			return errors.New("exited before serving")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving after 20s: the probe %s", problem)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readTail returns the end of a file, for a failure's message.
func readTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
