package handoff

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Version is the state file format that Write writes and Read accepts.
const Version = 1

// Instance is one running instance as recorded in the state file.
type Instance struct {
	Service   string `json:"service"`
	Slot      int    `json:"slot"`
	Port      int    `json:"port"`
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`        // /proc/PID/stat field 22 (clock ticks after boot): with Pid, identifies the process
	Exe       string `json:"exe"`               // readlink /proc/PID/exe when recorded, " (deleted)" trimmed; empty: not checked
	Session   *int   `json:"session,omitempty"` // /proc/PID/stat field 6 (0 where the session's leader is outside this pid namespace); nil in files of older versions (Leftover)
	State     string `json:"state"`             // "ready", "starting", "draining"…
	// Fingerprint of the settings the process was started with (opaque
	// here); empty in files of older versions: the service's then.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// String names the instance the way errors and logs do: web#2 (pid 123).
func (in Instance) String() string {
	return fmt.Sprintf("%s#%d (pid %d)", in.Service, in.Slot, in.Pid)
}

// State is the whole state file.
type State struct {
	Version   int               `json:"version"` // Version; zero is written as Version
	DaemonPid int               `json:"daemon_pid"`
	WrittenAt time.Time         `json:"written_at"`
	Services  map[string]string `json:"services"` // service name → Fingerprint of its settings (opaque here)
	Instances []Instance        `json:"instances"`
	// Drained lists, by service, the slots the operator took out of
	// rotation (smoothtool drain NAME#SLOT), which stay out.
	Drained map[string][]int `json:"drained,omitempty"`
	// Stopped lists the services the operator stopped (smoothtool stop
	// NAME), which a process this one hands over to keeps stopped.
	Stopped []string `json:"stopped,omitempty"`
	// StatesExact says that every instance's State is as it was when the
	// writer handed over to a new process (an upgrade's freeze), so that
	// one may trust it; false in other writes and in older versions.
	StatesExact bool `json:"states_exact,omitempty"`
}

// Write replaces the state file at path with st, creating its folder. A
// daemon writing it again and again uses a Writer.
func Write(path string, st *State) error {
	data, err := marshal(st)
	if err != nil {
		return fmt.Errorf("writing state file %s: %w", path, err)
	}
	if err := WriteFile(path, data); err != nil {
		return fmt.Errorf("writing state file %w", err)
	}
	return nil
}

// marshal is the text of the state file for st.
func marshal(st *State) ([]byte, error) {
	c := *st
	if c.Version == 0 {
		c.Version = Version
	}
	data, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// WriteFile replaces the file at path with data, creating its folder (0700)
// and the file with mode 0600: what the daemon keeps between runs (the
// state file names pids to signal). The data is written to a temporary
// file in the same folder and renamed over path, so a reader (or a daemon
// started after a crash) sees the old file or the new one, never a part
// of one. Its errors begin with path.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	// No fsync: the file has to outlive smoothserve, not the machine. After
	// a power loss the instances it lists are gone too, and the file is
	// written on every change of an instance, too often to sync each time.
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	committed = true
	return nil
}

// Read reads the state file at path. A missing file is an empty State (no
// daemon ran before) and no error; a file that does not parse, or of a
// newer format, is an error naming the file, and the caller must not guess.
func Read(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Version: Version, Services: map[string]string{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state file %s: %w", path, err)
	}
	// Unknown fields are accepted: a field added without a version bump
	// must not make an older daemon refuse to adopt after a downgrade.
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("reading state file %s: corrupt: %w", path, err)
	}
	if st.Version != Version {
		return nil, fmt.Errorf("reading state file %s: version %d, want %d", path, st.Version, Version)
	}
	if st.Services == nil {
		st.Services = map[string]string{}
	}
	return &st, nil
}

// Fingerprint returns the sha256 (hex) of parts, used to tell whether a
// service's settings changed between daemons. Each part is prefixed with
// its length, so no two different lists of parts collide by concatenation
// (["ab","c"] and ["a","bc"] differ) whatever bytes the parts contain.
func Fingerprint(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}
