package config

import (
	"sort"
	"strconv"
	"strings"
)

// Error is one problem in one configuration file.
type Error struct {
	File string // path of the file as the operator knows it (absolute); "" when no file is involved
	Line int    // 1-based line; 0 when the problem has no line (a file that cannot be read)
	Key  string // the key at fault; "" when the problem is not about one key
	Msg  string // what is wrong, lower case
	Err  error  // the underlying cause, if any, for errors.Is and errors.As
}

// Error formats e as "FILE:LINE: key: msg", leaving out the parts that are
// zero.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause, or nil.
func (e *Error) Unwrap() error { return e.Err }

// ErrorList is every problem Load found, one per line when printed. Load
// never returns an empty ErrorList as an error.
type ErrorList []*Error

// Error prints one problem per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As look at every problem.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sortErrors orders problems the way an operator reads them: smoothserve.yaml
// first, then the service files in the order they were read, each by line.
// rank gives each file's place; problems found while comparing two files are
// added late, so the order they were found in would scatter them.
func sortErrors(l ErrorList, rank map[string]int) {
	sort.SliceStable(l, func(i, j int) bool {
		ri, rj := rank[l[i].File], rank[l[j].File]
		if ri != rj {
			return ri < rj
		}
		return l[i].Line < l[j].Line
	})
}

// about reports whether a problem of l is with key in file.
func (l ErrorList) about(file, key string) bool {
	for _, e := range l {
		if e.File == file && e.Key == key {
			return true
		}
	}
	return false
}
