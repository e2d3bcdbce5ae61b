// Package config loads smoothserve.yaml and its service files.
//
// The invariant: a *Config that Load returns without error is complete and
// checked. Every default is filled in, every path in it is absolute, and
// every rule below holds; nothing downstream re-validates or guesses. When
// any rule fails, Load returns no Config and an ErrorList that names every
// problem, each as FILE:LINE: key: what is wrong. The one exception is
// LoadMainLenient, for smoothtool: it returns smoothserve.yaml's Config with
// its problems when they leave the control socket's path known; that
// Config is for finding the daemon, never for running one.
//
// Parsing is strict: an unknown key (with the closest known one suggested),
// a duplicate key, or a value of the wrong type is an error. A key written
// with no value (`port:`) counts as absent. Defaults live in defaults.go,
// rules in validate.go, validate_cross.go, validate_tls.go and
// validate_admin.go (the access log and admin listener keys).
//
// The rules between services hold for enabled ones: one enabled service per
// host and proxy port, at most one default service (no server_name, or
// default_server) per port, and instance port ranges — two ports per
// instance, [start_instance_port, start_instance_port+2*instance_count), the
// second half for surge rollouts — that neither overlap nor hold a proxy
// port.
// The enabled services with tls on are also served together at HTTPSPort,
// so the host rules hold there too, and HTTPSPort is none of the other
// ports. Names are unique among all services, enabled or not. A disabled
// service's executable, working_dir, tls_cert and tls_key need not exist
// yet.
//
// A non-loopback AdminAddr needs AdminAuth: the admin listener is not
// left open to other machines.
//
// Things worth knowing that are not errors (CommandPort, which opens
// nothing; a watch_files path that does not exist yet; no service files;
// health check settings without health_check; AdminAuth without
// AdminAddr) are returned in Config.Warnings.
package config
