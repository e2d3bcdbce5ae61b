package heapwarm

import (
	"errors"
	"reflect"
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

func TestAboveResident(t *testing.T) {
	b := region(t, 16)
	lo, hi := addr(b), addr(b)+uintptr(len(b))
	page := func(i int) uintptr { return lo + uintptr(i*pageSize) }
	check := func(what string, max int64, wantStart, wantEnd uintptr, wantN int64) {
		t.Helper()
		start, end, n, err := aboveResident(lo, hi, max)
		if err != nil || start != wantStart || end != wantEnd || n != wantN {
			t.Errorf("%s, max %d: pages [%d, %d), %d, %v; want [%d, %d), %d", what, max,
				(start-lo)/uintptr(pageSize), (end-lo)/uintptr(pageSize), n, err,
				(wantStart-lo)/uintptr(pageSize), (wantEnd-lo)/uintptr(pageSize), wantN)
		}
	}
	check("nothing resident", 4, page(0), page(4), 4)
	check("nothing resident", 100, page(0), hi, 16)
	// Pages 1 and 5 resident: the holes below 5 are not the heap's next.
	b[1*pageSize] = 1
	b[5*pageSize] = 1
	check("pages 1 and 5 resident", 1, page(6), page(7), 1)
	check("pages 1 and 5 resident", 3, page(6), page(9), 3)
	check("pages 1 and 5 resident", 100, page(6), hi, 10)
	b[15*pageSize] = 1
	check("the last page resident", 4, hi, hi, 0)
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
	_, _, room, err := aboveResident(lo, hi, 1<<40)
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
	if _, _, after, err := aboveResident(lo, hi, 1<<40); err != nil || after > room-budget {
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
