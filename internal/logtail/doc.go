// Package logtail reads the last lines of a log file for an error message:
// a failed rollout carries its service's, and smoothtool shows the
// daemon's or a service's when either cannot start.
package logtail
