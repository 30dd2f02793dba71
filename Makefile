# sudo may reset PATH and lose Go's directory; fall back to where the
# machines keep it.
GO    ?= $(shell command -v go || echo /usr/local/go/bin/go)
GOFMT ?= $(shell command -v gofmt || echo /usr/local/go/bin/gofmt)

.PHONY: build run test lint bench

build:
	$(GO) build -o bin/tunstack ./cmd/tunstack

# Needs root for the TUN device: sudo make run
run: build
	./bin/tunstack serve

test:
	$(GO) vet ./...
	$(GO) test -race -timeout 14m ./...

lint:
	@out="$$($(GOFMT) -l .)"; if [ -n "$$out" ]; then echo "gofmt -l lists files to format:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./tcpcore/... ./netif/...
