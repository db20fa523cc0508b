# coolbeans: build, run and test. `make test` is what CI runs.

CARGO ?= cargo
# The simulator build: every async call goes through madsim, in its own target dir.
SIM_ENV = RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim

.PHONY: build run test test-std test-sim bench-fsm clean

build:
	$(CARGO) build --release

run:
	$(CARGO) run --release -- info

test: test-std test-sim

test-std:
	$(CARGO) test --workspace

test-sim:
	$(SIM_ENV) $(CARGO) test --workspace

# State-machine throughput (a benchmark, not a test).
bench-fsm:
	$(CARGO) bench --bench fsm

clean:
	$(CARGO) clean
