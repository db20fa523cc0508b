# coolbeans: build, run and test. `make test` is what CI runs.

CARGO ?= cargo
# The simulator build: every async call goes through madsim, in its own target dir.
SIM_ENV = RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim

.PHONY: build run lint test test-std test-sim chaos fuzz fuzz-merge sim-build sim-ci sim sim-sweep sim-mutants bench-fsm bench-vs-beanstalkd bench-cluster clean

build:
	$(CARGO) build --release

run:
	$(CARGO) run --release -- serve

test: test-std test-sim sim-ci

# The code's format (rustfmt.toml), then clippy's warnings as errors in both builds (CI runs
# this before the tests).
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(SIM_ENV) $(CARGO) clippy --workspace --all-targets --release -- -D warnings

test-std:
	$(CARGO) test --workspace

# Chaos on real processes (tests/chaos): SECONDS of kills, stops and restarts under load, then
# the drain and the simulator's checkers. `make test` runs it for 20 s; SEED replays a schedule.
SECONDS ?= 60
chaos:
	CHAOS_SECONDS=$(SECONDS) $(if $(filter command line,$(origin SEED)),CHAOS_SEED=$(SEED)) $(CARGO) test --test chaos -- --nocapture

# Fuzz TARGET (wal_reader, snapshot_reader, op_decoder, protocol_decoder) for SECONDS with
# cargo-fuzz (nightly; `cargo install cargo-fuzz`; CI only replays the corpora, in test-std).
# New inputs go to a scratch corpus under fuzz/target, a crash to fuzz/artifacts/TARGET;
# `make fuzz-merge` adds to fuzz/corpus/TARGET only the inputs that reach new code (edges, not
# hit counts: about a third as many inputs).
TARGET ?= wal_reader
FUZZ_WORK = fuzz/target/corpus-work/$(TARGET)
fuzz:
	mkdir -p $(FUZZ_WORK)
	cargo +nightly fuzz run $(TARGET) $(FUZZ_WORK) fuzz/corpus/$(TARGET) -- -max_total_time=$(SECONDS) -malloc_limit_mb=64 -rss_limit_mb=2048 -dict=fuzz/edges.dict

fuzz-merge:
	cargo +nightly fuzz run $(TARGET) fuzz/corpus/$(TARGET) $(FUZZ_WORK) -- -merge=1 -use_counters=0

# Release, like the simulator sweeps: one build serves both.
test-sim:
	$(SIM_ENV) RUSTDOCFLAGS="--cfg madsim" $(CARGO) test --workspace --release

SEED ?= 1
SEEDS ?= 100
START ?= 1
SIM_BIN = target/sim/release/coolbeans-sim
# CI's sweep: CI_SEEDS seeds starting from a number derived from the commit, the first
# CI_REPEAT of them run twice with their traces compared, then the regression list.
CI_SEEDS ?= 200
CI_REPEAT ?= 10
COMMIT = $(shell git rev-parse HEAD 2>/dev/null || echo 1)
REGRESSIONS = sim/regressions.txt
# Planted bugs are built in their own target dir, never beside the real build.
MUTANT_BIN = target/sim-mutants/release/coolbeans-sim
MUTANTS = ack-before-fsync delete-buried-keeps-index job-to-two-waiters apply-uncommitted snapshot-forgets-waiters drop-reservation-after-leader-change
MUTANT_SEEDS ?= $(CI_SEEDS)

sim-build:
	$(SIM_ENV) $(CARGO) build --release -p coolbeans-sim

# Rerun one seed with full tracing logs (RUST_LOG filters them; default: everything but raft).
sim: sim-build
	RUST_LOG=$${RUST_LOG:-debug,raft=info} $(SIM_BIN) --seed $(SEED)

# Run SEEDS seeds from START.
sim-sweep: sim-build
	$(SIM_BIN) --seeds $(SEEDS) --start $(START)

# CI's sweep and the regression list.
sim-ci: sim-build
	$(SIM_BIN) --seeds $(CI_SEEDS) --start $(COMMIT) --repeat $(CI_REPEAT)
	$(SIM_BIN) --seeds-file $(REGRESSIONS)

# Each planted bug must make some seed of the CI sweep fail; prints that seed.
sim-mutants:
	RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim-mutants $(CARGO) build --release -p coolbeans-sim --features mutants
	@for m in $(MUTANTS); do \
	  echo "== mutant $$m"; \
	  out=$$(COOLBEANS_MUTANT=$$m $(MUTANT_BIN) --seeds $(MUTANT_SEEDS) --start $(COMMIT) --expect-failure); status=$$?; \
	  echo "$$out" | grep -E "^(FAILED|caught|NOT caught)"; \
	  [ $$status -eq 0 ] || exit 1; \
	done; echo "every planted bug was caught"

# State-machine throughput (a benchmark, not a test).
bench-fsm:
	$(CARGO) bench --bench fsm

# Alternating rounds against Debian's beanstalkd (both in memory): ROUNDS=6, PIN=pin to put
# the server and the bench on cores of their own.
ROUNDS ?= 6
PIN ?=
# The bench's connections, unpipelined (both benchmarks).
CONNECTIONS ?= 50
bench-vs-beanstalkd: build
	CONNECTIONS=$(CONNECTIONS) benches/vs-beanstalkd.sh $(ROUNDS) $(PIN)

# The replicated path against beanstalkd -b, in alternating rounds: a 3-node cluster with its
# proxies inside the nodes, and behind a separate proxy; with the disk's fsync p50/p99.
bench-cluster: build
	CONNECTIONS=$(CONNECTIONS) benches/cluster.sh $(ROUNDS)

clean:
	$(CARGO) clean
