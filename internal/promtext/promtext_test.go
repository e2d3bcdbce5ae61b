package promtext

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// oracle is client_golang's text for the collectors given.
func oracle(t *testing.T, cs ...prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cs...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("client_golang's Gather: %v", err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("client_golang's encoder: %v", err)
		}
	}
	return b.String()
}

// constCollector is client_golang's side of a test: const metrics.
type constCollector []prometheus.Metric

func (c constCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		ch <- m
	}
}

func text(t *testing.T, s *Set) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := s.WriteTo(&b); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	return b.String()
}

// TestSameTextAsClientGolang: for the same metrics, given in another
// order, the text is client_golang's byte for byte: families by name,
// samples by label values in the order of the label names, label pairs
// by name, escaping, numbers, histogram buckets and summary quantiles.
func TestSameTextAsClientGolang(t *testing.T) {
	awkward := []string{"a\"quote", `back\slash`, "new\nline", "ünïcödé ✓", "", "z", "a", "1e6"} // invalid UTF-8: client_golang panics; FuzzLabelValue has it
	values := []float64{0, 1, -1, 0.1, 1e6, 123456789, 1.5e-9, math.Inf(+1), math.Inf(-1), 3.0000000000000004, math.Copysign(0, -1), 5e-324, math.MaxFloat64, 1e21}

	cReqs := prometheus.NewDesc("t_requests_total", "Requests, by \\ service\nand code.", []string{"service", "code"}, nil)
	cTemp := prometheus.NewDesc("t_temperature", "", nil, nil)
	cHist := prometheus.NewDesc("t_duration_seconds", "Durations.", []string{"zone", "app"}, nil)
	cSum := prometheus.NewDesc("t_pause_seconds", "Pauses.", nil, nil)
	cInfo := prometheus.NewDesc("t_info", "Info.", []string{"version"}, nil)
	pReqs := NewDesc("t_requests_total", "Requests, by \\ service\nand code.", Counter, "service", "code")
	pTemp := NewDesc("t_temperature", "", Gauge)
	pHist := NewDesc("t_duration_seconds", "Durations.", Histogram, "zone", "app")
	pSum := NewDesc("t_pause_seconds", "Pauses.", Summary)
	pInfo := NewDesc("t_info", "Info.", Gauge, "version")

	var c constCollector
	var s Set
	for i := len(awkward) - 1; i >= 0; i-- { // reversed: the order must not matter
		for j, code := range []string{"500", "200", "404"} {
			v := values[(i+j)%len(values)]
			c = append(c, prometheus.MustNewConstMetric(cReqs, prometheus.CounterValue, math.Abs(v), awkward[i], code))
			s.Add(pReqs, math.Abs(v), awkward[i], code)
		}
	}
	c = append(c, prometheus.MustNewConstMetric(cTemp, prometheus.GaugeValue, math.Copysign(0, -1)))
	s.Add(pTemp, math.Copysign(0, -1))
	cVals := prometheus.NewDesc("t_values", "Values.", []string{"i"}, nil)
	pVals := NewDesc("t_values", "Values.", Gauge, "i")
	for i, v := range values {
		c = append(c, prometheus.MustNewConstMetric(cVals, prometheus.GaugeValue, v, strconv.Itoa(i)))
		s.Add(pVals, v, strconv.Itoa(i))
	}
	bounds := []float64{0.005, 0.1, 1, 2.5, 10}
	for i, app := range []string{"web", "api"} {
		m := map[float64]uint64{}
		var b []Bucket
		for k, ub := range bounds {
			m[ub] = uint64(k * (i + 1))
			b = append(b, Bucket{ub, uint64(k * (i + 1))})
		}
		b[0], b[3] = b[3], b[0] // given out of order
		c = append(c, prometheus.MustNewConstHistogram(cHist, 17, 4.25, m, "eu", app))
		s.AddHistogram(pHist, 17, 4.25, b, "eu", app)
	}
	c = append(c, prometheus.MustNewConstSummary(cSum, 9, 0.75, map[float64]float64{0: 0.001, 0.5: 0.01, 1: 0.2, 0.25: 0.005, 0.75: 0.1}))
	s.AddSummary(pSum, 9, 0.75, []Quantile{{1, 0.2}, {0, 0.001}, {0.5, 0.01}, {0.25, 0.005}, {0.75, 0.1}})
	c = append(c, prometheus.MustNewConstMetric(cInfo, prometheus.GaugeValue, 1, "go1.26"))
	s.Add(pInfo, 1, "go1.26")

	got, want := text(t, &s), oracle(t, c)
	if got != want {
		t.Errorf("the text differs from client_golang's\n got:\n%s\nwant:\n%s", got, want)
	}
	mustParse(t, got)
}

// mustParse parses text with Prometheus' own parser.
func mustParse(t *testing.T, text string) map[string]int {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus' parser: %v\n%s", err, text)
	}
	n := map[string]int{}
	for name, mf := range mfs {
		n[name] = len(mf.Metric)
	}
	return n
}

