//go:build !race

package proxy

// raceBuild: built without -race (see race_on_test.go).
const raceBuild = false
