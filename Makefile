# Two commands do all set-up: `make demo` and `make test`. Both create .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench models clean fashion-mnist

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m analogc.demo

test: $(STAMP)
	@$(MAKE) -s fashion-mnist || echo "note: dataset-fashion-mnist not installed; tests that need it skip"
	$(BIN)/python -m pytest

# Fashion-MNIST comes from Debian (needs root); the models script and benches use it.
fashion-mnist:
	@test -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null)

models: $(STAMP) fashion-mnist
	$(BIN)/python models/make_models.py

bench: $(STAMP) fashion-mnist
	$(BIN)/python bench/compile_bench.py
	$(BIN)/python bench/infer_bench.py
	$(BIN)/python bench/drift_bench.py

clean:
	rm -rf $(VENV) build *.egg-info