// TestHistogramWithoutBuckets: a histogram with no bucket, and one whose
// buckets already end with +Inf, get one +Inf bucket each.
func TestHistogramWithoutBuckets(t *testing.T) {
	d := NewDesc("h_seconds", "H.", Histogram)
	e := NewDesc("e_seconds", "E.", Histogram, "x")
	var s Set
	s.AddHistogram(d, 3, 1.5, nil)
	s.AddHistogram(e, 2, 0.5, []Bucket{{math.Inf(+1), 2}, {1, 1}}, "y")
	want := "# HELP e_seconds E.\n# TYPE e_seconds histogram\n" +
		"e_seconds_bucket{x=\"y\",le=\"1\"} 1\ne_seconds_bucket{x=\"y\",le=\"+Inf\"} 2\ne_seconds_sum{x=\"y\"} 0.5\ne_seconds_count{x=\"y\"} 2\n" +
		"# HELP h_seconds H.\n# TYPE h_seconds histogram\n" +
		"h_seconds_bucket{le=\"+Inf\"} 3\nh_seconds_sum 1.5\nh_seconds_count 3\n"
	if got := text(t, &s); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestTwoSeriesOfOneNameAreAnError: a sample added twice with the same
// label values, or two Descs of one name, fail WriteTo with nothing
// written, as client_golang's Gather fails.
func TestTwoSeriesOfOneNameAreAnError(t *testing.T) {
	d := NewDesc("dup_total", "D.", Counter, "a", "b")
	ok := NewDesc("ok_total", "O.", Counter)
	var s Set
	s.Add(ok, 1)
	s.Add(d, 1, "x", "y")
	s.Add(d, 2, "x", "z")
	s.Add(d, 3, "x", "y")
	var b bytes.Buffer
	if _, err := s.WriteTo(&b); err == nil || !strings.Contains(err.Error(), `dup_total: two samples with the labels {a="x",b="y"}`) {
		t.Errorf("WriteTo of a duplicate sample: %v", err)
	}
	if b.Len() != 0 {
		t.Errorf("WriteTo wrote %q", b.String())
	}

	for _, clash := range []struct {
		kind   Kind
		suffix string
	}{{Histogram, "_bucket"}, {Histogram, "_sum"}, {Histogram, "_count"}, {Summary, "_sum"}, {Summary, "_count"}} {
		var s3 Set
		if clash.kind == Histogram {
			s3.AddHistogram(NewDesc("x", "X.", Histogram), 1, 1, nil)
		} else {
			s3.AddSummary(NewDesc("x", "X.", Summary), 1, 1, nil)
		}
		s3.Add(NewDesc("x"+clash.suffix, "Y.", Gauge), 1)
		if _, err := s3.WriteTo(&b); err == nil || !strings.Contains(err.Error(), "x"+clash.suffix+" clashes") {
			t.Errorf("a gauge x%s beside the %v x: %v", clash.suffix, clash.kind, err)
		}
	}

	var s2 Set
	s2.Add(NewDesc("same", "One.", Gauge), 1)
	s2.Add(NewDesc("same", "Two.", Gauge), 2)
	if _, err := s2.WriteTo(&b); err == nil || !strings.Contains(err.Error(), "same described twice") {
		t.Errorf("WriteTo of two Descs of one name: %v", err)
	}
}

// TestProgramErrorsPanic: names Prometheus refuses, a label named twice,
// a histogram's own "le", the wrong number of label values and the wrong
// Add for the kind are a program's errors: a panic.
func TestProgramErrorsPanic(t *testing.T) {
	g := NewDesc("g", "G.", Gauge, "a")
	h := NewDesc("h", "H.", Histogram)
	for name, f := range map[string]func(){
		"metric name with a dash":  func() { NewDesc("a-b", "", Gauge) },
		"metric name from a digit": func() { NewDesc("1ab", "", Gauge) },
		"empty metric name":        func() { NewDesc("", "", Gauge) },
		"label with a colon":       func() { NewDesc("ok", "", Gauge, "a:b") },
		"reserved label":           func() { NewDesc("ok", "", Gauge, "__name") },
		"label twice":              func() { NewDesc("ok", "", Gauge, "b", "a", "b") },
		"histogram's le":           func() { NewDesc("ok", "", Histogram, "le") },
		"summary's quantile":       func() { NewDesc("ok", "", Summary, "quantile") },
		"no kind":                  func() { NewDesc("ok", "", 0) },
		"too few label values":     func() { var s Set; s.Add(g, 1) },
		"too many label values":    func() { var s Set; s.Add(g, 1, "x", "y") },
		"Add of a histogram":       func() { var s Set; s.Add(h, 1) },
		"AddHistogram of a gauge":  func() { var s Set; s.AddHistogram(g, 1, 1, nil, "x") },
		"AddSummary of a gauge":    func() { var s Set; s.AddSummary(g, 1, 1, nil, "x") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	// and names Prometheus takes do not panic
	NewDesc("a:b_c9", "", Counter, "_x", "y9")
}

// FuzzLabelValue: whatever a label value and a help text hold, the text
// parses with Prometheus' parser and gives the value back (invalid UTF-8
// replaced).
func FuzzLabelValue(f *testing.F) {
	for _, s := range []string{"", `"`, `\`, "\n", `\n`, "a\"b\\c\nd", "\xff", "ünï", "}", "{x=\"y\"}", " 1 2"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, value, help string) {
		var s Set
		d := NewDesc("f_total", help, Counter, "v")
		s.Add(d, 42, value)
		var b bytes.Buffer
		if _, err := s.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		p := expfmt.NewTextParser(model.LegacyValidation)
		mfs, err := p.TextToMetricFamilies(&b)
		if err != nil {
			t.Fatalf("value %q help %q: %v", value, help, err)
		}
		m := mfs["f_total"].GetMetric()
		if len(m) != 1 || len(m[0].Label) != 1 || m[0].GetCounter().GetValue() != 42 {
			t.Fatalf("value %q: parsed %v", value, mfs["f_total"])
		}
		if got, want := m[0].Label[0].GetValue(), strings.ToValidUTF8(value, "\uFFFD"); got != want {
			t.Fatalf("label value %q came back %q", want, got)
		}
		// The parser drops the blanks that start a help text (client_golang's
		// text loses them too).
		if got, want := mfs["f_total"].GetHelp(), strings.TrimLeft(strings.ToValidUTF8(help, "\uFFFD"), " \t"); got != want {
			t.Fatalf("help %q came back %q", want, got)
		}
	})
}
