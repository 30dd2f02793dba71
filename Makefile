# sudo may reset PATH and lose Go's directory; fall back to where the
# machines keep it.
GO    ?= $(shell command -v go || echo /usr/local/go/bin/go)
GOFMT ?= $(shell command -v gofmt || echo /usr/local/go/bin/gofmt)

.PHONY: build run test lint bench conformance

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

# Every conformance script on each stack of CONFORMANCE_STACKS, as
# `tunstack drill` runs them; the linux target needs root.
CONFORMANCE_STACKS ?= linux
conformance: build
	@rc=0; for s in $(CONFORMANCE_STACKS); do \
		echo "== conformance on $$s"; \
		./bin/tunstack drill --stack $$s $$(find conformance/scripts -name '*.pkt' | sort) || rc=1; \
	done; exit $$rc
