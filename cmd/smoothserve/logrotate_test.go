package main

import (
	"math/rand/v2"
	"path"
	"strings"
	"testing"

	"smoothserve/config"
)

// goPattern is glob(3)'s pattern g for Go's path.Match, which writes a
// negated class [^...] where glob(3) writes [!...], and a literal '-' in a
// class escaped.
func goPattern(g string) string {
	before, class, ok := strings.Cut(g, "[!")
	if !ok {
		return g
	}
	class, after, _ := strings.Cut(class, "]")
	return before + "[^" + strings.ReplaceAll(class, "-", `\-`) + "]" + goPattern(after)
}

// matches is how many of globs match name, as glob(3) does: a leading '.'
// of the file's name only by a '.'.
func matches(t *testing.T, globs []string, name string) int {
	t.Helper()
	n := 0
	for _, g := range globs {
		if strings.HasPrefix(path.Base(name), ".") && !strings.HasPrefix(path.Base(g), ".") {
			continue
		}
		ok, err := path.Match(goPattern(g), name)
		if err != nil {
			t.Fatalf("glob %q: %v", g, err)
		}
		if ok {
			n++
		}
	}
	return n
}

// TestOtherLogsMatchEveryOtherNameOnce: logrotate refuses a file that two
// entries name, and rotates nothing no entry names. So every "N.log" but
// the excluded ones must be matched by exactly one glob, the excluded by
// none: names as the old glob missed (a service "accounts", "a", "acces")
// and random ones over a small alphabet, against random exclusions.
func TestOtherLogsMatchEveryOtherNameOnce(t *testing.T) {
	check := func(excl []string, names []string) {
		t.Helper()
		globs := otherLogs(append([]string(nil), excl...))
		for _, n := range names {
			want := 1
			for _, x := range excl {
				if n == x {
					want = 0
				}
			}
			if got := matches(t, globs, n+".log"); got != want {
				t.Fatalf("excluding %q: %q matched by %d of %q, want %d", excl, n+".log", got, globs, want)
			}
		}
	}
	check(nil, []string{"web", "access", "a", ".web", ".", ".."})
	check([]string{"access"}, []string{"access", "accounts", "a", "ac", "acc", "acce", "acces", "access2", "access-web",
		"web", "b", "x.y", "access.old", ".access", ".a"})
	rng := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		const alphabet = "ac-.x" // '.' leading too
		b := make([]byte, 1+rng.IntN(6))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 300 {
		var excl, names []string
		for range 1 + rng.IntN(4) {
			excl = append(excl, word())
		}
		for range 40 {
			names = append(names, word())
		}
		check(excl, append(names, excl...))
	}
}

// TestLogrotateSnippetNamesEveryAccessLog: the access logs wherever they
// are (AccessLog, a service's own, once each; none for a service with
// access_log off), reopened by a USR1 to the unit; the instances' output
// in LogDir less the access logs there.
func TestLogrotateSnippetNamesEveryAccessLog(t *testing.T) {
	cfg := &config.Config{LogDir: "/srv/app/logs", AccessLog: "/srv/app/logs/access.log", Services: []*config.Service{
		{Name: "web"}, {Name: "api", AccessLog: "/var/log/api/access.log"}, {Name: "quiet", AccessLog: config.AccessLogOff},
		{Name: "web2", AccessLog: "/srv/app/logs/web2-access.log"},
	}}
	got, err := logrotateSnippet(cfg, "smoothserve-prod")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"/srv/app/logs/access.log /srv/app/logs/web2-access.log /var/log/api/access.log {\n",
		"systemctl kill --kill-whom=main --signal=USR1 smoothserve-prod ",
		"/srv/app/logs/[!.aw]*.log ",
		"\tcopytruncate\n}\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the snippet lacks %q:\n%s", want, got)
		}
	}
	blocks := strings.Split(got, "# The instances' output")
	globs := strings.Fields(strings.SplitN(blocks[1], "\n", 3)[1])
	globs = globs[:len(globs)-1] // "{"
	for name, want := range map[string]int{"access.log": 0, "web2-access.log": 0, "web.log": 1, "web2.log": 1, "accounts.log": 1, "api.log": 1} {
		if n := matches(t, globs, "/srv/app/logs/"+name); n != want {
			t.Errorf("%s matched by %d instance globs, want %d", name, n, want)
		}
	}

	cfg.AccessLog, cfg.Services = "", cfg.Services[2:3]
	got, err = logrotateSnippet(cfg, "smoothserve")
	if err != nil {
		t.Fatal(err)
	}
	if want := "/srv/app/logs/[!.]*.log /srv/app/logs/..log /srv/app/logs/.?*.log {"; strings.Contains(got, "USR1") || !strings.Contains(got, want) {
		t.Errorf("no access log: want one entry, %s:\n%s", want, got)
	}
}

func TestLogrotateSnippetRefusals(t *testing.T) {
	cfg := &config.Config{LogDir: "/srv/app/logs", AccessLog: "/srv/my logs/access.log"}
	if _, err := logrotateSnippet(cfg, "smoothserve"); err == nil || !strings.Contains(err.Error(), "/srv/my logs/access.log") {
		t.Errorf("a path with a space: %v, want an error naming it", err)
	}
	cfg.AccessLog = ""
	if _, err := logrotateSnippet(cfg, "smooth serve"); err == nil || !strings.Contains(err.Error(), `"smooth serve"`) {
		t.Errorf("a unit name with a space: %v, want an error naming it", err)
	}
}
