package config

// LoadMain reads smoothserve.yaml at path alone, with its defaults and its
// own rules, and none of the service files: its Config has no Services.
// It returns a valid *Config, or a nil one and every problem found.
func LoadMain(path string) (*Config, error) {
	cfg, err := LoadMainLenient(path)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadMainLenient reads smoothserve.yaml as LoadMain does, but a problem
// that leaves ControlSocket known (written, or its default beside the file)
// does not stop it: it returns the Config, with the keys it could read and
// the defaults of the rest, together with the problems (an ErrorList, as
// LoadMain's). The Config is nil when the file cannot be read or is not
// YAML, or ControlSocket itself is at fault: then the error is all there is.
//
// It is for smoothtool, which needs only where the daemon is and must find
// it even while a file is broken, since stopping the daemon or asking its
// status is how an operator gets out of that state; the daemon runs the
// configuration it loaded before the file broke.
func LoadMainLenient(path string) (*Config, error) {
	l, err := newLoader(path)
	if err != nil {
		return nil, err
	}
	read := l.readMain()
	if read {
		l.defaultMain()
		l.validateMain()
	}
	if len(l.errs) == 0 {
		return l.cfg, nil
	}
	sortErrors(l.errs, l.rank)
	if !read || l.errs.about(l.cfg.Path, "ControlSocket") {
		return nil, l.errs
	}
	return l.cfg, l.errs
}
