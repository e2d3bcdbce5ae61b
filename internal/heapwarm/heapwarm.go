package heapwarm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned by Populate where the kernel has no
// MADV_POPULATE_WRITE (Linux before 5.14).
var ErrUnsupported = errors.New("the kernel cannot populate memory ahead (MADV_POPULATE_WRITE, Linux 5.14)")

// pageSize is the system's page size.
var pageSize = os.Getpagesize()

// Populate makes resident up to max bytes of the heap mapping that new
// objects come from, its pages not resident lowest first (but for the
// padding at its bottom), and returns how many bytes it made resident:
// fewer than max when the mapping has fewer such pages (the runtime maps
// more as it needs it).
func Populate(max int64) (int64, error) {
	if max < int64(pageSize) {
		return 0, nil
	}
	lo, hi, err := mappingOf(uintptr(unsafe.Pointer(fresh())))
	if err != nil {
		return 0, err
	}
	start, end, n, err := absentPages(lo, hi, max/int64(pageSize))
	if err != nil || n == 0 {
		return 0, err
	}
	if err := populate(start, end); err != nil {
		return 0, fmt.Errorf("populating %d pages of the heap at %#x: %w", n, start, err)
	}
	return n * int64(pageSize), nil
}

// fresh is a new object on the heap (returned, so it cannot be on a
// stack).
//
//go:noinline
func fresh() *[64]byte { return new([64]byte) }

// populate makes the pages of [start, end) resident. It goes by address,
// making no Go pointer to them: they may be pages the runtime has not
// handed out yet.
func populate(start, end uintptr) error {
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, start, end-start, unix.MADV_POPULATE_WRITE); e != 0 {
		if e == unix.EINVAL {
			return ErrUnsupported
		}
		return e
	}
	return nil
}

// mappingOf is the bounds of the mapping that holds p, from
// /proc/self/maps, which must be private, writable and anonymous.
func mappingOf(p uintptr) (lo, hi uintptr, err error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 7f2c4a000000-7f2c4a800000 rw-p 00000000 00:00 0 [path]
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 5 {
			continue
		}
		a, b, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(a), 16, 64)
		end, err2 := strconv.ParseUint(string(b), 16, 64)
		if err1 != nil || err2 != nil || p < uintptr(start) || p >= uintptr(end) {
			continue
		}
		if !privateAnonymous(fields) {
			return 0, 0, fmt.Errorf("the heap's mapping %s is %s, not private anonymous memory", fields[0], bytes.Join(fields[1:], []byte(" ")))
		}
		return uintptr(start), uintptr(end), nil
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("reading /proc/self/maps: %w", err)
	}
	return 0, 0, fmt.Errorf("no mapping in /proc/self/maps holds the heap's address %#x", p)
}

// privateAnonymous reports whether the fields of a line of
// /proc/PID/maps are those of private, writable anonymous memory: no file
// (inode 0), and no name but one given by prctl(PR_SET_VMA_ANON_NAME),
// "[anon: Go: heap]" where the kernel keeps such names (Go 1.25 names its
// mappings).
func privateAnonymous(fields [][]byte) bool {
	if len(fields) < 5 || string(fields[1]) != "rw-p" || string(fields[4]) != "0" {
		return false
	}
	return len(fields) == 5 || bytes.HasPrefix(fields[5], []byte("[anon:"))
}

// absentPages is the range [start, end) of [lo, hi) that holds its
// lowest max pages not resident above its lowest resident one (n of them;
// resident pages among them are left as they are). The pages not resident
// below the lowest resident one are the heap's padding, never used.
func absentPages(lo, hi uintptr, max int64) (start, end uintptr, n int64, err error) {
	vec := make([]byte, (hi-lo)/uintptr(pageSize))
	if len(vec) == 0 {
		return 0, 0, 0, nil
	}
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, lo, hi-lo, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return 0, 0, 0, fmt.Errorf("mincore of the heap at %#x: %w", lo, e)
	}
	i := 0
	for i < len(vec) && vec[i]&1 == 0 {
		i++
	}
	first := -1
	for ; i < len(vec) && n < max; i++ {
		if vec[i]&1 != 0 {
			continue
		}
		if first < 0 {
			first = i
		}
		n++
		end = lo + uintptr((i+1)*pageSize)
	}
	if n == 0 {
		return 0, 0, 0, nil
	}
	return lo + uintptr(first*pageSize), end, n, nil
}
