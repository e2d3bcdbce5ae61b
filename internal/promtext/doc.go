// Package promtext writes metrics in Prometheus' text exposition format
// (version 0.0.4, what every Prometheus server and agent scrapes), and the
// go_ and process_ families that client_golang's default collectors
// expose, read from the runtime and /proc.
//
// Why not client_golang itself: a program that links it pays for its
// package initialization (its default registry, with a Go collector built
// from runtime/metrics' descriptions, and procfs' and protobuf's inits)
// at every start, whether or not anything is ever scraped: about 5 ms of
// CPU and 140 page faults a start on the machines smoothserve is measured
// on, a sixth of what a new smoothserve costs at an upgrade. The tests keep
// client_golang as the oracle: what this package writes for a set of
// metrics is, byte for byte, what client_golang writes for the same const
// metrics, and its go_ and process_ families are client_golang's by name
// and type.
//
// Invariant: a Set's text is valid for Prometheus' own parser whatever the
// label values (escaped; invalid UTF-8 replaced); families are written in
// the order of their names, a family's samples in the order of their label
// values, label pairs in the order of their names; a histogram's buckets
// in the order of their bounds (their counts as given: cumulative), ending
// with le="+Inf"; two samples of one family with the same label values,
// two families of one name, or a family named as a histogram's or a
// summary's series (NAME_count…) are an error of WriteTo, never one
// series twice in the output.
package promtext
