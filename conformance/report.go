package conformance

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Check says how r misses what smoothserve is expected to do, or "".
func (e Expect) Check(r Result) string {
	switch {
	case r.Class != e.Class:
		return fmt.Sprintf("got %s, want %s", cell(r), e)
	case !statusMatches(e.Status, r.Status):
		return fmt.Sprintf("got %s, want status %s", cell(r), e.Status)
	case e.Within > 0 && r.Elapsed > e.Within:
		return fmt.Sprintf("got %s after %v, want within %v", cell(r), r.Elapsed.Round(time.Millisecond), e.Within)
	}
	return ""
}

// cell is a result in a few words.
func cell(r Result) string {
	if r.Status == "" {
		return r.Class.String()
	}
	return r.Class.String() + " " + r.Status
}

// Markdown writes the report: a summary per proxy, the table of every
// case, the notes behind every cell that is neither canonical nor
// rejected (or misses smoothserve's expectation), and the cases' bytes.
func (r *Report) Markdown(w io.Writer) {
	requests, answers := 0, 0
	for _, c := range r.Cases {
		if c.Answer != nil {
			answers++
		} else {
			requests++
		}
	}
	fmt.Fprintf(w, "# Conformance: %d request cases, %d answer cases\n\n", requests, answers)
	for _, m := range r.Missing {
		fmt.Fprintf(w, "Not run: %s\n\n", m)
	}
	r.summary(w)
	r.table(w)
	r.notes(w)
	fmt.Fprintf(w, "\n## Cases\n\n")
	for _, c := range r.Cases {
		raw := c.Raw()
		if c.Answer != nil {
			raw = string(c.Answer.Script.Raw)
		}
		q := strconv.Quote(raw)
		if len(q) > 160 {
			q = q[:160] + "…"
		}
		fmt.Fprintf(w, "- %s %s: `%s`\n", c.ID, c.Name, strings.ReplaceAll(q, "`", "\\x60"))
	}
}

func (r *Report) header(w io.Writer, first ...string) {
	cols := first
	for _, c := range r.Columns {
		cols = append(cols, c.Name+" "+c.Version)
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
}

func (r *Report) summary(w io.Writer) {
	fmt.Fprintf(w, "## Summary\n\n")
	r.header(w, "class")
	for class := Rejected; class <= Hung; class++ {
		row := []string{class.String()}
		for i := range r.Columns {
			n := 0
			for _, res := range r.Results[i] {
				if res.Class == class {
					n++
				}
			}
			row = append(row, strconv.Itoa(n))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	if ss := r.Column("smoothserve"); ss != nil {
		met := 0
		for i, c := range r.Cases {
			if c.Expect.Check(ss[i]) == "" {
				met++
			}
		}
		fmt.Fprintf(w, "\nsmoothserve as expected: %d of %d cases.\n", met, len(r.Cases))
	}
	fmt.Fprintln(w)
}

func (r *Report) table(w io.Writer) {
	fmt.Fprintf(w, "## Cases by proxy\n\n✗: not what smoothserve is expected to do.\n\n")
	r.header(w, "id", "case", "smoothserve expected")
	for j, c := range r.Cases {
		row := []string{c.ID, strings.ReplaceAll(c.Name, "|", "\\|"), c.Expect.String()}
		for i, col := range r.Columns {
			s := cell(r.Results[i][j])
			if col.Name == "smoothserve" && c.Expect.Check(r.Results[i][j]) != "" {
				s += " ✗"
			}
			row = append(row, s)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}

func (r *Report) notes(w io.Writer) {
	fmt.Fprintf(w, "\n## Notes\n\n")
	for j, c := range r.Cases {
		for i, col := range r.Columns {
			res := r.Results[i][j]
			miss := ""
			if col.Name == "smoothserve" {
				miss = c.Expect.Check(res)
			}
			if len(res.Notes) == 0 && miss == "" {
				continue
			}
			if miss != "" {
				miss = " (expected " + c.Expect.String() + ")"
			}
			fmt.Fprintf(w, "- %s %s: %s%s: %s\n", c.ID, col.Name, cell(res), miss, strings.Join(res.Notes, "; "))
		}
	}
}
