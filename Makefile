# smoothserve — `make run` builds everything and runs the daemon in the
# foreground with smoothserve.yaml; `make test` is the test suite CI runs.
GO ?= go
DEMO := examples/demo/demo

.PHONY: all build run test vet bench clean FORCE

all: build

build: smoothserve smoothtool $(DEMO)

smoothserve: FORCE
	$(GO) build -o $@ ./cmd/smoothserve

smoothtool: FORCE
	$(GO) build -o $@ ./cmd/smoothtool

$(DEMO): FORCE
	$(GO) build -o $@ ./examples/demo

run: build
	./smoothserve --config smoothserve.yaml

vet:
	$(GO) vet ./...

test: vet
	$(GO) test -race -timeout 20m ./...

clean:
	rm -f smoothserve smoothtool $(DEMO)
	rm -rf logs

FORCE:
