# smoothserve — `make run` builds everything and runs the daemon in the
# foreground with smoothserve.yaml; `make test` is the test suite CI runs.
GO ?= go
DEMO := examples/demo/demo
# Static binaries (no cgo: Go's own resolver): no dynamic loader and libc to
# map at start, which every upgrade (a new smoothserve) and every smoothtool
# call pays for, about 1 ms of CPU each here. The tests need cgo (-race).
BUILD := CGO_ENABLED=0 $(GO) build

.PHONY: all build run test vet bench clean fuzz FORCE

all: build

build: smoothserve smoothtool $(DEMO)

smoothserve: FORCE
	$(BUILD) -o $@ ./cmd/smoothserve

smoothtool: FORCE
	$(BUILD) -o $@ ./cmd/smoothtool

$(DEMO): FORCE
	$(BUILD) -o $@ ./examples/demo

run: build
	./smoothserve --config smoothserve.yaml

vet:
	$(GO) vet ./...

# -count=1: e2e and conformance build the real binaries, which go's test
# cache does not see; a cached pass could hide a change to them.
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...

# Side by side with nginx, HAProxy and Caddy, and the cost of restarts and
# upgrades (bench/README.md). Installs the tools it lacks from Debian.
# Quick run: make bench BENCH_DURATION=5s BENCH_ROUNDS=1
bench:
	bench/install-deps.sh
	$(GO) run ./bench/sidebyside

# The differential conformance suite (conformance/doc.go): raw HTTP/1.1
# cases through smoothserve, nginx and HAProxy, each in front of the same
# recording instance, and the table of how each treated each case. Installs
# nginx and HAProxy from Debian if missing; otherwise runs the columns it
# can. Fails when smoothserve does not do what a case expects.
# make conformance CONFORMANCE_PROXIES=nginx CONFORMANCE_CASES='^K'
.PHONY: conformance
CONFORMANCE_PROXIES ?= smoothserve,nginx,haproxy
conformance:
	bench/install-deps.sh nginx-light haproxy || echo "conformance: nginx or haproxy could not be installed; running the columns that can run" >&2
	cd conformance && CONFORMANCE_PROXIES=$(CONFORMANCE_PROXIES) $(GO) test -count=1 -timeout 15m -run '^TestConformance$$'

# Fuzzes each of the proxy's fuzz targets for FUZZTIME in turn (all of
# them, failing at the end if one found a crasher); go prints each one's
# execs. A crasher is written to proxy/testdata/fuzz/<Target>/, where
# go test ./proxy/ runs it from then on.
FUZZTIME ?= 60s
FUZZ_TARGETS := FuzzRequestHead FuzzChunked FuzzResponseHead FuzzExchange

fuzz:
	@status=0; for t in $(FUZZ_TARGETS); do \
		echo "== $$t"; \
		$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./proxy/ || status=1; \
	done; exit $$status

clean:
	rm -f smoothserve smoothtool $(DEMO)
	rm -rf logs

FORCE:
