package watch

import (
	"strings"
	"testing"
)

func TestIgnored(t *testing.T) {
	t.Parallel()
	svcs, err := compile([]Spec{{Name: "s", Ignore: append(defaultIgnore, "logs/*.log", "build/cache/")}})
	if err != nil {
		t.Fatal(err)
	}
	s := svcs[0]
	for _, tc := range []struct {
		rel  string
		want bool
	}{
		{"index.html", false},
		{"a.swp", true},
		{"sub/.index.html.swp", true},
		{"app.yaml~", true},
		{"x.tmp", true},
		{"x.tmp/inside", false}, // base-name patterns look at the base name only
		{".git", true},
		{".git/HEAD", true},
		{"vendor/lib/.git/objects/ab", true},
		{".github/workflows/ci.yml", false},
		{"logs/app.log", true},
		{"sub/logs/app.log", false}, // relative patterns are anchored
		{"logs/app.txt", false},
		{"build/cache", true},
		{"build/cache/obj/a.o", true},
		{"build/other/a.o", false},
		{"src/build/cache/a.o", false}, // nested folder patterns are anchored
	} {
		if got := s.ignored(tc.rel); got != tc.want {
			t.Errorf("ignored(%q) = %v, want %v", tc.rel, got, tc.want)
		}
	}
}

func TestCompileRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		specs []Spec
		want  string
	}{
		{"no name", []Spec{{Files: []string{"/a"}}}, "no service name"},
		{"same name twice", []Spec{{Name: "web"}, {Name: "web"}}, "service web: listed twice"},
		{"relative path", []Spec{{Name: "web", Files: []string{"bin/web"}}}, `service web: watched path "bin/web" is not absolute`},
		{"bad glob", []Spec{{Name: "web", Ignore: []string{"[a"}}}, `service web: ignore pattern "[a": syntax error`},
		{"empty glob", []Spec{{Name: "web", Ignore: []string{"/"}}}, `ignore pattern "/": empty pattern`},
		{"negative quiet", []Spec{{Name: "web", Quiet: -1}}, "negative quiet time"},
	} {
		_, err := compile(tc.specs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: compile error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestCompileDefaults(t *testing.T) {
	t.Parallel()
	svcs, err := compile([]Spec{{Name: "web", Files: []string{"/srv/web/", "/srv/web", "/srv/app.yaml"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := svcs[0]
	if s.quiet != DefaultQuiet {
		t.Errorf("quiet %v, want DefaultQuiet %v", s.quiet, DefaultQuiet)
	}
	var got []string
	for _, r := range s.roots {
		got = append(got, r.path)
	}
	if strings.Join(got, " ") != "/srv/web /srv/app.yaml" {
		t.Errorf("roots %q, want cleaned and deduplicated [/srv/web /srv/app.yaml]", got)
	}
}
