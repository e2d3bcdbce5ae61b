package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestHashPasswordFromStdin runs the command on a file as stdin (not a
// terminal: its first line is the password).
func TestHashPasswordFromStdin(t *testing.T) {
	if passwordCost != 12 {
		t.Fatalf("passwordCost %d, want 12", passwordCost)
	}
	defer func(c int) { passwordCost = c }(passwordCost)
	passwordCost = bcrypt.MinCost + 1
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte("s3cret pass\r\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out, notes strings.Builder
	if code := runHashPassword(in, &out, &notes); code != 0 {
		t.Fatalf("exit %d: %s", code, notes.String())
	}
	hash := strings.TrimSuffix(out.String(), "\n")
	if strings.Contains(hash, "\n") {
		t.Fatalf("stdout %q: want the hash alone", out.String())
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret pass")); err != nil {
		t.Errorf("hash %q does not match the password: %v", hash, err)
	}
	if cost, _ := bcrypt.Cost([]byte(hash)); cost != passwordCost {
		t.Errorf("cost %d, want %d", cost, passwordCost)
	}
	if want := `AdminAuth: ["USER:` + hash + `"]`; !strings.Contains(notes.String(), want) {
		t.Errorf("stderr %q lacks %q", notes.String(), want)
	}
}

func TestHashPasswordRefuses(t *testing.T) {
	for name, input := range map[string]string{
		"empty stdin": "",
		"empty line":  "\n",
		"too long":    strings.Repeat("x", 73) + "\n",
	} {
		path := filepath.Join(t.TempDir(), "pw")
		os.WriteFile(path, []byte(input), 0o600)
		in, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var out, notes strings.Builder
		if code := runHashPassword(in, &out, &notes); code != 1 || out.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q; want 1 and nothing", name, code, out.String())
		}
		in.Close()
	}
}

func TestReadLineWithoutNewline(t *testing.T) {
	got, err := readLine(strings.NewReader("last line"))
	if err != nil || got != "last line" {
		t.Errorf("readLine = %q, %v", got, err)
	}
}
