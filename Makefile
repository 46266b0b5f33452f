# Weft: `make demo` and `make test` install what is missing, build, and run.
BUILD    ?= build
PYTHON   ?= /usr/bin/python3
JOBS     ?= 2
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython_EXECUTABLE=$(PYTHON) -DPython3_EXECUTABLE=$(PYTHON)
FUZZ_SECONDS ?= 20

.PHONY: all setup build demo test unit check-layers check-sanitizers fuzz pytest bench clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS) > /dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/tools/weft/weft demo

# Every test: unit and stress tests, sanitizer builds, bounded fuzz runs, Python tests.
test: build
	@$(MAKE) --no-print-directory check-layers unit check-sanitizers fuzz pytest

# Module boundaries: layers, private headers under src/<module>/internal/ (docs/architecture.md).
check-layers:
	$(PYTHON) scripts/check_layers.py

unit:
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# ASan+UBSan builds of every C++ test; TSan builds of the thread-level ones (the crash suites,
# which fork and kill processes, run under ASan).
check-sanitizers: setup
	@cmake -S . -B $(BUILD)-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DWEFT_SANITIZE=address \
	  -DWEFT_BUILD_PYTHON=OFF -DWEFT_BUILD_TOOLS=OFF > /dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(BUILD)-asan --output-on-failure -j $(JOBS)
	@cmake -S . -B $(BUILD)-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_SANITIZE=thread \
	  -DWEFT_BUILD_PYTHON=OFF -DWEFT_BUILD_TOOLS=OFF > /dev/null
	@cmake --build $(BUILD)-tsan -j $(JOBS)
	TSAN_OPTIONS=halt_on_error=1 ctest --test-dir $(BUILD)-tsan --output-on-failure -j $(JOBS) -LE "crash|large"

# libFuzzer targets over every parser of untrusted bytes, each for FUZZ_SECONDS.
fuzz: setup
	@CC=clang CXX=clang++ cmake -S . -B $(BUILD)-fuzz -G Ninja -DWEFT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
	@cmake --build $(BUILD)-fuzz -j $(JOBS)
	@for f in $(BUILD)-fuzz/tests/fuzz/fuzz_*; do \
	  name=$$(basename $$f); \
	  echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
	  mkdir -p $(BUILD)-fuzz/corpus/$$name $(BUILD)-fuzz/artifacts; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(BUILD)-fuzz/artifacts/ \
	    $(BUILD)-fuzz/corpus/$$name tests/fuzz/seeds/$$name > $(BUILD)-fuzz/$$name.log 2>&1 \
	    || { tail -n 40 $(BUILD)-fuzz/$$name.log; exit 1; }; \
	  tail -n 1 $(BUILD)-fuzz/$$name.log; \
	done

pytest: build
	WEFT_BIN=$(BUILD)/tools/weft/weft PYTHONPATH=$(CURDIR)/python:$(CURDIR)/$(BUILD)/python \
	  $(PYTHON) -m pytest -q tests/python

bench: build
	$(BUILD)/tools/weft/weft bench all

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan $(BUILD)-fuzz
