package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Service returns the service called name, or nil.
func (c *Config) Service(name string) *Service {
	for _, s := range c.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// ProxyPorts returns, sorted and without repeats, every port the proxy
// listens on for plain HTTP: each port with at least one enabled service,
// and ProxyPort when it is set even if no service uses it. HTTPSPort is
// never among them (Load keeps it apart from every plain port): TLS is
// served there, and opened on its own.
func (c *Config) ProxyPorts() []int {
	seen := map[int]bool{}
	if c.ProxyPort != 0 {
		seen[c.ProxyPort] = true
	}
	for _, s := range c.Services {
		if s.Enabled {
			seen[s.Port] = true
		}
	}
	if c.HTTPSPort != 0 {
		delete(seen, c.HTTPSPort) // only in a Config that Load did not check
	}
	ports := make([]int, 0, len(seen))
	for p := range seen {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	return ports
}

// TLSServices returns the enabled services with tls on (auto or files), in
// the order of Services: the ones served at HTTPSPort, which Load ensures
// is set when there are any.
func (c *Config) TLSServices() []*Service {
	var list []*Service
	for _, s := range c.Services {
		if s.Enabled && s.tlsOn() {
			list = append(list, s)
		}
	}
	return list
}

// tlsOn reports whether the service is served over TLS, as tls auto or
// files.
func (s *Service) tlsOn() bool { return s.TLS == TLSAuto || s.TLS == TLSFiles }

// Errorf returns an *Error at the line of key in the service's file (the
// file alone if key is not written there), for problems found after Load,
// such as an executable that fails to start. %w wraps as in fmt.Errorf.
func (s *Service) Errorf(key string, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{File: s.File, Line: s.Lines[key], Key: key, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// InstancePort is the port of instance slot (0..InstanceCount-1): primary
// ports are StartInstancePort+slot, alternate ones (for a surge rollout,
// where old and new instances of a slot run side by side) follow all the
// primaries. It panics on a slot out of range, which is a caller's bug.
func (s *Service) InstancePort(slot int, alt bool) int {
	if slot < 0 || slot >= s.InstanceCount {
		panic("config: service " + s.Name + ": instance slot " + strconv.Itoa(slot) + " out of range")
	}
	if alt {
		return s.StartInstancePort + s.InstanceCount + slot
	}
	return s.StartInstancePort + slot
}

// ExpandArgs returns Args with every "{port}" replaced by port.
func (s *Service) ExpandArgs(port int) []string {
	p := strconv.Itoa(port)
	args := make([]string, len(s.Args))
	for i, a := range s.Args {
		args[i] = strings.ReplaceAll(a, "{port}", p)
	}
	return args
}

// ExpandEnv returns Env as KEY=value entries, by key, with every "{port}"
// in a value replaced by port, as in Args: PORT: "{port}" for an app that
// reads its port from the environment (Node's process.env.PORT).
func (s *Service) ExpandEnv(port int) []string {
	p := strconv.Itoa(port)
	env := make([]string, 0, len(s.Env))
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		env = append(env, k+"="+strings.ReplaceAll(s.Env[k], "{port}", p))
	}
	return env
}

// reservedPorts is the range of every instance port, primary and
// alternate: [StartInstancePort, StartInstancePort+2*InstanceCount).
func (s *Service) reservedPorts() (first, last int) {
	return s.StartInstancePort, s.StartInstancePort + 2*s.InstanceCount - 1
}
