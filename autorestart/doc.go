// Package autorestart rolls out a service when its files change: the
// services with auto_restart: true have their executable, their own yaml
// file and their watch_files watched (package watch), and once a burst of
// changes is over, the configuration is read afresh and that service's
// part of it is applied (daemon.Daemon.Apply: rolled, then routed).
//
// Invariant: an invalid configuration changes nothing: its errors are
// logged as FILE:LINE: key: what is wrong, and the running instances keep
// serving; the change is tried again, less and less often (up to every
// 30 s), until the configuration is valid, so that a deploy is not lost
// to another file's typo. A change of a service's files applies that service only, never
// another's edited file. A service's changes are applied one after
// another, never two at once. A service that runs keeps its files watched
// until a reload removes it, even once its file is gone from disk or
// disabled: the file coming back is a change like any other.
package autorestart
