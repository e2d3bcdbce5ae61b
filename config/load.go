package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// ErrUnreadable is in the error of Load and LoadMain, for errors.Is, when
// the file they were given cannot be read at all (missing, a folder, no
// permission): nothing could be checked, so a command says the file is not
// there rather than that the configuration is invalid.
var ErrUnreadable = errors.New("cannot read the configuration file")

// newLoader starts loading the configuration at path.
func newLoader(path string) (*loader, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, ErrorList{{File: path, Msg: "cannot make the path absolute: " + err.Error(), Err: err}}
	}
	return &loader{
		cfg:  &Config{Path: abs, Dir: filepath.Dir(abs), Lines: map[string]int{}},
		svc:  map[*Service]*fileKeys{},
		rank: map[string]int{abs: 0},
	}, nil
}

// Load reads smoothserve.yaml at path (relative to the working directory if
// not absolute) and every *.yaml and *.yml file of its SubConfigDir, in name
// order and not recursively. It returns a complete, valid *Config, or a nil
// one and an ErrorList naming every problem found; when path itself cannot
// be read, that is the one problem, and errors.Is(err, ErrUnreadable).
func Load(path string) (*Config, error) {
	l, err := newLoader(path)
	if err != nil {
		return nil, err
	}
	if l.readMain() {
		l.defaultMain()
		l.readServices()
		for _, s := range l.cfg.Services {
			l.defaultService(s)
		}
		l.validate()
	}
	if len(l.errs) > 0 {
		sortErrors(l.errs, l.rank)
		return nil, l.errs
	}
	sort.SliceStable(l.cfg.Services, func(i, j int) bool {
		return l.cfg.Services[i].Name < l.cfg.Services[j].Name
	})
	return l.cfg, nil
}

// loader is the state of one Load call; nothing else sees it.
type loader struct {
	cfg  *Config
	main *fileKeys              // keys of smoothserve.yaml
	svc  map[*Service]*fileKeys // keys of each service file
	errs ErrorList
	rank map[string]int // each file's place in the order files were read, for sorting errors

	// Set by validateService for the cross-service checks, which skip a
	// service whose own port or port range is already reported as wrong.
	goodPort  map[*Service]bool
	goodRange map[*Service]bool
	goodHTTPS bool          // HTTPSPort is set and a port
	admin     adminListener // AdminAddr, when set and valid
}

func (l *loader) add(errs ...*Error) { l.errs = append(l.errs, errs...) }

func (l *loader) warn(e *Error) { l.cfg.Warnings = append(l.cfg.Warnings, e.Error()) }

// readMain reads and decodes smoothserve.yaml. It reports false when the
// file cannot be read or is not YAML: nothing in it can be trusted, not even
// where the service files are.
func (l *loader) readMain() bool {
	c := l.cfg
	data, err := os.ReadFile(c.Path)
	if err != nil {
		l.add(&Error{File: c.Path, Msg: unreadable(err), Err: fmt.Errorf("%w: %w", ErrUnreadable, err)})
		return false
	}
	root, perr := parseDocument(c.Path, data)
	if perr != nil {
		l.add(perr)
		return false
	}
	// An empty smoothserve.yaml is allowed: every key has a default but
	// ProxyPort, which the services may each set instead.
	l.main = newFileKeys(c.Path, root, c.Lines)
	l.add(decodeKeys(l.main, root, mainKeys(c))...)
	return true
}

// readServices reads every service file of SubConfigDir. A file that cannot
// be read or parsed is reported and left out of Config.Services.
func (l *loader) readServices() {
	c := l.cfg
	if !l.main.usable("SubConfigDir") {
		return
	}
	entries, err := os.ReadDir(c.SubConfigDir)
	if err != nil {
		l.add(l.main.errorf("SubConfigDir", "%s: %s", c.SubConfigDir, cause(err)))
		return
	}
	for _, e := range entries { // os.ReadDir sorts by name
		name := e.Name()
		if !strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".yml") {
			continue
		}
		file := filepath.Join(c.SubConfigDir, name)
		info, err := os.Stat(file) // follows a symlink, unlike e.Info
		if err == nil && info.IsDir() {
			continue
		}
		l.rank[file] = len(l.rank)
		if err != nil {
			l.add(&Error{File: file, Msg: unreadable(err), Err: err})
			continue
		}
		l.readService(file)
	}
	if len(l.rank) == 1 {
		l.warn(&Error{File: c.Path, Line: c.Lines["SubConfigDir"], Key: "SubConfigDir",
			Msg: c.SubConfigDir + " holds no *.yaml or *.yml service files: there is nothing to serve"})
	}
}

func (l *loader) readService(file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		l.add(&Error{File: file, Msg: unreadable(err), Err: err})
		return
	}
	root, perr := parseDocument(file, data)
	if perr != nil {
		l.add(perr)
		return
	}
	if root == nil {
		l.add(&Error{File: file, Msg: "empty service file"})
		return
	}
	s := &Service{File: file, Lines: map[string]int{}}
	k := newFileKeys(file, root, s.Lines)
	l.add(decodeKeys(k, root, serviceKeys(s))...)
	l.svc[s] = k
	l.cfg.Services = append(l.cfg.Services, s)
}

// unreadable says why a file cannot be read, without the path that the
// *Error already names.
func unreadable(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, syscall.EISDIR):
		return "a folder, not a file"
	}
	return "cannot read: " + cause(err)
}

// cause is what went wrong with a file operation, without the path that the
// *Error already names.
func cause(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or folder"
	case errors.Is(err, syscall.ENOTDIR):
		return "not a folder"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
