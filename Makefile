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
# `tunstack drill --json` runs them (tunstack and gvisor in virtual time; the
# linux target needs root and is skipped with a message otherwise), then
# docs/conformance.md from the results. Fails when a stack disagrees with
# tunstack on a script and conformance/differences.json (or a
# tunstack-difference marker in the script) does not say why.
CONFORMANCE_STACKS ?= linux tunstack gvisor
conformance: build
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	scripts=$$(find conformance/scripts -name '*.pkt' | sort); notrun=; \
	for s in $(CONFORMANCE_STACKS); do \
		if [ "$$s" = linux ] && [ "$$(id -u)" != 0 ]; then \
			echo "== conformance on linux: skipped, the linux target needs root (sudo make conformance)"; \
			notrun="linux=this run was not root"; continue; \
		fi; \
		echo "== conformance on $$s"; \
		./bin/tunstack drill --stack $$s --json $$scripts > "$$tmp/$$s.json"; \
		[ $$? -le 1 ] || exit 1; \
	done; \
	./bin/tunstack conformance-doc --stacks "$$(echo $(CONFORMANCE_STACKS) | tr ' ' ,)" \
		$${notrun:+--not-run "$$notrun"} "$$tmp"/*.json
