package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"smoothserve/control/api"
	"smoothserve/internal/syncbuf"
)

func TestWriteLast(t *testing.T) {
	var long strings.Builder
	for i := range 20000 { // 20000 lines of 11 bytes: several chunks
		fmt.Fprintf(&long, "line %05d\n", i)
	}
	tests := []struct {
		text string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"a\nb\nc", 1, "c"}, // a last line without its newline
		{"a\nb\nc", 2, "b\nc"},
		{"a\n\n\nb\n", 3, "\n\nb\n"}, // empty lines count
		{"a\nb\n", 0, ""},
		{"", 5, ""},
		{long.String(), 3, "line 19997\nline 19998\nline 19999\n"},
		{long.String(), 12000, long.String()[8000*11:]},
	}
	for _, tt := range tests {
		f := tempFile(t, tt.text)
		var out bytes.Buffer
		end, err := writeLast(f, tt.n, &out)
		if err != nil || out.String() != tt.want || end != int64(len(tt.text)) {
			t.Errorf("writeLast(%.20q…, %d) = %d, %v, wrote %.40q; want %d and %.40q",
				tt.text, tt.n, end, err, out.String(), len(tt.text), tt.want)
		}
	}
}

func tempFile(t *testing.T, text string) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.log")
	write(t, p, text)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func fastFollow(t *testing.T) {
	was := followEvery
	followEvery = 5 * time.Millisecond
	t.Cleanup(func() { followEvery = was })
}

