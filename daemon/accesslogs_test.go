package daemon

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smoothserve/accesslog"
	"smoothserve/config"
)

// TestAReloadThatChangesTheFormatChangesTheLines: the logs were kept by
// path alone, so a reload that changed AccessLogFormat but not AccessLog
// went on writing the old format.
func TestAReloadThatChangesTheFormatChangesTheLines(t *testing.T) {
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	defer d.closeLogs()
	path := filepath.Join(t.TempDir(), "access.log")
	svc := &config.Service{Name: "web"}
	combined := d.logFor(&config.Config{AccessLog: path, AccessLogFormat: config.AccessLogCombined}, svc)
	again := d.logFor(&config.Config{AccessLog: path, AccessLogFormat: config.AccessLogCombined}, svc)
	json := d.logFor(&config.Config{AccessLog: path, AccessLogFormat: config.AccessLogJSON}, svc)
	switch {
	case combined == nil || json == nil:
		t.Fatalf("logs %v %v", combined, json)
	case again != combined:
		t.Error("the same path and format opened a second log")
	case json == combined || json.Format != accesslog.JSON:
		t.Errorf("after the format changed: the same log %v, format %v; want a JSON one", json == combined, json.Format)
	}
	e := accesslog.Entry{Time: time.Now(), Method: []byte("GET"), Target: []byte("/"), Proto: "HTTP/1.1", Status: 200, Slot: -1}
	for _, l := range []*accesslog.Log{combined, json} {
		b := accesslog.Buffer()
		*b = e.Append(*b, l.Format)
		l.Submit(b)
	}
	d.closeLogs()
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"GET / HTTP/1.1" 200 `) || !strings.Contains(string(b), `{"time":`) {
		t.Errorf("want a combined line and a JSON line in the file:\n%s", b)
	}
}
