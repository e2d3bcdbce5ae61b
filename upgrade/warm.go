package upgrade

import (
	"errors"
	"fmt"
	"runtime/metrics"
	"strconv"
	"strings"

	"smoothserve/internal/heapwarm"
)

// heapFile is the name under which a process that starts an upgrade
// passes the new one its heap in use (a pipe holding the number).
const heapFile = "smoothserve-heap-in-use"

// maxWarm bounds what WarmForTakeOver makes resident: pages the runtime
// does not count (heapwarm), taken while the old process still holds its
// own, under a memory limit too.
const maxWarm = 16 << 20

// WarmForTakeOver makes resident, before this process takes over, as much
// heap memory as the previous process had in use when the upgrade
// started (its connections' buffers, stacks and state, and the garbage
// of serving them: what this one is about to carry), within the heap's
// current mapping and maxWarm. A new process would otherwise fault those
// pages in one at a time as the connections arrive, while their clients
// wait: on a virtual machine, 10-25 µs a page, a tenth of its CPU in the
// 30 ms after a hand-over under load (bench/NOTES.md). Pages made
// resident and not used yet are not in the heap in use this process
// passes on at the next upgrade, so a run of upgrades does not add them
// up.
//
// It returns the bytes made resident: 0 without a previous process, when
// that one, of an earlier release, passed no figure, or on a kernel that
// cannot populate memory ahead (before Linux 5.14). Call it in the idle
// class, before RestorePriority, so that the process serving now does not
// pay for it.
func (u *Upgrader) WarmForTakeOver() (int64, error) {
	b, err := u.InheritedBytes(heapFile, 32)
	if err != nil || len(b) == 0 {
		// Nothing passed, or a pipe read already: one the previous
		// process inherited and passed on, its own figure not passed
		// (tableflip passes on what a process took).
		return 0, err
	}
	theirs, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || theirs < 0 {
		return 0, fmt.Errorf("the previous smoothserve's heap in use is %q, not a number of bytes", b)
	}
	n, err := heapwarm.Populate(min(theirs, maxWarm))
	switch {
	case errors.Is(err, heapwarm.ErrUnsupported):
		return 0, nil // an older kernel: the pages come as they are used, as before
	case err != nil:
		return 0, fmt.Errorf("making the heap resident before taking over: %w", err)
	}
	return n, nil
}

// PassHeapInUse passes the process an upgrade starts this one's heap in
// use, for WarmForTakeOver, if it is carrying connections over to it; 0
// otherwise (a new process with nothing to take needs its start's pages
// only). Call it in the upgrade's prepare. Without it (an error) the new
// process only starts colder.
func (u *Upgrader) PassHeapInUse(carrying bool) error {
	var n int64
	if carrying {
		n = heapInUse()
	}
	return u.PassBytes(heapFile, strconv.AppendInt(nil, n, 10))
}

// heapInUse is the bytes of the heap's spans in use: objects (live or not
// swept yet), the unused room in their spans, and goroutine stacks.
func heapInUse() int64 {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(s)
	var n int64
	for _, v := range s {
		if v.Value.Kind() == metrics.KindUint64 {
			n += int64(v.Value.Uint64())
		}
	}
	return n
}
