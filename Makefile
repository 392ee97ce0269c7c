# The two commands of the README: `make demo` and `make test`. Both create .venv on first use and install into it;
# the install step reruns only when requirements*.txt or setup.py change.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2

.PHONY: install test demo nas-demo bench clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel 'setuptools<81'

$(STAMP): $(PY) requirements.txt requirements-test.txt setup.py
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check || true
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

# one thread by default: on a busy 2-core machine OpenMP threads wait for each other (2000 iterations measured 145 s
# with 1 thread, 162 s with 2); `make demo DEMO_THREADS=2` to choose. The demo exits 1 if training did not help.
DEMO_THREADS ?= 1
demo: $(STAMP)
	OMP_NUM_THREADS=$(DEMO_THREADS) $(PY) tools/demo.py

# the NAS loop: tiny chip supernet -> 120 measured sub-networks -> predictors (held-out tau) -> search (docs/nas.md)
nas-demo: $(STAMP)
	$(PY) tools/nas_demo.py

# every benchmark at its quick size (about 15-20 minutes on 2 cores); the full sizes are in bench/RESULTS.md
bench: $(STAMP)
	$(PY) bench/data_loading.py
	$(PY) bench/forward.py
	$(PY) bench/train_step.py
	$(PY) bench/eval_ranking.py --quick
	$(PY) bench/gpnas.py --quick
	$(PY) bench/supernet.py --quick
	$(PY) bench/eval_engine.py
	$(PY) bench/deploy.py
	$(PY) bench/nas_eval_cost.py --quick
	$(PY) bench/traffic_step.py --repeats 2

clean:
	rm -rf $(VENV) demo_output moe_demo_output build *.egg-info
