# Front door. `make run` and `make test` work on a fresh machine: both install what they need.
BUILD_DIR ?= build
CMAKE_FLAGS ?=
CTEST_FLAGS ?=
JOBS ?= $(shell nproc)
# How long each libFuzzer target runs in `make sanitize`.
FUZZ_SECONDS ?= 60

.PHONY: deps packages compile build test unit integration e2e real run bench format clean sanitize tsan tsan-unit

# The Debian packages and the test tooling (test/cluster/build.sh); `packages`: the packages only.
deps:
	scripts/deps.sh
packages:
	scripts/deps.sh --packages-only

# Configure every time (cheap when nothing changed), so CMAKE_FLAGS and $$CI are never stale.
compile: packages
	cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS) > /dev/null
	cmake --build $(BUILD_DIR) -j $(JOBS)

build: deps compile

# Every test tier: unit, integration against a local kube-apiserver + etcd, e2e on the simulated
# cluster, real on one real node (root); then `sanitize` and `tsan-unit`. The test tooling is made beside the C++ build, not before
# it: on a fresh machine its Go module downloads overlap the compile.
test: packages
	@mkdir -p $(BUILD_DIR); \
	test/cluster/build.sh > $(BUILD_DIR)/tools.log 2>&1 & tools=$$!; \
	$(MAKE) --no-print-directory compile; built=$$?; \
	if ! wait $$tools; then \
	  tail -n 40 $(BUILD_DIR)/tools.log >&2; \
	  echo "make test: test/cluster/build.sh failed (log: $(BUILD_DIR)/tools.log)" >&2; exit 1; \
	fi; \
	exit $$built
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) $(CTEST_FLAGS)
	$(MAKE) --no-print-directory sanitize
	$(MAKE) --no-print-directory tsan-unit

# The unit and integration tiers again, built by clang with ASan and UBSan in build-asan/, which
# also builds the libFuzzer targets of test/fuzz: each runs for FUZZ_SECONDS from its seeds, and
# every input a fuzzer once failed on (test/fuzz/regressions/) runs again. A control plane of its
# own. The last step of `make test`.
sanitize: packages
	CC=clang-14 CXX=clang++-14 cmake -S . -B build-asan -G Ninja -DREPL_FUZZ=ON \
	  -DREPL_FUZZ_SECONDS=$(FUZZ_SECONDS) > /dev/null
	cmake --build build-asan -j $(JOBS)
	ctest --test-dir build-asan --output-on-failure -j $(JOBS) -L "unit|integration|fuzz" $(CTEST_FLAGS)

# The unit and integration tiers built with TSan (build-tsan/), suppressions in test/sanitizers/.
# `make test` runs the unit tier there (tsan-unit: the threads of the dispatcher, the watch runner,
# the HTTP server, the clocks); the integration tier under TSan (about 6 minutes more on 2 cores)
# is left to this target, for CI's time budget.
tsan: packages
	CC=clang-14 CXX=clang++-14 cmake -S . -B build-tsan -G Ninja -DREPL_TSAN=ON > /dev/null
	cmake --build build-tsan -j $(JOBS)
	ctest --test-dir build-tsan --output-on-failure -j $(JOBS) -L "unit|integration" $(CTEST_FLAGS)
tsan-unit: packages
	CC=clang-14 CXX=clang++-14 cmake -S . -B build-tsan -G Ninja -DREPL_TSAN=ON > /dev/null
	cmake --build build-tsan -j $(JOBS) --target unit-tests
	ctest --test-dir build-tsan --output-on-failure -j $(JOBS) -L unit $(CTEST_FLAGS)

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
