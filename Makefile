# Front door. `make run` and `make test` work on a fresh machine: both install what they need.
BUILD_DIR ?= build
CMAKE_FLAGS ?=
CTEST_FLAGS ?=
JOBS ?= $(shell nproc)

.PHONY: deps build test unit integration e2e real run bench format clean

deps:
	scripts/deps.sh

# Configure every time (cheap when nothing changed), so CMAKE_FLAGS and $$CI are never stale.
build: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS) > /dev/null
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Every test tier: unit, integration against a local kube-apiserver + etcd, e2e on the simulated
# cluster, real on one real node (root).
test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) -L unit

integration: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) -L integration

e2e: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) -L e2e

real: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L real

# The operator against a local control plane (or the cluster $KUBECONFIG names, with REPL_USE_KUBECONFIG=1).
run: build
	scripts/run-local.sh $(BUILD_DIR)

# Benchmarks on the simulated cluster (not part of `test`): a table on stdout, JSON and a PNG chart
# under bench/results/. Takes 15-25 minutes (BENCH_SCALE="1000" for a shorter run).
bench: build
	cmake --build $(BUILD_DIR) --target repl-bench
	bench/run.sh $(abspath $(BUILD_DIR))

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD_DIR)
