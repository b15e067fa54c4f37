# dtrace-nb: one command to set a machine up and run the main job, one to run the tests.
#   make run    set up, then execute notebooks/01-first-trace.ipynb against the real kernel
#   make test   set up, then run the whole test suite (what .ci/run runs)
#   make lab    set up, then start JupyterLab (as root, so notebooks may load BPF programs)

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup system run lab test doctor

setup: system $(STAMP) doctor

system:
	bash scripts/setup-system.sh

# Reinstall when the package metadata changes; pip is quick when nothing did.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,notebook]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dtrace-nb)" >/dev/null
	touch $(STAMP)

doctor:
	$(VENV)/bin/dtrace-nb --doctor

run: setup
	$(PY) scripts/run-notebook.py notebooks/01-first-trace.ipynb out/01-first-trace.executed.ipynb

lab: setup
	$(VENV)/bin/jupyter lab --allow-root --no-browser --ip=127.0.0.1 notebooks/

test: setup
	DTRACE_NB_REQUIRE_KERNEL=1 $(PY) -m pytest tests -q -rs -p no:cacheprovider
