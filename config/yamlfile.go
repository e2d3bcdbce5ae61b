package config

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// parseDocument parses one configuration file into its top-level mapping.
// It returns a nil node for a file with nothing but comments or a null, and
// an error for broken YAML, a second document, or a top level that is not a
// mapping of keys.
func parseDocument(file string, data []byte) (*yaml.Node, *Error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlError(file, data, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, yamlError(file, data, err)
	default:
		// A second document would be ignored silently; smoothserve reads one.
		return nil, &Error{File: file, Line: extra.Line, Msg: "a second YAML document (---) is not allowed; write one mapping of keys"}
	}
	root := resolve(doc.Content[0])
	switch {
	case root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null":
		return nil, nil
	case root.Kind != yaml.MappingNode:
		return nil, &Error{File: file, Line: root.Line, Msg: "want a mapping of keys, got " + describe(root)}
	}
	return root, nil
}

var yamlMessage = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// parserMessages are the yaml.v3 errors raised by its parser rather than its
// scanner. For these yaml.v3 prints a 0-based line (of the enclosing block,
// or else of the problem) and none at all for 0, while scanner errors get a
// 1-based one; see fail() in yaml.v3's decode.go.
var parserMessages = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found undefined tag handle":             true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
}

// readerMessages are the yaml.v3 errors about bytes, which carry no line.
var readerMessages = map[string]bool{
	"control characters are not allowed": true,
	"invalid leading UTF-8 octet":        true,
	"invalid trailing UTF-8 octet":       true,
	"incomplete UTF-8 octet sequence":    true,
	"invalid length of a UTF-8 sequence": true,
	"invalid Unicode character":          true,
	"input is not valid UTF-8":           true,
}

var unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// yamlError turns a yaml.v3 error into an *Error whose line is 1-based,
// correcting the parser's off-by-one and finding the line yaml.v3 leaves out
// where that can be done.
func yamlError(file string, data []byte, err error) *Error {
	if line := tabIndentLine(data); line > 0 {
		return &Error{File: file, Line: line, Msg: "a tab in the indentation (YAML indents with spaces)", Err: err}
	}
	m := yamlMessage.FindStringSubmatch(err.Error())
	if m == nil {
		return &Error{File: file, Msg: err.Error(), Err: err}
	}
	msg := m[2]
	line, _ := strconv.Atoi(m[1]) // 0 when yaml.v3 gave none
	switch {
	case parserMessages[msg]:
		line++
	case readerMessages[msg]:
		line = badByteLine(data)
	case unknownAnchor.MatchString(msg):
		line = lineOf(data, "*"+unknownAnchor.FindStringSubmatch(msg)[1])
	case line == 0:
		// A scanner error on the first line: yaml.v3 drops line 0+1.
		line = 1
	}
	return &Error{File: file, Line: line, Msg: "not valid YAML: " + msg, Err: err}
}

// badByteLine is the line of the first byte YAML does not accept: a control
// character other than tab, newline and carriage return, or broken UTF-8.
func badByteLine(data []byte) int {
	line := 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		switch {
		case r == '\n':
			line++
		case r == utf8.RuneError && size <= 1:
			return line
		case r < 0x20 && r != '\t' && r != '\r', r == 0x7f:
			return line
		}
		data = data[size:]
	}
	return 0
}

// lineOf is the first line containing s, or 0.
func lineOf(data []byte, s string) int {
	i := bytes.Index(data, []byte(s))
	if i < 0 {
		return 0
	}
	return 1 + strings.Count(string(data[:i]), "\n")
}

// maxTabLines bounds the lines tabIndentLine tries, each costing two parses.
const maxTabLines = 64

// tabIndentLine is the line of the first tab in the indentation that breaks
// the YAML, or 0. yaml.v3 calls such a tab "a character that cannot start
// any token" or one "that violates indentation", at its line or the one
// before. A tab after the indentation of a block scalar's text, or in a
// flow collection ([1,<tab>2]), is fine; rather than follow YAML's rules
// for those, a line counts when the text before it parses and the text
// through it does not.
func tabIndentLine(data []byte) int {
	tried := 0
	for n, start := 1, 0; start < len(data) && tried < maxTabLines; n++ {
		end := len(data)
		if i := bytes.IndexByte(data[start:], '\n'); i >= 0 {
			end = start + i + 1
		}
		line := data[start:end]
		indent := line[:len(line)-len(bytes.TrimLeft(line, " \t"))]
		if bytes.IndexByte(indent, '\t') >= 0 {
			tried++
			if parses(data[:start]) && !parses(data[:end]) {
				return n
			}
		}
		start = end
	}
	return 0
}

// parses reports whether data is YAML, in any number of documents.
func parses(data []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		switch err := dec.Decode(&doc); {
		case errors.Is(err, io.EOF):
			return true
		case err != nil:
			return false
		}
	}
}