// following runs showLog -f on path until the test ends.
func following(t *testing.T, path string, n int) (out, notes *syncbuf.Buffer) {
	t.Helper()
	fastFollow(t)
	out, notes = &syncbuf.Buffer{}, &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- showLog(ctx, path, n, true, out, notes) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("showLog -f: %v", err)
		}
	})
	return out, notes
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// waitText waits until b holds want.
func waitText(t *testing.T, b *syncbuf.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.String() != want {
		if time.Now().After(deadline) {
			t.Fatalf("output %q, want %q", b.String(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFollowAcrossRenameAndTruncate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.log")
	write(t, path, "one\ntwo\nthree\n")
	out, notes := following(t, path, 2)
	waitText(t, out, "two\nthree\n")
	appendTo(t, path, "four\n")
	waitText(t, out, "two\nthree\nfour\n")

	// Rotation by rename: what the writer adds to the old file before the
	// new one appears is still shown, then the new file from its start.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path+".1", "five\n")
	waitText(t, out, "two\nthree\nfour\nfive\n")
	appendTo(t, path, "six\nseven\n")
	waitText(t, out, "two\nthree\nfour\nfive\nsix\nseven\n")
	appendTo(t, path+".1", "lost\n") // the old file is no longer followed

	// copytruncate: the file shrinks in place and is read from its start.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, "8\n")
	waitText(t, out, "two\nthree\nfour\nfive\nsix\nseven\n8\n")
	appendTo(t, path, "9\n")
	waitText(t, out, "two\nthree\nfour\nfive\nsix\nseven\n8\n9\n")

	got := notes.String()
	if !strings.Contains(got, path+" was replaced (rotated); following the new file") ||
		!strings.Contains(got, path+" was truncated; following it from its start") {
		t.Errorf("notes %q, want one of the rotation and one of the truncation", got)
	}
}

// A file truncated and written past where it was read to between two
// polls is told by its bytes before that point, not by its size.
func TestFollowerSeesATruncationOutgrown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.log")
	write(t, path, "short\n")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var out, notes bytes.Buffer
	fl := newFollower(path, f, 6, &out, &notes)
	defer f.Close()
	appendTo(t, path, "more\n")
	if err := fl.poll(); err != nil || out.String() != "more\n" || notes.Len() != 0 {
		t.Fatalf("poll after an append: %v, wrote %q, noted %q", err, out.String(), notes.String())
	}
	out.Reset()
	write(t, path, "rotated away, and a longer line written since\n") // truncates, writes past 11
	if err := fl.poll(); err != nil || out.String() != "rotated away, and a longer line written since\n" ||
		!strings.Contains(notes.String(), "was truncated") {
		t.Errorf("poll after a truncation outgrown: %v, wrote %q, noted %q", err, out.String(), notes.String())
	}
	out.Reset()
	if err := fl.poll(); err != nil || out.Len() != 0 {
		t.Errorf("poll with nothing new: %v, wrote %q", err, out.String())
	}
}

func TestFollowWaitsForTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.log")
	out, notes := following(t, path, 10)
	waitText(t, notes, "smoothtool: no log yet at "+path+"; waiting for it\n")
	appendTo(t, path, "first\n")
	waitText(t, out, "first\n")
}

// installValid writes a smoothserve.yaml with two services, api and web,
// and LogDir/web.log; it returns the config and the log folder.
func installValid(t *testing.T) (config, socket, logDir string) {
	t.Helper()
	config, socket = install(t)
	dir := filepath.Dir(config)
	for i, name := range []string{"api", "web"} {
		write(t, filepath.Join(dir, "services", name+".yaml"), fmt.Sprintf(
			"name: %s\nstart_instance_port: %d\ninstance_count: 1\nexecutable_path: /bin/sh\nserver_name: %s.test\n",
			name, 9100+10*i, name))
	}
	logDir = filepath.Join(dir, "logs")
	var lines strings.Builder
	for i := 1; i <= 12; i++ {
		lines.WriteString("web line " + strconv.Itoa(i) + "\n")
	}
	write(t, filepath.Join(logDir, "web.log"), lines.String())
	return config, socket, logDir
}

func TestLogsOfAService(t *testing.T) {
	config, _, _ := installValid(t)
	code, out, errOut := runTool("logs", "web", "-c", config)
	if want := "web line 3\n"; code != 0 || !strings.HasPrefix(out, want) || !strings.HasSuffix(out, "web line 12\n") ||
		strings.Count(out, "\n") != 10 {
		t.Errorf("logs web: exit %d, stdout %q, stderr %q; want its last 10 lines", code, out, errOut)
	}
	code, out, _ = runTool("-logs", "web", "-n", "1", "-c", config)
	if code != 0 || out != "web line 12\n" {
		t.Errorf("-logs web -n 1: exit %d, stdout %q", code, out)
	}
	code, out, errOut = runTool("logs", "api", "-c", config)
	if code != 1 || out != "" || !strings.Contains(errOut, "no log yet at ") {
		t.Errorf("logs of a service that never ran: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = runTool("logs", "shop", "-c", config)
	if want := `smoothtool: unknown service "shop": the services are api, web (all: smoothserve's own log)` + "\n"; code != 1 || errOut != want {
		t.Errorf("logs of an unknown service: exit %d, stderr %q, want %q", code, errOut, want)
	}
}

// With broken service files the daemon's services are the known ones.
func TestLogsKnowsTheDaemonsServices(t *testing.T) {
	config, socket := install(t)
	serveFake(t, socket)
	code, _, errOut := runTool("logs", "shop", "-c", config)
	if code != 1 || !strings.HasPrefix(errOut, `smoothtool: unknown service "shop": the services are api, web (all: smoothserve's own log); the service files do not load: `) ||
		!strings.Contains(errOut, "instance_cout: unknown key") {
		t.Errorf("logs shop: exit %d, stderr %q", code, errOut)
	}
}

func TestLogsAllWithoutDaemon(t *testing.T) {
	config, _, logDir := installValid(t)
	code, out, errOut := runTool("logs", "all", "-c", config)
	if code != 1 || out != "" || !strings.Contains(errOut, "smoothserve is not running, and there is no "+filepath.Join(logDir, "smoothserve.log")) ||
		!strings.Contains(errOut, "journalctl -u smoothserve") {
		t.Errorf("logs all, no daemon, no log: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	write(t, filepath.Join(logDir, "smoothserve.log"), "started\nstopped\n")
	code, out, errOut = runTool("logs", "all", "-c", config)
	if code != 0 || out != "started\nstopped\n" || !strings.Contains(errOut, "smoothserve is not running; ") {
		t.Errorf("logs all, no daemon: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// startWithStderr starts a sleeping process with stderr as given.
func startWithStderr(t *testing.T, stderr any) int {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	switch e := stderr.(type) {
	case *os.File:
		cmd.Stderr = e
	case *bytes.Buffer:
		cmd.Stderr = e // a pipe
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func TestLogsAllFindsTheDaemonsStderr(t *testing.T) {
	config, socket, logDir := installValid(t)
	logPath := filepath.Join(logDir, "elsewhere.log")
	write(t, logPath, "daemon says hi\n")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	daemon := startWithStderr(t, f)
	serveFakeStatus(t, socket, &api.Status{Pid: daemon})
	code, out, errOut := runTool("logs", "all", "-c", config)
	if code != 0 || out != "daemon says hi\n" {
		t.Errorf("logs all: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	pipe := startWithStderr(t, &bytes.Buffer{})
	if _, err := stderrFile(pipe, 10, true); err == nil || !strings.Contains(err.Error(), "logs to its stderr, which is a pipe, not a file") {
		t.Errorf("stderr a pipe: %v", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	null := startWithStderr(t, devnull)
	if _, err := stderrFile(null, 10, true); err == nil || !strings.Contains(err.Error(), "which is /dev/null, not a file") {
		t.Errorf("stderr /dev/null: %v", err)
	}
}
