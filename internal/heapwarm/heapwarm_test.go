package heapwarm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// region is an anonymous private mapping of pages pages, unmapped at the
// test's end.
func region(t *testing.T, pages int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, pages*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

// resident is which pages of b are resident (mincore).
func resident(t *testing.T, b []byte) []bool {
	t.Helper()
	vec := make([]byte, len(b)/pageSize)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, addr(b), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	r := make([]bool, len(vec))
	for i, v := range vec {
		r[i] = v&1 != 0
	}
	return r
}

func TestAbsentPages(t *testing.T) {
	b := region(t, 16)
	lo, hi := addr(b), addr(b)+uintptr(len(b))
	page := func(i int) uintptr { return lo + uintptr(i*pageSize) }
	check := func(what string, max int64, wantStart, wantEnd uintptr, wantN int64) {
		t.Helper()
		start, end, n, err := absentPages(lo, hi, max)
		if err != nil || start != wantStart || end != wantEnd || n != wantN {
			t.Errorf("%s, max %d: pages [%d, %d), %d, %v; want [%d, %d), %d", what, max,
				int(start-lo)/pageSize, int(end-lo)/pageSize, n, err,
				int(wantStart-lo)/pageSize, int(wantEnd-lo)/pageSize, wantN)
		}
	}
	check("nothing resident: all padding", 4, 0, 0, 0)
	// Pages 2, 3 and 6 resident: 0 and 1 are the padding; 4, 5, 7... next.
	for _, p := range []int{2, 3, 6} {
		b[p*pageSize] = 1
	}
	check("pages 2, 3, 6 resident", 1, page(4), page(5), 1)
	check("pages 2, 3, 6 resident", 3, page(4), page(8), 3) // page 6 between, left as it is
	check("pages 2, 3, 6 resident", 100, page(4), hi, 11)
	for p := 2; p < 16; p++ {
		b[p*pageSize] = 1
	}
	check("every page from 2 on resident", 4, 0, 0, 0)
}

func TestPopulateLeavesMemoryAsItWas(t *testing.T) {
	b := region(t, 8)
	b[3*pageSize+7] = 42
	if err := populate(addr(b)+uintptr(pageSize), addr(b)+uintptr(6*pageSize)); errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	want := []bool{false, true, true, true, true, true, false, false}
	for i, r := range resident(t, b) {
		if r != want[i] {
			t.Errorf("page %d resident: %v, want %v", i, r, want[i])
		}
	}
	for i, v := range b {
		if i == 3*pageSize+7 && v != 42 || i != 3*pageSize+7 && v != 0 {
			t.Fatalf("byte %d is %d after populate", i, v)
		}
	}
}

func TestPopulateTheHeap(t *testing.T) {
	if n, err := Populate(int64(pageSize) - 1); n != 0 || err != nil {
		t.Fatalf("Populate(less than a page) = %d, %v; want 0, nil", n, err)
	}
	lo, hi, err := mappingOf(uintptr(unsafe.Pointer(fresh())))
	if err != nil {
		t.Fatal(err)
	}
	_, _, room, err := absentPages(lo, hi, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if room < 8 {
		t.Skipf("the heap's mapping has %d pages above its highest resident one: nothing to see", room)
	}
	budget := room / 2
	n, err := Populate(budget * int64(pageSize))
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil || n != budget*int64(pageSize) {
		t.Fatalf("Populate(%d pages) = %d bytes, %v; want %d pages", budget, n, err, budget)
	}
	// The runtime may have taken pages meanwhile, which only lowers what
	// is left; it returns none here (the scavenger keeps to free pages).
	if _, _, after, err := absentPages(lo, hi, 1<<40); err != nil || after > room-budget {
		t.Errorf("%d pages above the highest resident one before, %d after populating %d (%v)", room, after, budget, err)
	}
}

func TestMappingOf(t *testing.T) {
	b := region(t, 4)
	lo, hi, err := mappingOf(addr(b) + uintptr(pageSize))
	if err != nil || lo > addr(b) || hi < addr(b)+uintptr(len(b)) {
		t.Errorf("mappingOf(an mmap of 4 pages at %#x) = [%#x, %#x), %v", addr(b), lo, hi, err)
	}
	// The binary's text is a file's, not memory to populate.
	text := reflect.ValueOf(TestMappingOf).Pointer()
	if _, _, err := mappingOf(text); err == nil || !strings.Contains(err.Error(), "not private anonymous memory") {
		t.Errorf("mappingOf(the text at %#x): %v, want a refusal", text, err)
	}
	if _, _, err := mappingOf(uintptr(pageSize)); err == nil || !strings.Contains(err.Error(), "no mapping") {
		t.Errorf("mappingOf(page 1): %v, want none found", err)
	}
}

func TestPrivateAnonymous(t *testing.T) {
	for line, want := range map[string]bool{
		"c000000000-c000400000 rw-p 00000000 00:00 0":                                true,
		"3a79fb400000-3a79fbc00000 rw-p 00000000 00:00 0    [anon: Go: heap]":        true, // a kernel that keeps names
		"7fff89cbd000-7fff89cde000 rw-p 00000000 00:00 0                  [stack]":   false,
		"01175000-011fa000 rw-p 00d75000 fe:00 9978557         /usr/bin/smoothserve": false,
		"7f6bd2d31000-7f6bd2d35000 r--p 00000000 00:00 0                  [vvar]":    false,
		"7f6b8e200000-7f6ba2994000 ---p 00000000 00:00 0":                            false, // reserved, not mapped yet
		"7f6b8c060000-7f6b8c200000 rw-s 00000000 00:01 1234 /dev/zero (deleted)":     false,
		"7f6b8c060000-7f6b8c200000 rw-p 00000000 00:00":                              false,
	} {
		if got := privateAnonymous(bytes.Fields([]byte(line))); got != want {
			t.Errorf("privateAnonymous(%q) = %v, want %v", line, got, want)
		}
	}
}

// helperEnv, set, makes the test binary TestMain's helper: a fresh
// process, whose heap has no pages freed yet.
const helperEnv = "HEAPWARM_TEST_HELPER"

func TestMain(m *testing.M) {
	if how := os.Getenv(helperEnv); how != "" {
		os.Exit(faultsWriting(how == "populate"))
	}
	os.Exit(m.Run())
}

// faultsWriting, where the heap's mapping has 1 MiB or more to populate,
// populates all of it or not, then writes 256 KiB of new objects, and
// prints the minor page faults that took and the pages written ("0 0":
// too little room); it returns 3 if it could not.
func faultsWriting(populate bool) int {
	debug.SetGCPercent(-1)
	lo, hi, err := mappingOf(uintptr(unsafe.Pointer(fresh())))
	if err != nil {
		fmt.Println(err)
		return 3
	}
	if _, _, room, _ := absentPages(lo, hi, 1<<40); room*int64(pageSize) < 1<<20 {
		fmt.Println(0, 0)
		return 0
	}
	if populate {
		if _, err := Populate(1 << 40); err != nil {
			fmt.Println(err)
			return 3
		}
	}
	const objSize, objs = 8 << 10, 32
	keep := make([][]byte, objs)
	var ru0, ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	for i := range keep {
		keep[i] = make([]byte, objSize)
		for j := 0; j < objSize; j += pageSize {
			keep[i][j] = 1 // the page's first touch
		}
	}
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	fmt.Println(ru1.Minflt-ru0.Minflt, objs*objSize/pageSize)
	return 0
}

// faultsIn runs faultsWriting in fresh processes until one had room, and
// returns its figures (0, 0 if none had).
func faultsIn(t *testing.T, how string) (faults, pages int64) {
	t.Helper()
	for range 10 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+how)
		out, err := cmd.Output()
		if strings.Contains(string(out), "MADV_POPULATE_WRITE") {
			t.Skip(string(out))
		}
		if err != nil {
			t.Fatalf("helper (%s): %v: %s", how, err, out)
		}
		fmt.Sscan(string(out), &faults, &pages)
		if pages > 0 {
			return faults, pages
		}
	}
	return 0, 0
}

// What Populate is for: a fresh process's new objects find their pages
// resident instead of faulting each in. Against a process that did not
// populate (the race detector's shadow memory faults in both).
func TestNewObjectsAfterPopulateTakeFewFaults(t *testing.T) {
	cold, pages := faultsIn(t, "touch")
	warm, _ := faultsIn(t, "populate")
	if pages == 0 {
		t.Skip("the heap's mapping had little room in 10 fresh processes")
	}
	t.Logf("%d pages written: %d faults without Populate, %d with", pages, cold, warm)
	if cold-warm < pages/2 {
		t.Errorf("writing %d pages of new objects: %d page faults without Populate, %d after it; want at least %d fewer", pages, cold, warm, pages/2)
	}
}
