# sudo may reset PATH and lose Go's directory; fall back to where the
# machines keep it.
GO    ?= $(shell command -v go || echo /usr/local/go/bin/go)
GOFMT ?= $(shell command -v gofmt || echo /usr/local/go/bin/gofmt)

.PHONY: build run test lint bench conformance plots fuzz soak reliability

build:
	$(GO) build -o bin/tunstack ./cmd/tunstack

# Needs root for the TUN device: sudo make run
run: build
	./bin/tunstack serve

# As root, first installs the programs the tests run (scripts/test-tools.sh,
# from internal/testtools/tools.list); without root, the tests that need a
# missing program or root skip and say which. After the race pass, the
# tests too slow under the race detector, built without it (//go:build
# !race): 1000 relayed connections of 1 MiB each way.
test:
	./scripts/test-tools.sh
	$(GO) vet ./...
	$(GO) test -race -timeout 14m ./...
	$(GO) test -timeout 5m -run '^TestRelayConcurrentMiB$$' ./cmd/tunstack

# Every fuzz target of the repository (go test -list '^Fuzz' finds them),
# one after another for FUZZTIME each: go test -fuzz takes one target per
# run. A crash is written to the package's testdata/fuzz/TARGET/ (keep it:
# go test then runs it as a regression test); the target fails after all
# have run, naming the ones that crashed. `make test` runs the seed corpora
# only. FUZZTIME takes go test's -fuzztime forms: 60s, 10m, 5000x.
FUZZTIME ?= 60s
fuzz:
	@list="$$($(GO) test -list '^Fuzz' ./...)" || { echo "$$list"; exit 1; }; \
	targets="$$(echo "$$list" | awk '/^Fuzz/ { n[++k] = $$1; next } /^ok/ { for (i = 1; i <= k; i++) print $$2 "," n[i]; k = 0 }')"; \
	if [ -z "$$targets" ]; then echo "go test -list found no fuzz target"; exit 1; fi; \
	failed=""; \
	for t in $$targets; do \
		pkg=$${t%,*}; name=$${t#*,}; \
		echo "== $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || failed="$$failed $$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets that found a crash:$$failed"; exit 1; fi; \
	echo "all $$(echo "$$targets" | wc -l) fuzz targets ran $(FUZZTIME) without a crash"

lint:
	@out="$$($(GOFMT) -l .)"; if [ -n "$$out" ]; then echo "gofmt -l lists files to format:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Benchmarks (root: namespaces and TUN devices): the micro-benchmarks, then
# `tunstack bench` on every stack and scenario, 3 runs of 5 s windows each,
# bulk-down and bulk-up over IPv6 too (bulk-down-v6, bulk-up-v6, beside
# IPv4 with their ratio), and the relay scenarios, with tunstack profiled. Rewrites
# docs/performance.md and docs/perf/; the raw profiles and the
# micro-benchmark output stay in BENCH_OUT. About 21 minutes on 2 cores.
# BENCH_FLAGS adds flags, e.g. BENCH_FLAGS='--runs 5'.
BENCH_OUT   ?= /tmp/tunstack-bench
BENCH_FLAGS ?=
bench: build
	mkdir -p $(BENCH_OUT)/profiles
	$(GO) test -run '^$$' -bench . -benchmem ./tcpcore/... ./netif/... ./congestion/... > $(BENCH_OUT)/micro.txt; \
		rc=$$?; cat $(BENCH_OUT)/micro.txt; exit $$rc
	GO=$(GO) ./bin/tunstack bench --duration 5s --runs 3 \
		--profile-dir $(BENCH_OUT)/profiles --micro $(BENCH_OUT)/micro.txt \
		--report docs/performance.md $(BENCH_FLAGS)

# Every conformance script on each stack of CONFORMANCE_STACKS, in each
# family of CONFORMANCE_FAMILIES (--ip_version: by default ipv4 and ipv6,
# the kernel's packetdrill selftests' pair, ipv6 with their --mtu=1520, whose
# MSS is IPv4's 1460; CONFORMANCE_FAMILIES='ipv4 ipv6 ipv4-mapped-ipv6' adds
# AF_INET6 sockets over IPv4, which docs/conformance.md does not hold yet), as
# `tunstack drill --json` runs them (tunstack and gvisor in virtual time; the
# linux target needs root and is skipped with a message otherwise), then
# docs/conformance.md from the results. A script with an --ip_version option
# line runs in that family only (the kernel selftests' rule). Fails when a
# stack disagrees with tunstack on a script and conformance/differences.json
# (or a tunstack-difference marker in the script) does not say why. Linux
# runs in real time, so its failures are run again (twice at most) and the
# doc lists the first failures.
# gVisor, the reference beside Linux, runs each script to its end past
# mismatches (--keep-going), so the doc shows how many lines of each matched.
# PACKETDRILL=path/to/packetdrill adds a column: the real packetdrill on this
# machine's Linux (`tunstack oracle`, root), the judge of what a script means;
# it must pass every script and the linux column must agree with it.
CONFORMANCE_STACKS ?= linux tunstack gvisor
CONFORMANCE_FAMILIES ?= ipv4 ipv6
PACKETDRILL ?=
conformance: build
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	all=$$(find conformance/scripts -name '*.pkt' | sort); notrun=; \
	stacks="$(CONFORMANCE_STACKS)"; [ -n "$(PACKETDRILL)" ] && stacks="$$stacks packetdrill"; \
	for fam in $(CONFORMANCE_FAMILIES); do \
		famargs="--ip_version=$$fam"; [ "$$fam" = ipv6 ] && famargs="$$famargs --mtu=1520"; \
		scripts=$$(for f in $$all; do v=$$(sed -n 's/^--ip_version=//p' "$$f" | head -n 1); \
			if [ -z "$$v" ] || [ "$$v" = "$$fam" ]; then echo "$$f"; fi; done); \
		for s in $$stacks; do \
			if { [ "$$s" = linux ] || [ "$$s" = packetdrill ]; } && [ "$$(id -u)" != 0 ]; then \
				echo "== conformance on $$s ($$fam): skipped, it needs root (sudo make conformance)"; \
				case ",$$notrun," in *",$$s,"*) ;; *) notrun="$${notrun:+$$notrun,}$$s";; esac; continue; \
			fi; \
			run="./bin/tunstack drill --stack $$s --json $$famargs"; \
			[ "$$s" = gvisor ] && run="$$run --keep-going"; \
			[ "$$s" = packetdrill ] && run="./bin/tunstack oracle --packetdrill $(PACKETDRILL) --json $$famargs"; \
			echo "== conformance on $$s ($$fam)"; \
			$$run $$scripts > "$$tmp/$$s-$$fam.json"; \
			[ $$? -le 1 ] || exit 1; \
			last="$$tmp/$$s-$$fam.json"; \
			for try in 1 2; do \
				failed=; { [ "$$s" = linux ] || [ "$$s" = packetdrill ]; } && failed=$$(./bin/tunstack conformance-doc --failed "$$last"); \
				[ -n "$$failed" ] || break; \
				echo "== conformance on $$s ($$fam): running the failed scripts again (real time on a loaded machine)"; \
				mkdir -p "$$tmp/retry$$try"; last="$$tmp/retry$$try/$$s-$$fam.json"; \
				$$run $$failed > "$$last"; \
				[ $$? -le 1 ] || exit 1; \
			done; \
		done; \
	done; \
	./bin/tunstack conformance-doc --stacks "$$(echo $$stacks | tr ' ' ,)" \
		$${notrun:+--not-run "$$notrun=this run was not root"} "$$tmp"/*.json $$(ls "$$tmp"/retry1/*.json "$$tmp"/retry2/*.json 2>/dev/null)

# The lab's plots in docs/plots/ (root: namespaces and TUN devices): every
# experiment of `tunstack lab --list` on every stack with --plot, which
# writes NAME-STACK.svg (time-sequence graphs of its connections, from the
# capture), for tunstack where it traced congestion events
# NAME-tunstack-cwnd.svg (cwnd, ssthresh, flight and SRTT through the
# trace's samples, the events marked), and for synflood
# synflood-STACK-syns.svg (SYNs in, SYN-ACKs out and cookies per 100 ms);
# docs/experiments.md shows them. Each run's report
# goes to PLOTS_OUT. Real-time runs, one at a time: about 15 minutes on 2
# cores. TUNSTACK picks the binary (the build target's by default).
PLOTS_OUT ?= /tmp/tunstack-plots
PLOT_STACKS ?= tunstack gvisor linux
TUNSTACK ?= ./bin/tunstack
plots: build
	mkdir -p docs/plots $(PLOTS_OUT)
	@set -e; for name in $$($(TUNSTACK) lab --list); do \
		for stack in $(PLOT_STACKS); do \
			echo "lab $$name on $$stack"; \
			rm -f docs/plots/$$name-$$stack.svg docs/plots/$$name-$$stack-cwnd.svg docs/plots/$$name-$$stack-syns.svg; \
			$(TUNSTACK) lab $$name --stack $$stack --plot docs/plots > $(PLOTS_OUT)/$$name-$$stack.txt; \
		done; \
	done

# A soak (root, not in make test): tunstack serve in a network namespace of
# its own under --impair loss=1%,reorder=1%,dup=0.5%,delay=5ms, 1,000
# clients for SOAK (downloads checked against the /bytes pattern, uploads
# against /upload's SHA-256, echoes with half-closes, early closes,
# resets), its heap, goroutines, connections and descriptors sampled every
# 10 s; it fails on a corrupt byte, a failed operation, or growth that
# does not return once the load ends and the connections are gone. Writes
# docs/reliability/soak.json, soak.svg and serve.log (tunstack soak --help).
SOAK ?= 30m
soak: build
	nice -n 10 ./bin/tunstack soak --duration $(SOAK) --out docs/reliability

# docs/reliability.md (root for the linux column): runs the engine's
# adversarial tests (every test of tcpcore/adversary_test.go) and the
# over-TUN ones (TestHostile*) with -v, collects their RELIABILITY lines,
# runs the conformance scripts they name on linux and gvisor, and adds
# the recorded fuzzing and simulation runs (docs/reliability/runs.json,
# to which `tunstack reliability-doc --record` adds) and the last soak.
# The slow-loris test runs on its own with LORIS connections in each of its
# two populations (make test runs a few hundred).
RELIABILITY_OUT ?= /tmp/tunstack-reliability
LORIS ?= 10000
reliability: build
	mkdir -p $(RELIABILITY_OUT)
	adv=$$(sed -n 's/^func \(Test[A-Za-z0-9_]*\)(t \*testing.T).*/\1/p' tcpcore/adversary_test.go | paste -sd'|'); \
	$(GO) test -count=1 -v -run "^($$adv)$$" ./tcpcore > $(RELIABILITY_OUT)/engine.log; \
		rc=$$?; [ $$rc = 0 ] || { tail -30 $(RELIABILITY_OUT)/engine.log; exit $$rc; }
	$(GO) test -count=1 -v -run '^TestHostile' -skip '^TestHostileSlowLoris' ./... > $(RELIABILITY_OUT)/hostile.log; \
		rc=$$?; [ $$rc = 0 ] || { grep -- '--- FAIL' $(RELIABILITY_OUT)/hostile.log; exit $$rc; }
	$(GO) test -count=1 -v -run '^TestHostileSlowLoris' ./cmd/tunstack -loris.conns=$(LORIS) > $(RELIABILITY_OUT)/loris.log; \
		rc=$$?; [ $$rc = 0 ] || { grep -- '--- FAIL' -A3 $(RELIABILITY_OUT)/loris.log; exit $$rc; }
	./bin/tunstack reliability-doc --out docs/reliability.md $(RELIABILITY_OUT)/engine.log $(RELIABILITY_OUT)/hostile.log $(RELIABILITY_OUT)/loris.log
