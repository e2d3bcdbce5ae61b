package logtail

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestLines(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var long strings.Builder
	for i := range 10000 { // 10000 lines of 10 bytes or more: past the window
		long.WriteString("line " + strconv.Itoa(100000+i) + "\n")
	}
	abc := write("abc.log", "a\nb\nc\n")
	tests := []struct {
		name string
		path string
		from int64
		n    int
		want []string
	}{
		{"fewer lines than asked", abc, 0, 20, []string{"a", "b", "c"}},
		{"the last n", abc, 0, 2, []string{"b", "c"}},
		{"after an offset", abc, 2, 20, []string{"b", "c"}},
		{"nothing after the offset", abc, 6, 20, nil},
		{"no newline at the end", write("open.log", "a\nb"), 0, 20, []string{"a", "b"}},
		{"empty", write("empty.log", ""), 0, 20, nil},
		{"blank lines only", write("blank.log", "\n\n"), 0, 20, nil},
		{"missing", filepath.Join(dir, "nope.log"), 0, 20, nil},
		{"longer than the window", write("long.log", long.String()), 0, 2, []string{"line 109998", "line 109999"}},
	}
	for _, tt := range tests {
		if got := Lines(tt.path, tt.from, tt.n); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Lines(%s, %d, %d) = %q, want %q", tt.name, filepath.Base(tt.path), tt.from, tt.n, got, tt.want)
		}
	}
	// Past the window, the partial line the window starts in is left out.
	got := Lines(filepath.Join(dir, "long.log"), 0, 1<<20)
	if len(got) == 0 || !strings.HasPrefix(got[0], "line ") || len(got[0]) != len("line 100000") {
		t.Errorf("the first line past the window is %q, want a whole line", got[:1])
	}
}
