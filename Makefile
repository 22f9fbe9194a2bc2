# Two entry points for a fresh machine: `make run` and `make test`.
# Both create .venv with the pinned dependencies of setup.cfg when it is missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= runs/main
SEARCH_WORKDIR ?= runs/search

.PHONY: run search test test-fast test-applications lint clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job: RaRe + DLRA on the paper MLP, about 15 minutes on 2 cores,
# then the trained model exported for phones (LiteRT float32 and int8).
run: $(STAMP)
	$(PY) -m trainers.dlra --model=mlp --epochs=35 --workdir=$(WORKDIR)
	$(PY) -m trainers.export --model_path=DLRA=$(WORKDIR)/model.keras \
		--formats=float32,int8 --workdir=$(WORKDIR)/export

# The second main job: a keras-tuner search of every method for a FLOPs
# budget on the paper MLP, then the best retrained and exported.
search: $(STAMP)
	$(PY) -m tuning.search --workdir=$(SEARCH_WORKDIR)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not applications" --durations=15

# keras.applications' MobileNetV2 and MobileNetV3Small through every method,
# the export and the analysis: about 25 minutes on 2 cores, so not in `test`.
test-applications: $(STAMP)
	$(PY) -m pytest -q -m applications

# The fast tier for the edit loop: every test but the slow, multi-worker and browser ones.
test-fast: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow and not multi_worker and not browser"

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) runs
