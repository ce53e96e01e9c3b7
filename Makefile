# The project's two commands: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv when missing and installs everything pinned (constraints.txt).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch pulls several GB of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,rpc,onnx]"
	touch $(STAMP)

install: $(STAMP)

# The main job: tune the operator order of a built-in multi-branch model (NASNet-like, 78
# operators) on this machine through an embedded RPC server on 127.0.0.1.
demo: $(STAMP)
	$(VENV)/bin/tvm-sched tune --model nasnet --work-dir tvm-sched-runs/demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check tvm_sched tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
