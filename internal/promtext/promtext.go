package promtext

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is a metric family's type, as its # TYPE line names it.
type Kind uint8

const (
	Counter Kind = iota + 1
	Gauge
	Histogram
	Summary
)

func (k Kind) String() string {
	switch k {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	case Histogram:
		return "histogram"
	case Summary:
		return "summary"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// A Desc describes a family: its name, help, kind and label names. Descs
// are made once (package variables) and shared; they are never changed.
type Desc struct {
	name, help string
	kind       Kind
	labels     []string // label names, in the order Add takes their values
	order      []int    // indexes of labels, in the order of their names: the order written
}

// NewDesc describes a family. It panics on a name or label name that
// Prometheus does not accept ([a-zA-Z_:][a-zA-Z0-9_:]*, labels without ':'
// and not starting "__"), on a label named twice, and on a histogram's
// "le" or a summary's "quantile" label: a program's error, found at its
// start, as client_golang's MustNewConstMetric finds it.
func NewDesc(name, help string, kind Kind, labels ...string) *Desc {
	if !validName(name, true) {
		panic(fmt.Sprintf("promtext: metric name %q is not valid", name))
	}
	if kind < Counter || kind > Summary {
		panic(fmt.Sprintf("promtext: %s: %v", name, kind))
	}
	d := &Desc{name: name, help: strings.ToValidUTF8(help, string(utf8.RuneError)), kind: kind, labels: slices.Clone(labels), order: make([]int, len(labels))}
	for i, l := range labels {
		if !validName(l, false) || strings.HasPrefix(l, "__") {
			panic(fmt.Sprintf("promtext: %s: label name %q is not valid", name, l))
		}
		if (kind == Histogram && l == "le") || (kind == Summary && l == "quantile") {
			panic(fmt.Sprintf("promtext: %s: label %q is the %v's own", name, l, kind))
		}
		d.order[i] = i
	}
	slices.SortFunc(d.order, func(i, j int) int { return strings.Compare(labels[i], labels[j]) })
	for i := 1; i < len(d.order); i++ {
		if labels[d.order[i]] == labels[d.order[i-1]] {
			panic(fmt.Sprintf("promtext: %s: label %q named twice", name, labels[d.order[i]]))
		}
	}
	return d
}

func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' || colon && c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// Bucket is a histogram's bucket: the observations at or under UpperBound,
// cumulative (each bucket counts those of the buckets under it too).
type Bucket struct {
	UpperBound float64
	Count      uint64
}

// Quantile is a summary's quantile: Value is the Quantile-th of the
// observations.
type Quantile struct {
	Quantile, Value float64
}

// A Set is the samples of one scrape, by family. Its zero value is empty
// and ready; it is not safe for concurrent use (one scrape fills one Set).
type Set struct {
	families map[string]*family
}

type family struct {
	d       *Desc
	samples []sample
	twice   bool // another Desc of the same name was added to
}

type sample struct {
	values    []string // label values, in the Desc's order of labels
	value     float64  // a counter's or gauge's
	count     uint64   // a histogram's or summary's
	sum       float64
	buckets   []Bucket
	quantiles []Quantile
}

// Add adds a counter's or gauge's sample. It panics if d is neither, or
// if the label values are not as many as d's labels.
func (s *Set) Add(d *Desc, v float64, labelValues ...string) {
	d.mustBe("Add", Counter, Gauge)
	s.add(d, sample{value: v}, labelValues)
}

// AddHistogram adds a histogram's sample: count observations summing to
// sum, in cumulative buckets (an +Inf bucket is written after them if they
// have none).
func (s *Set) AddHistogram(d *Desc, count uint64, sum float64, buckets []Bucket, labelValues ...string) {
	d.mustBe("AddHistogram", Histogram)
	b := slices.Clone(buckets)
	slices.SortFunc(b, func(x, y Bucket) int { return cmp.Compare(x.UpperBound, y.UpperBound) })
	s.add(d, sample{count: count, sum: sum, buckets: b}, labelValues)
}

// AddSummary adds a summary's sample: count observations summing to sum,
// and its quantiles.
func (s *Set) AddSummary(d *Desc, count uint64, sum float64, quantiles []Quantile, labelValues ...string) {
	d.mustBe("AddSummary", Summary)
	q := slices.Clone(quantiles)
	slices.SortFunc(q, func(x, y Quantile) int { return cmp.Compare(x.Quantile, y.Quantile) })
	s.add(d, sample{count: count, sum: sum, quantiles: q}, labelValues)
}

// mustBe panics unless d is of one of the kinds op takes.
func (d *Desc) mustBe(op string, kinds ...Kind) {
	if !slices.Contains(kinds, d.kind) {
		panic("promtext: " + op + " of the " + d.kind.String() + " " + d.name)
	}
}

func (s *Set) add(d *Desc, smp sample, labelValues []string) {
	if len(labelValues) != len(d.labels) {
		panic(fmt.Sprintf("promtext: %s has %d labels, %d values given", d.name, len(d.labels), len(labelValues)))
	}
	smp.values = make([]string, len(labelValues))
	for i, v := range labelValues {
		smp.values[i] = strings.ToValidUTF8(v, string(utf8.RuneError))
	}
	if s.families == nil {
		s.families = map[string]*family{}
	}
	f := s.families[d.name]
	if f == nil {
		f = &family{d: d}
		s.families[d.name] = f
	} else if f.d != d {
		f.twice = true
		return
	}
	f.samples = append(f.samples, smp)
}

// WriteTo writes the set in the text format. Nothing is written if the
// set has an error: two samples of one family with the same label values,
// or two Descs of one name.
func (s *Set) WriteTo(w io.Writer) (int64, error) {
	names := make([]string, 0, len(s.families))
	for name := range s.families {
		names = append(names, name)
	}
	sort.Strings(names)
	if err := s.suffixClash(); err != nil {
		return 0, err
	}
	var b bytes.Buffer
	for _, name := range names {
		if err := s.families[name].write(&b); err != nil {
			return 0, err
		}
	}
	return b.WriteTo(w)
}

// suffixClash is an error if a family is named as a histogram's or a
// summary's series are (NAME_bucket, NAME_sum, NAME_count): the text would
// hold one series twice.
func (s *Set) suffixClash() error {
	for name, f := range s.families {
		var suffixes []string
		switch f.d.kind {
		case Histogram:
			suffixes = []string{"_bucket", "_sum", "_count"}
		case Summary:
			suffixes = []string{"_sum", "_count"}
		}
		for _, suffix := range suffixes {
			if s.families[name+suffix] != nil {
				return fmt.Errorf("promtext: metric %s%s clashes with the %v %s's series", name, suffix, f.d.kind, name)
			}
		}
	}
	return nil
}

// less orders two samples of d as client_golang does: by their label
// values, taken in the order of the labels' names.
func (d *Desc) less(a, b *sample) bool {
	for _, i := range d.order {
		if a.values[i] != b.values[i] {
			return a.values[i] < b.values[i]
		}
	}
	return false
}

func (f *family) write(b *bytes.Buffer) error {
	d := f.d
	if f.twice {
		return fmt.Errorf("promtext: metric %s described twice", d.name)
	}
	sort.SliceStable(f.samples, func(i, j int) bool { return d.less(&f.samples[i], &f.samples[j]) })
	for i := range f.samples {
		if i > 0 && !d.less(&f.samples[i-1], &f.samples[i]) {
			return fmt.Errorf("promtext: metric %s: two samples with the labels %s", d.name, d.labelText(f.samples[i].values))
		}
	}
	b.WriteString("# HELP ")
	b.WriteString(d.name)
	b.WriteByte(' ')
	helpEscaper.WriteString(b, d.help)
	b.WriteString("\n# TYPE ")
	b.WriteString(d.name)
	b.WriteByte(' ')
	b.WriteString(d.kind.String())
	b.WriteByte('\n')
	for i := range f.samples {
		f.writeSample(b, &f.samples[i])
	}
	return nil
}

func (f *family) writeSample(b *bytes.Buffer, s *sample) {
	d := f.d
	switch d.kind {
	case Counter, Gauge:
		d.line(b, "", s.values, "", 0, s.value)
	case Histogram:
		inf := false
		for _, k := range s.buckets {
			d.line(b, "_bucket", s.values, "le", k.UpperBound, float64(k.Count))
			inf = inf || math.IsInf(k.UpperBound, +1)
		}
		if !inf {
			d.line(b, "_bucket", s.values, "le", math.Inf(+1), float64(s.count))
		}
		d.line(b, "_sum", s.values, "", 0, s.sum)
		d.line(b, "_count", s.values, "", 0, float64(s.count))
	case Summary:
		for _, q := range s.quantiles {
			d.line(b, "", s.values, "quantile", q.Quantile, q.Value)
		}
		d.line(b, "_sum", s.values, "", 0, s.sum)
		d.line(b, "_count", s.values, "", 0, float64(s.count))
	}
}

// line writes one sample line: name+suffix, the labels (and extra, a
// bucket's or quantile's), the value.
func (d *Desc) line(b *bytes.Buffer, suffix string, values []string, extra string, extraValue, v float64) {
	b.WriteString(d.name)
	b.WriteString(suffix)
	if len(values) > 0 || extra != "" {
		d.writeLabels(b, values, extra, extraValue)
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

// writeLabels writes {name="value",…}: d's labels in the order of their
// names, then extra, if any.
func (d *Desc) writeLabels(b *bytes.Buffer, values []string, extra string, extraValue float64) {
	b.WriteByte('{')
	for n, i := range d.order {
		if n > 0 {
			b.WriteByte(',')
		}
		writeLabel(b, d.labels[i], values[i])
	}
	if extra != "" {
		if len(values) > 0 {
			b.WriteByte(',')
		}
		writeLabel(b, extra, formatFloat(extraValue))
	}
	b.WriteByte('}')
}

func writeLabel(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(`="`)
	valueEscaper.WriteString(b, value)
	b.WriteByte('"')
}

func (d *Desc) labelText(values []string) string {
	var b bytes.Buffer
	d.writeLabels(&b, values, "", 0)
	return b.String()
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// formatFloat writes a value as the format and client_golang do: +Inf,
// -Inf, NaN, else the shortest decimal that reads back as the same float.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, +1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	if f == 0 {
		return "0" // -0 too, as client_golang
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// ContentType is the text format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"
