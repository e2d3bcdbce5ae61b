package conformance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// bins are the binaries built for this test run.
var bins Binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "smoothserve-conformance-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins = Binaries{Smoothserve: filepath.Join(dir, "smoothserve"), Recorder: filepath.Join(dir, "recorder")}
	for out, pkg := range map[string]string{bins.Smoothserve: "./cmd/smoothserve", bins.Recorder: "./conformance/recorder"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as the Makefile builds them
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "conformance: building %s: %v\n", pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proxies are the columns to run: CONFORMANCE_PROXIES, comma-separated
// (smoothserve, nginx, haproxy); smoothserve alone by default.
func proxies() []string {
	v := os.Getenv("CONFORMANCE_PROXIES")
	if v == "" {
		return []string{"smoothserve"}
	}
	var names []string
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(strings.ToLower(n)); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// TestConformance runs every case (or those CONFORMANCE_CASES selects)
// through the proxies asked for, prints
// the table (with -v, or when CONFORMANCE_PROXIES is set; to the file
// CONFORMANCE_OUT names, if set), and fails for every case smoothserve
// does not treat as expected. The other proxies' columns are information.
func TestConformance(t *testing.T) {
	cases := selectCases(t, AllCases())
	b, err := StartBench(t.TempDir(), bins, proxies(), cases)
	if b != nil {
		t.Cleanup(b.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range b.Missing {
		t.Logf("column not run: %s", m)
	}
	rep := b.Run(cases)
	writeReport(t, rep)
	ss := rep.Column("smoothserve")
	if ss == nil {
		return
	}
	for i := range cases {
		c := &cases[i]
		t.Run(c.ID, func(t *testing.T) {
			if why := c.Expect.Check(ss[i]); why != "" {
				t.Errorf("%s %s: %s\n  sent %.200q\n  notes: %s", c.ID, c.Name, why, c.Raw(), strings.Join(ss[i].Notes, "; "))
			}
		})
	}
}

// selectCases keeps the cases whose id matches CONFORMANCE_CASES, a
// regular expression ("^A", "K1[5-7]"), if set.
func selectCases(t *testing.T, all []Case) []Case {
	expr := os.Getenv("CONFORMANCE_CASES")
	if expr == "" {
		return all
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		t.Fatalf("CONFORMANCE_CASES: %v", err)
	}
	var cases []Case
	for _, c := range all {
		if re.MatchString(c.ID) {
			cases = append(cases, c)
		}
	}
	return cases
}

func writeReport(t *testing.T, rep *Report) {
	t.Helper()
	if path := os.Getenv("CONFORMANCE_OUT"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		rep.Markdown(f)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if testing.Verbose() || os.Getenv("CONFORMANCE_PROXIES") != "" {
		rep.Markdown(os.Stdout)
	}
}

// TestCatalogue checks the cases themselves: unique ids, enough of each
// kind, every expectation well-formed.
func TestCatalogue(t *testing.T) {
	seen := map[string]bool{}
	requests, answers := 0, 0
	for _, c := range AllCases() {
		if seen[c.ID] {
			t.Errorf("case id %s used twice", c.ID)
		}
		seen[c.ID] = true
		if len(c.Want) == 0 || len(c.Parts) == 0 || c.Name == "" {
			t.Errorf("%s: no name, bytes or meaning", c.ID)
		}
		if c.Answer != nil {
			answers++
		} else {
			requests++
		}
	}
	if requests < 150 || answers < 30 {
		t.Errorf("%d request cases and %d answer cases, want at least 150 and 30", requests, answers)
	}
}
