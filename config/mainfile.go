package config

import "path/filepath"

// LoadMain reads smoothserve.yaml at path alone, with its defaults and its
// own rules, and none of the service files: its Config has no Services.
//
// It is for smoothtool, which needs only where the daemon is (ControlSocket)
// and must find it even while a service file is broken, since stopping the
// daemon or asking its status is how an operator gets out of that state.
func LoadMain(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, ErrorList{{File: path, Msg: "cannot make the path absolute: " + err.Error(), Err: err}}
	}
	l := &loader{
		cfg:  &Config{Path: abs, Dir: filepath.Dir(abs), Lines: map[string]int{}},
		svc:  map[*Service]*fileKeys{},
		rank: map[string]int{abs: 0},
	}
	if l.readMain() {
		l.defaultMain()
		l.validateMain()
	}
	if len(l.errs) > 0 {
		sortErrors(l.errs, l.rank)
		return nil, l.errs
	}
	return l.cfg, nil
}
