package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"smoothserve/config"
)

// The logrotate snippet (--print-logrotate UNIT, which install_smoothserve.sh
// writes to /etc/logrotate.d/UNIT) rotates two kinds of logs, each of which
// must be named by exactly one entry (logrotate refuses a file that two
// entries name):
//   - the access logs, wherever the configuration puts them: smoothserve
//     reopens them on SIGUSR1, sent to the unit's main process;
//   - the instances' output, LogDir/NAME.log, which the instances write to
//     directly: copied and truncated. A glob covers the services of
//     tomorrow too, less the access logs that live in LogDir.

var (
	unitName = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
	// safePath is what a logrotate entry names unquoted and unescaped: no
	// spaces, quotes or glob characters.
	safePath = regexp.MustCompile(`^/[A-Za-z0-9/._+,:@-]+$`)
)

const rotation = `	daily
	rotate 14
	compress
	delaycompress
	missingok
	notifempty
`

// logrotateSnippet is the logrotate configuration for cfg's logs, under
// systemd unit unit.
func logrotateSnippet(cfg *config.Config, unit string) (string, error) {
	if !unitName.MatchString(unit) {
		return "", fmt.Errorf("--print-logrotate %q: a unit name has letters, digits and _ . : - only", unit)
	}
	access := accessLogs(cfg)
	for _, p := range append([]string{cfg.LogDir}, access...) {
		if !safePath.MatchString(p) {
			return "", fmt.Errorf("%s: logrotate cannot name this path (spaces, quotes or glob characters); rotate it yourself or rename it", p)
		}
	}
	var b strings.Builder
	if len(access) > 0 {
		fmt.Fprintf(&b, "# Access logs: smoothserve reopens them on SIGUSR1.\n%s {\n%s", strings.Join(access, " "), rotation)
		fmt.Fprintf(&b, "\tsharedscripts\n\tpostrotate\n\t\tsystemctl kill --kill-whom=main --signal=USR1 %s 2>/dev/null || true\n\tendscript\n}\n", unit)
	}
	var inDir []string // the access logs' names in LogDir, less ".log"
	for _, p := range access {
		if filepath.Dir(p) == cfg.LogDir && strings.HasSuffix(p, ".log") {
			inDir = append(inDir, strings.TrimSuffix(filepath.Base(p), ".log"))
		}
	}
	globs := otherLogs(inDir)
	for i, g := range globs {
		globs[i] = filepath.Join(cfg.LogDir, g)
	}
	fmt.Fprintf(&b, "# The instances' output (LogDir/NAME.log): they write to the file directly.\n%s {\n%s\tcopytruncate\n}\n",
		strings.Join(globs, " "), rotation)
	return b.String(), nil
}

// accessLogs are the access logs of cfg, sorted, each once: AccessLog
// (the requests no service takes, and those of every service without an
// access_log of its own) and the services' own.
func accessLogs(cfg *config.Config) []string {
	var paths []string
	if cfg.AccessLog != "" {
		paths = append(paths, cfg.AccessLog)
	}
	for _, s := range cfg.Services {
		if s.AccessLog != "" && s.AccessLog != config.AccessLogOff {
			paths = append(paths, s.AccessLog)
		}
	}
	sort.Strings(paths)
	return slices.Compact(paths)
}

// otherLogs are globs that together match every file name "N.log" for a
// non-empty N not in names, each such name by exactly one of them, and no
// name in names, as glob(3) matches: no wildcard there matches a leading
// '.', which a glob of its own names. The names must hold no glob
// character.
func otherLogs(names []string) []string {
	sort.Strings(names)
	return appendOthers(nil, "", slices.Compact(names))
}

// appendOthers appends the globs for the names beginning with prefix, all
// of names beginning with it.
func appendOthers(globs []string, prefix string, names []string) []string {
	var next []byte // the bytes that follow prefix in names, sorted
	if prefix == "" {
		next = append(next, '.') // a leading '.' only a '.' matches
	}
	for _, n := range names {
		if len(n) > len(prefix) && !slices.Contains(next, n[len(prefix)]) {
			next = append(next, n[len(prefix)])
		}
	}
	if prefix != "" && !slices.Contains(names, prefix) {
		globs = append(globs, prefix+".log") // N is prefix itself
	}
	if len(next) == 0 {
		return append(globs, prefix+"?*.log") // prefix is excluded, and nothing longer
	}
	// Another byte after prefix (a '-' last, where a class takes it
	// literally); then, for each byte of next, the names it begins.
	class := strings.ReplaceAll(string(next), "-", "")
	if strings.Contains(string(next), "-") {
		class += "-"
	}
	globs = append(globs, prefix+"[!"+class+"]*.log")
	for _, c := range next {
		p := prefix + string(c)
		var under []string
		for _, n := range names {
			if strings.HasPrefix(n, p) {
				under = append(under, n)
			}
		}
		globs = appendOthers(globs, p, under)
	}
	return globs
}
