package daemon

import (
	"slices"

	"smoothserve/config"
)

// A reload that moves a host (or a port's default) from one service to
// another routes it to the second as the first gives it up, in one
// routing table, whichever of the two runs now, is added or is removed:
// moveHosts does it ahead of the rollouts between services that run now
// and from those removed (routedAhead); a service added takes its hosts
// when it is added (yielding), and keeps them where they are until then
// (keptForAdded). The new service's requests wait for its first
// instance, as at any start; none is answered 404 meanwhile.

// isDefault reports whether svc takes its port's unknown hosts: marked
// default_server, or naming none.
func isDefault(svc *config.Service) bool { return svc.DefaultServer || len(svc.ServerNames) == 0 }

// runs reports whether service name runs (enabled) in cur.
func runs(cur *config.Config, name string) bool {
	r := cur.Service(name)
	return r != nil && r.Enabled
}

// routedAhead is old, running now, as moveHosts routes it ahead of the
// rollouts (old itself when that changes nothing). One that stays gets
// its hosts and default as on disk, but for those a service added takes
// (keptForAdded). One that disk removes or disables keeps its own but
// for those a service that runs now takes.
func routedAhead(old *config.Service, cur, disk *config.Config) *config.Service {
	n := disk.Service(old.Name)
	if old.Enabled && (n == nil || !n.Enabled) {
		return without(old, func(h string) bool { return takenBy(h, old, cur, disk, true) },
			defaultTaken(old, cur, disk, true))
	}
	if n == nil || n.Enabled != old.Enabled {
		return old
	}
	names, def := keptForAdded(old, n, cur, disk)
	if slices.Equal(names, old.ServerNames) && def == old.DefaultServer {
		return old
	}
	svc := *old
	svc.ServerNames, svc.DefaultServer = names, def
	return &svc
}

// keptForAdded is the hosts, and whether it is its port's default, of
// old, running now and on disk as n: n's, with those of old's hosts that
// a service added takes, and its being the default if an added one is
// its port's default.
func keptForAdded(old, n *config.Service, cur, disk *config.Config) (names []string, def bool) {
	names = slices.Clone(n.ServerNames)
	for _, h := range old.ServerNames {
		if !slices.Contains(names, h) && takenBy(h, old, cur, disk, false) {
			names = append(names, h)
		}
	}
	return names, n.DefaultServer || isDefault(old) && defaultTaken(old, cur, disk, false)
}

// without is s without the hosts taken, and no longer its port's default
// if defTaken; s itself if that changes nothing. Left with no host and
// not the default (it would become the default), it is no longer routed:
// it is on its way out (removed, or disabled).
func without(s *config.Service, taken func(string) bool, defTaken bool) *config.Service {
	names := slices.DeleteFunc(slices.Clone(s.ServerNames), taken)
	lost := isDefault(s) && defTaken
	if len(names) == len(s.ServerNames) && !lost {
		return s
	}
	y := *s
	y.ServerNames = names
	if lost {
		y.DefaultServer = false
	}
	if len(names) == 0 && !y.DefaultServer {
		y.Enabled = false
	}
	return &y
}

// takenBy reports whether another service than old has host h on disk:
// one that runs now (running), or one added.
func takenBy(h string, old *config.Service, cur, disk *config.Config, running bool) bool {
	for _, t := range disk.Services {
		if t.Name != old.Name && t.Enabled && runs(cur, t.Name) == running && slices.Contains(t.ServerNames, h) {
			return true
		}
	}
	return false
}

// defaultTaken reports whether another service than old is old's port's
// default on disk: one that runs now (running), or one added.
func defaultTaken(old *config.Service, cur, disk *config.Config, running bool) bool {
	for _, t := range disk.Services {
		if t.Name != old.Name && t.Enabled && runs(cur, t.Name) == running && t.Port == old.Port && isDefault(t) {
			return true
		}
	}
	return false
}

// yielding is cfg with what svc, added, takes from the services routed in
// it: the hosts it names that disk no longer gives the service that has
// them, and its port's default if disk no longer makes that one the
// default (without).
func yielding(cfg *config.Config, svc *config.Service, disk *config.Config) *config.Config {
	if !svc.Enabled {
		return cfg
	}
	next := *cfg
	next.Services = slices.Clone(cfg.Services)
	for i, s := range next.Services {
		if s.Name == svc.Name || !s.Enabled {
			continue
		}
		on := disk.Service(s.Name)
		gone := on == nil || !on.Enabled
		next.Services[i] = without(s,
			func(h string) bool {
				return slices.Contains(svc.ServerNames, h) && (gone || !slices.Contains(on.ServerNames, h))
			},
			s.Port == svc.Port && isDefault(svc) && (gone || !isDefault(on)))
	}
	return &next
}

// takesRoutes reports whether svc, added, takes a host or a port's
// default from a service routed now (yielding changes one).
func (d *Daemon) takesRoutes(svc *config.Service, disk *config.Config) bool {
	cur := d.config()
	next := yielding(cur, svc, disk)
	for i, s := range cur.Services {
		if next.Services[i] != s {
			return true
		}
	}
	return false
}
