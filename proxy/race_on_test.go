//go:build race

package proxy

// raceBuild: built with -race, under which a sync.Pool drops some of what
// is put in it, on purpose: a pooled buffer is sometimes made anew.
const raceBuild = true
