# dtrace-nb: one command to set a machine up and run the main job, one to run the tests.
#   make setup  system packages, kernel headers and tracefs (scripts/setup-system.sh, as
#               root), .venv with the package and its extras, the `python3` Jupyter kernel
#               of the venv, then the doctor's report (fails if tracing is not possible)
#   make run    set up, then execute notebooks/01-first-trace.ipynb headless against the
#               real kernel; the executed copy goes to out/01-first-trace.executed.ipynb
#   make test   set up, then run the whole test suite (what .ci/run runs), but for the
#               tests marked `long`
#   make test-long  set up, then run only the tests marked `long` (fuzzing, churn, kernel soak)
#   make lab    set up, then start JupyterLab (as root, so notebooks may load BPF programs)
#   make conformance SUITE=DIR  set up, then run dtrace-utils' unittest suite from a checkout
#               DIR of it through dtrace-nb (bench/conformance; out/conformance/summary.md;
#               CONFORMANCE_ARGS='--only aggs,printf' for part of it; ~45 minutes whole)
#   make bench  set up, then run the benchmarks against bpftrace and hand-written bcc
#               (bench/; tables on stdout and in out/bench.md, all samples in out/bench.json;
#               BENCH_ARGS='--rounds 3 --quick' for a short run)
# Idempotent: when everything is in place `make setup` only checks (well under a second).

SHELL      := /bin/bash
VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
KERNELSPEC := $(VENV)/share/jupyter/kernels/python3/kernel.json
NOTEBOOK   := notebooks/01-first-trace.ipynb
EXECUTED   := out/01-first-trace.executed.ipynb
# setup-system.sh installs packages and mounts tracefs: it needs root.
SUDO       := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup system doctor run test test-long lab bench conformance

# compileall: bytecode for the package as pip would write it for a regular install (an
# editable install writes none, and with PYTHONDONTWRITEBYTECODE set every start would
# compile ~60 modules from source: 0.1-0.2 s of each command's start).
setup: system $(STAMP) $(KERNELSPEC)
	@$(PY) -m compileall -q dtrace_nb providers bench >/dev/null
	@$(PY) -m dtrace_nb.runtime.environment

system:
	@$(SUDO) bash scripts/setup-system.sh

# The venv (python3 is whatever python3 is first on PATH; bcc comes from the distribution
# and is found by dtrace_nb.runtime.environment.import_bcc, so the venv needs no system
# site-packages). Reinstalled when the package metadata changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,notebook,fleet]'
	@touch $@

# The kernel nbclient and JupyterLab start by the name `python3`: the venv's interpreter.
# --sys-prefix puts it in .venv/share/jupyter/kernels, which Jupyter run from the venv
# searches; scripts/run-notebook.py checks that no other `python3` spec takes precedence.
$(KERNELSPEC): $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name python3 \
	  --display-name "Python 3 (dtrace-nb)" >/dev/null
	@grep -q '"$(abspath $(PY))"' $@ || \
	  { echo "kernelspec $@ does not run $(abspath $(PY))" >&2; exit 1; }

doctor:
	@$(PY) -m dtrace_nb.runtime.environment

run: setup
	$(PY) scripts/run-notebook.py $(NOTEBOOK) $(EXECUTED)

test: setup
	DTRACE_NB_REQUIRE_KERNEL=1 $(PY) -m pytest tests -q -rs -p no:cacheprovider -m "not long"

# The long runs left out of `make test`: fuzzing the compiler with 100k inputs, 1,000
# sessions of churn, and 1,000 notebook cells in a real Jupyter kernel (see the tests
# marked `long`). Tens of minutes.
test-long: setup
	DTRACE_NB_REQUIRE_KERNEL=1 $(PY) -m pytest tests -q -rs -p no:cacheprovider -m long

lab: setup
	$(VENV)/bin/jupyter lab --allow-root --no-browser --ip=127.0.0.1 notebooks/

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

conformance: setup
	@test -n "$(SUITE)" || { echo "make conformance SUITE=DIR (a dtrace-utils checkout)" >&2; exit 2; }
	$(PY) -m bench.conformance --suite $(SUITE) $(CONFORMANCE_ARGS)
