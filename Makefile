# Two entry points for a fresh machine (each does all set-up first):
#   make run    -> the main job (`fdbench run`) on the embedded ECG data
#   make test   -> ruff, the appendix checks in quick mode, the pytest suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup run test bench-smoke
setup: $(VENV)/.installed

# torch is installed pinned and first: an unpinned resolve pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,data,bench]'
	touch $@

run: setup
	$(BIN)/fdbench run

# pytest exits 5 when it collected no tests: that means something is broken. One thread
# per process: the test models are tiny, and two threads on two busy cores run them ~5x
# slower. Two worker processes, each test file on one worker (module fixtures built once):
# 389 s against 694 s in one process on the 2-core machine.
test: setup
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/python -m proofs_check --quick >/dev/null
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# asv smoke: every benchmark once against the working tree (asv exits 2 if one errors)
bench-smoke: setup
	$(BIN)/asv machine --yes >/dev/null
	OMP_NUM_THREADS=1 $(BIN)/asv run --python=same --quick --show-stderr
