package promtext

import (
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func parseFamilies(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus' parser: %v\n%s", err, text)
	}
	return mfs
}

func value(mf *dto.MetricFamily) float64 {
	m := mf.GetMetric()[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Summary != nil:
		return float64(m.Summary.GetSampleCount())
	}
	return math.NaN()
}

// TestGoAndProcessFamiliesAreClientGolangs: AddGo and AddProcess write
// the families client_golang's default Go and process collectors expose,
// no more and no fewer, of the same kinds and labels, and the values that
// do not move between two reads are the same as client_golang's.
func TestGoAndProcessFamiliesAreClientGolangs(t *testing.T) {
	start := time.Now()
	var s Set
	s.AddGo()
	s.AddProcess()
	ours := parseFamilies(t, text(t, &s))
	theirs := parseFamilies(t, oracle(t, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})))

	for name, mf := range theirs {
		o := ours[name]
		if o == nil {
			t.Errorf("%s (%v) is missing", name, mf.GetType())
			continue
		}
		if o.GetType() != mf.GetType() {
			t.Errorf("%s is a %v, client_golang's a %v", name, o.GetType(), mf.GetType())
		}
		if got, want := labelNames(o), labelNames(mf); got != want {
			t.Errorf("%s has the labels %q, client_golang's %q", name, got, want)
		}
	}
	for name := range ours {
		if theirs[name] == nil {
			t.Errorf("%s is not client_golang's", name)
		}
	}

	for _, name := range []string{"go_gc_gogc_percent", "go_gc_gomemlimit_bytes", "go_sched_gomaxprocs_threads", "process_max_fds", "process_virtual_memory_max_bytes", "process_open_fds"} {
		if o, c := ours[name], theirs[name]; o != nil && c != nil && value(o) != value(c) {
			t.Errorf("%s = %v, client_golang's %v", name, value(o), value(c))
		}
	}
	if o, c := ours["go_info"], theirs["go_info"]; o != nil && c != nil && o.Metric[0].Label[0].GetValue() != c.Metric[0].Label[0].GetValue() {
		t.Errorf("go_info's version %q, client_golang's %q", o.Metric[0].Label[0].GetValue(), c.Metric[0].Label[0].GetValue())
	}
	if o, c := ours["process_start_time_seconds"], theirs["process_start_time_seconds"]; o != nil && c != nil && math.Abs(value(o)-value(c)) > 0.02 {
		t.Errorf("process_start_time_seconds = %v, client_golang's %v", value(o), value(c))
	}
	if o := ours["process_start_time_seconds"]; o != nil && (value(o) > float64(start.Unix())+1 || value(o) < float64(start.Add(-time.Hour).Unix())) {
		t.Errorf("process_start_time_seconds = %v, the test started at %v", value(o), start.Unix())
	}
	for _, name := range []string{"process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds", "process_cpu_seconds_total", "go_goroutines", "go_threads", "go_memstats_sys_bytes", "go_memstats_alloc_bytes_total"} {
		if o := ours[name]; o != nil && !(value(o) > 0) {
			t.Errorf("%s = %v, want more than 0", name, value(o))
		}
	}
}

func labelNames(mf *dto.MetricFamily) string {
	var names []string
	for _, l := range mf.GetMetric()[0].GetLabel() {
		names = append(names, l.GetName())
	}
	return strings.Join(names, ",")
}

// TestGOGCAsSet: go_gc_gogc_percent is the setting now, as an upgraded
// process changes it for a while (upgrade.takeOverGCPercent).
func TestGOGCAsSet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	var s Set
	s.AddGo()
	if v := value(parseFamilies(t, text(t, &s))["go_gc_gogc_percent"]); v != 400 {
		t.Errorf("go_gc_gogc_percent = %v after SetGCPercent(400)", v)
	}
}

// TestHandler: the text with Prometheus' media type; gzipped when the
// client takes gzip (not when it weighs it 0); no body for HEAD; a 500
// that names the error for a set with one.
func TestHandler(t *testing.T) {
	g := NewDesc("g", "G.", Gauge, "a")
	dup := false
	srv := httptest.NewServer(Handler(func(s *Set) {
		s.Add(g, 1, "x")
		if dup {
			s.Add(g, 2, "x")
		}
	}))
	defer srv.Close()
	const want = "# HELP g G.\n# TYPE g gauge\ng{a=\"x\"} 1\n"
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	get := func(method, accept string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL, nil)
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var r io.Reader = res.Body
		if res.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(res.Body)
			if err != nil {
				t.Fatalf("Accept-Encoding %q: %v", accept, err)
			}
			r = zr
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(b)
	}
	for _, tt := range []struct {
		accept string
		gzip   bool
	}{{"", false}, {"gzip", true}, {"br, GZIP;q=0.5", true}, {"gzip;q=0", false}, {"identity", false}, {"x-gzip", false}, {"*", true}, {"*;q=0", false}, {"gzip;q=0, *", false}, {"br;q=1, *;q=0.1", true}} {
		res, body := get(http.MethodGet, tt.accept)
		if res.StatusCode != 200 || body != want || res.Header.Get("Content-Type") != ContentType {
			t.Errorf("Accept-Encoding %q: %s %q %q", tt.accept, res.Status, res.Header.Get("Content-Type"), body)
		}
		if got := res.Header.Get("Content-Encoding") == "gzip"; got != tt.gzip {
			t.Errorf("Accept-Encoding %q: gzipped %v, want %v", tt.accept, got, tt.gzip)
		}
	}
	if res, body := get(http.MethodHead, ""); res.StatusCode != 200 || body != "" || res.ContentLength != int64(len(want)) {
		t.Errorf("HEAD: %s, Content-Length %d, body %q", res.Status, res.ContentLength, body)
	}
	dup = true
	if res, body := get(http.MethodGet, ""); res.StatusCode != 500 || !strings.Contains(body, `two samples with the labels {a="x"}`) {
		t.Errorf("a set with an error: %s %q", res.Status, body)
	}
}

// TestTheProgramsDoNotLinkClientGolang: smoothserve and smoothtool link
// neither client_golang nor what its package inits cost (procfs,
// protobuf), nor net/http/httptest (its
// test certificate): each upgrade starts a new smoothserve, and pays for
// every package init of it (doc.go).
func TestTheProgramsDoNotLinkClientGolang(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "smoothserve/cmd/smoothserve", "smoothserve/cmd/smoothtool").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, heavy := range []string{"github.com/prometheus/", "google.golang.org/protobuf/", "net/http/httptest"} {
			if strings.HasPrefix(pkg, heavy) {
				t.Errorf("a program links %s", pkg)
			}
		}
	}
	_ = prometheus.DefaultRegisterer // the tests' oracle only
}
