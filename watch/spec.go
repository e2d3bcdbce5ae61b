package watch

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// service is a compiled Spec plus its burst in progress; owned by Run.
type service struct {
	name   string
	quiet  time.Duration
	roots  []*root
	ignore []rule
	burst  burst
}

// root is one entry of Spec.Files and what was last seen of it.
type root struct {
	path   string // clean, absolute
	known  bool   // resolved at least once, so exists below means something
	exists bool
	isDir  bool        // watched recursively; meaningful only when exists
	fi     os.FileInfo // what path led to when last resolved; nil when it did not exist
}

// ruleKind says what an ignore pattern is matched against.
type ruleKind uint8

const (
	matchBase   ruleKind = iota // "*.swp": the base name
	matchFolder                 // ".git/": any folder on the way
	matchRel                    // "logs/*.log": the path relative to the watched folder
)

type rule struct {
	kind    ruleKind
	pattern string // without the trailing "/" of a folder pattern
	nested  bool   // a folder pattern with an inner "/": anchored at the root
}

// compile validates specs and turns them into services. It is all or nothing.
func compile(specs []Spec) ([]*service, error) {
	seen := make(map[string]bool, len(specs))
	out := make([]*service, 0, len(specs))
	for _, sp := range specs {
		if sp.Name == "" {
			return nil, errors.New("watch: a spec has no service name")
		}
		if seen[sp.Name] {
			return nil, fmt.Errorf("watch: service %s: listed twice", sp.Name)
		}
		seen[sp.Name] = true
		if sp.Quiet < 0 {
			return nil, fmt.Errorf("watch: service %s: negative quiet time %v", sp.Name, sp.Quiet)
		}
		s := &service{name: sp.Name, quiet: sp.Quiet}
		if s.quiet == 0 {
			s.quiet = DefaultQuiet
		}
		dup := make(map[string]bool, len(sp.Files))
		for _, f := range sp.Files {
			if !filepath.IsAbs(f) {
				return nil, fmt.Errorf("watch: service %s: watched path %q is not absolute", sp.Name, f)
			}
			if f = filepath.Clean(f); !dup[f] {
				dup[f] = true
				s.roots = append(s.roots, &root{path: f})
			}
		}
		for _, p := range sp.Ignore {
			r, err := parseRule(p)
			if err != nil {
				return nil, fmt.Errorf("watch: service %s: ignore pattern %q: %w", sp.Name, p, err)
			}
			s.ignore = append(s.ignore, r)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseRule(p string) (rule, error) {
	r := rule{pattern: p}
	switch {
	case strings.HasSuffix(p, "/"):
		r.kind = matchFolder
		r.pattern = strings.TrimRight(p, "/")
		r.nested = strings.Contains(r.pattern, "/")
	case strings.Contains(p, "/"):
		r.kind = matchRel
	default:
		r.kind = matchBase
	}
	if r.pattern == "" {
		return rule{}, errors.New("empty pattern")
	}
	if _, err := path.Match(r.pattern, ""); err != nil {
		return rule{}, err
	}
	return r, nil
}

// ignored reports whether a change at rel, a slash-separated path relative to
// a watched folder, is ignored. It runs for every event: no allocations.
func (s *service) ignored(rel string) bool {
	for _, r := range s.ignore {
		switch r.kind {
		case matchBase:
			if match(r.pattern, rel[strings.LastIndexByte(rel, '/')+1:]) {
				return true
			}
		case matchRel:
			if match(r.pattern, rel) {
				return true
			}
		case matchFolder:
			// Try each component ("a", "b", "c" of "a/b/c"), or for a nested
			// pattern each leading part ("a", "a/b", "a/b/c").
			start := 0
			for {
				end := strings.IndexByte(rel[start:], '/')
				if end < 0 {
					end = len(rel)
				} else {
					end += start
				}
				from := start
				if r.nested {
					from = 0
				}
				if match(r.pattern, rel[from:end]) {
					return true
				}
				if end == len(rel) {
					break
				}
				start = end + 1
			}
		}
	}
	return false
}

// match is path.Match for patterns parseRule has validated.
func match(pattern, name string) bool {
	ok, _ := path.Match(pattern, name)
	return ok
}

// under reports whether p is strictly below folder dir.
func under(p, dir string) bool {
	if dir == "/" {
		return len(p) > 1 && p[0] == '/'
	}
	return len(p) > len(dir) && p[len(dir)] == '/' && p[:len(dir)] == dir
}

// relTo returns p, which is under dir, relative to dir.
func relTo(dir, p string) string {
	return strings.TrimPrefix(p[len(dir):], "/")
}
