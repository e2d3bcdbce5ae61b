package nofile

import (
	"sync/atomic"
	"time"
)

// WarnEvery is the least time between two log lines saying that
// descriptors lack and nothing could be freed: while they lack, every
// accept, dial and health check fails so.
const WarnEvery = 10 * time.Second

// Said is when a process last said that it ran out of descriptors, so
// that its log says so once in a while however many run out at once. The
// zero Said has never said it.
type Said struct{ at atomic.Int64 } // UnixNano

// Due reports whether it is time to say it: never said, or last said
// WarnEvery ago or more (or at a time after now: a clock stepped back).
// Of the callers at once, one is told true, and it is said from then.
func (s *Said) Due() bool {
	last := s.at.Load()
	now := time.Now().UnixNano() // read after last: a caller that sees another's mark is not before it
	if d := now - last; last != 0 && d >= 0 && d < int64(WarnEvery) {
		return false
	}
	return s.at.CompareAndSwap(last, now)
}
