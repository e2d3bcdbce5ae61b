package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// fileKeys is what decoding learned about the keys of one file. Defaults
// and validation consult it, so that a key written with a wrong type is
// reported once, as a type error, and not again as "required" or "out of
// range".
type fileKeys struct {
	file    string
	line    int             // line of the first key (1 for an empty file): where a missing key is reported
	lines   map[string]int  // line of every key present; shared with Config.Lines or Service.Lines
	set     map[string]bool // keys given a non-null value of the right type
	invalid map[string]bool // keys whose value was rejected, already reported
}

func newFileKeys(file string, root *yaml.Node, lines map[string]int) *fileKeys {
	k := &fileKeys{file: file, line: 1, lines: lines, set: map[string]bool{}, invalid: map[string]bool{}}
	if root != nil && root.Line > 0 {
		k.line = root.Line
	}
	return k
}

// at is the line to blame for key: where it is written, else the start of
// the file's keys.
func (k *fileKeys) at(key string) int {
	if l := k.lines[key]; l > 0 {
		return l
	}
	return k.line
}

// usable reports whether key's value can be checked: it was absent (and so
// defaulted) or decoded; a rejected value has been reported already.
func (k *fileKeys) usable(key string) bool { return !k.invalid[key] }

// errorf is a problem with key, at the line at(key).
func (k *fileKeys) errorf(key, format string, args ...any) *Error {
	return &Error{File: k.file, Line: k.at(key), Key: key, Msg: fmt.Sprintf(format, args...)}
}

// decodeFunc decodes one value into its field, writing nothing on failure.
type decodeFunc func(n *yaml.Node) error

// valueError is a decodeFunc failure at a node inside the value (an item of
// a list), so the error points at the item's line.
type valueError struct {
	line int
	msg  string
}

func (e *valueError) Error() string { return e.msg }

func wrongType(n *yaml.Node, want string) error {
	return &valueError{line: n.Line, msg: "want " + want + ", got " + describe(n)}
}

// describe names a value the way an error message quotes it.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "an unexpected YAML node"
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// decodeKeys decodes every key of root with its entry in fields, recording
// lines and outcomes in k. An unknown key, a duplicate key or a value of the
// wrong type is an error; a null value ("key:" alone) counts as absent.
func decodeKeys(k *fileKeys, root *yaml.Node, fields map[string]decodeFunc) ErrorList {
	if root == nil {
		return nil
	}
	var errs ErrorList
	for i := 0; i+1 < len(root.Content); i += 2 {
		keyNode, value := resolve(root.Content[i]), resolve(root.Content[i+1])
		if keyNode.Kind != yaml.ScalarNode {
			errs = append(errs, &Error{File: k.file, Line: keyNode.Line, Msg: "want a key name, got " + describe(keyNode)})
			continue
		}
		key := keyNode.Value
		decode, known := fields[key]
		if !known {
			msg := "unknown key"
			if s := suggest(key, fields); s != "" {
				msg += " (did you mean " + s + "?)"
			}
			errs = append(errs, &Error{File: k.file, Line: keyNode.Line, Key: key, Msg: msg})
			continue
		}
		if first, dup := k.lines[key]; dup {
			errs = append(errs, &Error{File: k.file, Line: keyNode.Line, Key: key, Msg: fmt.Sprintf("duplicate key (first at line %d)", first)})
			continue
		}
		k.lines[key] = keyNode.Line
		if isNull(value) {
			continue
		}
		if err := decode(value); err != nil {
			k.invalid[key] = true
			for _, e := range each(err) {
				line := value.Line
				if ve, ok := e.(*valueError); ok {
					line = ve.line
				}
				errs = append(errs, &Error{File: k.file, Line: line, Key: key, Msg: e.Error()})
			}
			continue
		}
		k.set[key] = true
	}
	return errs
}

// each is the errors err joins (a list with several bad items: each is
// reported), or err alone.
func each(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// suggest is the known key closest to an unknown one, or "" when none is
// close: the same letters ignoring case, '_' and '-' (proxy_port for
// ProxyPort), or at most a couple of typing slips.
func suggest(key string, fields map[string]decodeFunc) string {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	sort.Strings(known) // ties go to the first in order, the same every run
	fold := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	best, bestDist := "", -1
	for _, k := range known {
		if fold(k) == fold(key) {
			return k
		}
		d := editDistance(strings.ToLower(key), strings.ToLower(k))
		limit := max(1, min(2, utf8.RuneCountInString(k)/4))
		if d <= limit && (bestDist < 0 || d < bestDist) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance between a and b,
// in runes: insertions, deletions, substitutions and swaps of two adjacent
// runes (nmae for name) cost one each.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
