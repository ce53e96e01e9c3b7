# The project's two commands: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv when missing and installs everything pinned (constraints.txt).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install native lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch pulls several GB of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,rpc,onnx,vision,anchors]"
	touch $(STAMP)

install: $(STAMP)

# The native lane engine (C++ in tvm_sched/runtime/native, CMake files in cmake/), built against
# the headers and libtvm_ffi.so of the installed apache-tvm-ffi wheel into the package, where
# tvm_sched.runtime.native_engine finds it; rebuilt when a source changes. Without cmake or a C++
# compiler (or with NATIVE=0) it is skipped with one line and the Python engine is used.
NATIVE ?= 1
NATIVE_BUILD := build/native
NATIVE_LIB := tvm_sched/runtime/_lib/libtvm_sched_lanes.so
NATIVE_SRC := $(wildcard tvm_sched/runtime/native/*.cc tvm_sched/runtime/native/*.h) cmake/CMakeLists.txt

native: $(NATIVE_LIB)

$(NATIVE_LIB): $(STAMP) $(NATIVE_SRC)
	@if [ "$(NATIVE)" = "0" ]; then \
	  echo "native lane engine skipped (NATIVE=0): the Python engine will be used"; \
	elif ! command -v cmake >/dev/null 2>&1 || ! { command -v "$${CXX:-c++}" || command -v c++ \
	    || command -v g++ || command -v clang++; } >/dev/null 2>&1; then \
	  echo "native lane engine skipped (needs cmake and a C++ compiler): the Python engine will be used"; \
	else \
	  mkdir -p $(NATIVE_BUILD) && \
	  if ! cmake -S cmake -B $(NATIVE_BUILD) -DCMAKE_BUILD_TYPE=Release \
	      -DPython_EXECUTABLE="$(abspath $(PY))" \
	      -Dtvm_ffi_DIR="$$($(PY) -c 'import tvm_ffi.libinfo as l; print(l.find_cmake_path())')" \
	      > $(NATIVE_BUILD)/configure.log 2>&1; then \
	    tail -n 20 $(NATIVE_BUILD)/configure.log; \
	    echo "native lane engine skipped (cmake configure failed, see $(NATIVE_BUILD)/configure.log): the Python engine will be used"; \
	  else \
	    echo "building the native lane engine ($(NATIVE_LIB))"; \
	    cmake --build $(NATIVE_BUILD) --parallel > $(NATIVE_BUILD)/build.log 2>&1 \
	      || { cat $(NATIVE_BUILD)/build.log; exit 1; }; \
	    touch $@; \
	  fi; \
	fi

# The main job: tune lane schedules of a built-in multi-branch model (NASNet cells, bench size)
# for this machine's cores, measured through an embedded RPC server on 127.0.0.1 against the
# Relax VM, on kernels tuned with MetaSchedule on the device (a small budget of 48 trials per
# thread count, to stay within minutes), with PyTorch and ONNX Runtime timed in the same
# rounds; prints the speed-up, the per-solver table and the anchors.
# (The VM-order objectives remain: tvm-sched tune --model nasnet [--objective memory].)
demo: $(STAMP) native
	$(VENV)/bin/tvm-sched tune --model nasnet --size bench --lanes auto --kernel-trials 48 \
	  --work-dir tvm-sched-runs/demo-lanes

test: $(STAMP) native
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check tvm_sched tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis $(NATIVE_BUILD) tvm_sched/runtime/_lib
