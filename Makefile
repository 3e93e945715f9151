# The two commands a fresh machine needs are `make book` and `make test`; each sets up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# nbgrader runs alembic as a subprocess, so the venv's bin must be on PATH.
export PATH := $(BIN):$(PATH)
export PYTHONHASHSEED := 0
LABS := ch01_vanilla_rnn ch02_seq2seq ch03_attention ch04_self_attention ch05_autoregression
SUBMISSIONS ?= submissions
OUT ?= out
JOBS ?= 0
SCHEDULER ?=
FORMAT ?= wide
PORT ?= 8888
# the student edition's language: en, or ko (the Korean notebooks and README). Not LANG, the locale.
EDITION ?= en

.PHONY: help setup node book book-clean labs grade formgrader export test data clean student-release

help: ## List every target
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-12s %s\n",$$1,$$2}'

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed ## Create .venv from requirements.txt (done by book and test on first use)

# the page "Say it" runs onnxruntime-web, installed exactly as package-lock.json pins it
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "make book needs npm (apt-get install npm) for the page Say it"; exit 2; }
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

node: node_modules/.installed ## Install the book's browser runtime (onnxruntime-web) from package-lock.json with npm ci

book: setup node ## Build the HTML book into _build/html (warnings are errors)
	# MPLBACKEND would stop the kernels from drawing figures inline, so the build runs without it
	env -u MPLBACKEND $(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

book-clean: ## Remove the built book and its execution cache
	rm -rf _build

labs: setup ## Regenerate the student notebooks in labs/ (and labs/ko/ from solutions/<lab>/ko.yml) with nbgrader
	$(BIN)/python -m autograder release $(LABS)

student-release: setup ## Write the student edition (labs, speechcourse, corpus, slim requirements) to OUT=dist/student [EDITION=ko]
	$(BIN)/python tools/student_release.py release $(if $(filter command line,$(origin OUT)),$(OUT),dist/student) \
	  --edition $(EDITION)

grade: setup ## Grade SUBMISSIONS=<dir> (<student>/<lab>/<notebook>.ipynb) into OUT=<dir> [JOBS=N] [SCHEDULER=tcp://host:8786]
	$(BIN)/python -m autograder grade $(SUBMISSIONS) $(OUT) --jobs $(JOBS) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

formgrader: setup ## Open nbgrader's formgrader on the graded class in OUT=<dir> (http://localhost:PORT/formgrader)
	@test -f $(OUT)/gradebook.db || { echo "$(OUT) holds no graded class: run make grade SUBMISSIONS=<dir> OUT=$(OUT) first"; exit 2; }
	cd $(OUT) && $(BIN)/jupyter lab --no-browser --port $(PORT) $(if $(filter 0,$(shell id -u)),--allow-root) \
	  --LabApp.default_url=/formgrader

export: setup ## Export OUT=<dir>'s grades, manual marks included: nbgrader_grades.csv and final_grades.csv [FORMAT=canvas]
	@test -f $(OUT)/gradebook.db || { echo "$(OUT) holds no graded class: run make grade SUBMISSIONS=<dir> OUT=$(OUT) first"; exit 2; }
	cd $(OUT) && $(BIN)/nbgrader export
	$(BIN)/python -m autograder export $(OUT) --format $(FORMAT)

data: setup ## Regenerate the speech corpus in data/ (needs espeak-ng and sox)
	@for tool in espeak-ng sox; do command -v $$tool >/dev/null || \
	  { echo "make data needs $$tool: apt-get install espeak-ng sox (students never need it)"; exit 2; }; done
	$(BIN)/python data/make_corpus.py

test: setup node ## Run every test: package, labs, grader, book build and browser check
	$(BIN)/python -m pytest

clean: book-clean ## Remove build outputs, the virtual environment and node_modules
	rm -rf $(VENV) .pytest_cache node_modules
