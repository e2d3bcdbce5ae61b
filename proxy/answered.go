package proxy

// Answered is how many requests this process has answered, every
// service's: what Stats sums, without the counters of the process it
// replaced (SetBase). A drain's "served since it began" is told from it.
func (s *Server) Answered() uint64 {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	var n uint64
	for _, st := range s.stats {
		for i := range st.shards {
			for b := range st.shards[i].buckets {
				n += st.shards[i].buckets[b].Load()
			}
		}
	}
	return n
}
