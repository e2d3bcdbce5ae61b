package supervisor

import (
	"maps"
	"slices"
	"testing"

	"smoothserve/config"
	"smoothserve/handoff"
)

// The working directory is part of the fingerprint only when it is not the
// executable's folder: a state file written before working_dir existed
// records the fingerprint of the other settings alone, and an upgrade onto
// this version must not roll every service.
func TestFingerprintWorkingDir(t *testing.T) {
	svc := &config.Service{
		ExecutablePath: "/srv/web/bin/web", WorkingDir: "/srv/web/bin", ServerIP: "127.0.0.1",
		Args: []string{"-port={port}"}, Env: map[string]string{"A": "1"},
	}
	before := handoff.Fingerprint("/srv/web/bin/web", "127.0.0.1", "args", "-port={port}", "env", "A=1")
	if got := Fingerprint(svc); got != before {
		t.Errorf("with the executable's folder as working directory: fingerprint %s, want the one without working_dir %s", got, before)
	}
	moved := *svc
	moved.WorkingDir = "/srv/web"
	if Fingerprint(&moved) == before {
		t.Error("another working directory leaves the fingerprint unchanged")
	}
	// "workdir" cannot pass for a variable of env.
	envLike := *svc
	envLike.Env = map[string]string{"A": "1", "workdir": "/srv/web"}
	if Fingerprint(&envLike) == Fingerprint(&moved) {
		t.Error("an env variable workdir=/srv/web gives the fingerprint of working_dir /srv/web")
	}
}

// After an upgrade, a service whose working_dir changed is rolled, as one
// whose environment changed is.
func TestChangedWorkingDir(t *testing.T) {
	wd := t.TempDir() // not the test binary's folder, the default
	_, _, before, b := handOverTo(t, 1, func(svc *config.Service) { svc.WorkingDir = wd })
	if got := b.sup.Changed(); !slices.Equal(got, []string{"web"}) {
		t.Errorf("Changed() = %v, want [web]", got)
	}
	if got := b.ready(); !maps.Equal(got, before) {
		t.Errorf("after the handoff: %v, want the old instances adopted %v", got, before)
	}
}
