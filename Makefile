# smoothserve — `make run` builds everything and runs the daemon in the
# foreground with smoothserve.yaml; `make test` is the test suite CI runs.
GO ?= go
DEMO := examples/demo/demo
# Static binaries (no cgo: Go's own resolver): no dynamic loader and libc to
# map at start, which every upgrade (a new smoothserve) and every smoothtool
# call pays for, about 1 ms of CPU each here. The tests need cgo (-race).
BUILD := CGO_ENABLED=0 $(GO) build

.PHONY: all build run test vet bench clean FORCE

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

test: vet
	$(GO) test -race -timeout 20m ./...

# Side by side with nginx, HAProxy and Caddy, and the cost of restarts and
# upgrades (bench/README.md). Installs the tools it lacks from Debian.
# Quick run: make bench BENCH_DURATION=5s BENCH_ROUNDS=1
bench:
	bench/install-deps.sh
	$(GO) run ./bench/sidebyside

clean:
	rm -f smoothserve smoothtool $(DEMO)
	rm -rf logs

FORCE:
