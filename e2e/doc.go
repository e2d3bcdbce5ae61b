// Package e2e holds end-to-end tests: they build the real smoothserve,
// smoothtool and demo binaries from this tree, run them on free 127.0.0.1
// ports in a temporary folder, and judge them as a user would, with a
// strict keep-alive client that never retries (internal/loadclient).
// Instances behave as real ones do: the load tests' demo instances close
// keep-alive connections idle for 200 ms and stream chunked responses, and
// a Node.js service (examples/node) runs where node is installed (in CI it
// must be: .ci/run installs it). The fleet tests (fleet_test.go) run two
// smoothserve hosts on 127.0.0.2 and 127.0.0.3 behind a real HAProxy on
// 127.0.0.1 and roll them with examples/fleet's Ansible playbook
// (ansible-playbook, or the same steps taken by the test where it is
// missing; haproxy is required in CI, which installs both).
//
// Every test ends every process it started, by pid.
package e2e
