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
	$(BIN)/python -m pytest

# Fashion-MNIST comes from Debian (needs root); the models script and benches use it.
fashion-mnist:
	@test -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)

models: $(STAMP) fashion-mnist
	$(BIN)/python models/make_models.py

clean:
	rm -rf $(VENV) build *.egg-info
