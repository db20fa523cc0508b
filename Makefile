# coolbeans: build, run and test. `make test` is what CI runs.

CARGO ?= cargo
# The simulator build: every async call goes through madsim, in its own target dir.
SIM_ENV = RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim

.PHONY: build run test test-std test-sim sim sim-sweep bench-fsm clean

build:
	$(CARGO) build --release

run:
	$(CARGO) run --release -- serve

test: test-std test-sim

test-std:
	$(CARGO) test --workspace

test-sim:
	$(SIM_ENV) RUSTDOCFLAGS="--cfg madsim" $(CARGO) test --workspace

SEED ?= 1
SEEDS ?= 100
START ?= 1
SIM_BIN = target/sim/release/coolbeans-sim

# Rerun one seed with full tracing logs (RUST_LOG filters them; default: everything but raft).
sim:
	$(SIM_ENV) $(CARGO) build --release -p coolbeans-sim
	RUST_LOG=$${RUST_LOG:-debug,raft=info} $(SIM_BIN) --seed $(SEED)

# Run SEEDS seeds from START.
sim-sweep:
	$(SIM_ENV) $(CARGO) build --release -p coolbeans-sim
	$(SIM_BIN) --seeds $(SEEDS) --start $(START)

# State-machine throughput (a benchmark, not a test).
bench-fsm:
	$(CARGO) bench --bench fsm

clean:
	$(CARGO) clean
