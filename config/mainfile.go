package config

// LoadMain reads smoothserve.yaml at path alone, with its defaults and its
// own rules, and none of the service files: its Config has no Services.
//
// It is for smoothtool, which needs only where the daemon is (ControlSocket)
// and must find it even while a service file is broken, since stopping the
// daemon or asking its status is how an operator gets out of that state.
func LoadMain(path string) (*Config, error) {
	l, err := newLoader(path)
	if err != nil {
		return nil, err
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
