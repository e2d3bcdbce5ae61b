package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const script = "#!/bin/sh\nexit 0\n"

// tree is the files of a test setup, by path relative to its folder. A file
// whose text starts with "#!" is made executable.
type tree map[string]string

// write writes files under a new temporary folder and returns it. The
// folder's real path is used, so that paths in messages match what Load
// makes of it.
func (files tree) write(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files.writeIn(t, dir)
	return dir
}

// writeIn writes files under dir.
func (files tree) writeIn(t *testing.T, dir string) {
	t.Helper()
	for rel, text := range files {
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(text, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(path, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// expand replaces $MAIN, $S and $D in want with the paths of smoothserve.yaml,
// the services folder and the setup folder.
func expand(dir, want string) string {
	return strings.NewReplacer(
		"$MAIN", filepath.Join(dir, "smoothserve.yaml"),
		"$S", filepath.Join(dir, "services"),
		"$D", dir,
	).Replace(want)
}

// errorLines is the lines of the ErrorList err, or fails the test if err is
// not one.
func errorLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Load error is a %T, want an ErrorList: %v", err, err)
	}
	if len(list) == 0 {
		t.Fatal("Load returned an empty ErrorList as an error")
	}
	return strings.Split(list.Error(), "\n")
}

// mustLoad loads dir/smoothserve.yaml and fails the test on any error.
func mustLoad(t *testing.T, dir string) *Config {
	t.Helper()
	cfg, err := Load(filepath.Join(dir, "smoothserve.yaml"))
	if err != nil {
		t.Fatalf("Load: unexpected errors:\n%v", err)
	}
	return cfg
}

func checkEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}
