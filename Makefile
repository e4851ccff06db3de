# Two entry points (see README.md): `make run` (builds the book) and `make test` (every test).
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO := runs/demo

.PHONY: run test lab demo install clean writer animator digits-labelled motion motion-baselines ablation ablation-measure ablation-seeds classifier bench gpu-check gpu-motion

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --editable .
	touch $@

# The main job: build the course book from the notebooks' committed outputs (`make test` checks that
# they are what the code produces), then say where the HTML is.
run: install
	$(VENV)/bin/jupyter-book build . -W --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# Every test: the unit tests, the notebooks re-executed and compared with their committed outputs
# (nbval: a cell that raises, or prints anything else, fails), the book build (warnings are errors), then
# the built pages and their live widgets in headless Chromium (tests/book).
test: install
	$(PY) -m pytest tests notebooks --ignore=tests/book --nbval --nbval-sanitize-with notebooks/nbval_sanitize.cfg
	$(VENV)/bin/jupyter-book build . -W --keep-going
	$(PY) -m pytest tests/book

# The notebooks in JupyterLab, to run and change them.
lab: install
	$(VENV)/bin/jupyter lab notebooks/

# Train a small model briefly on the CPU (or GPU), then animate 16 held-out digits into a GIF.
demo: install
	$(PY) -m tinydiff train --preset default --steps 200 --out $(DEMO) --no-resume
	$(PY) -m tinydiff generate --checkpoint $(DEMO)/checkpoint.pt --heldout-digits 16 --steps 50 -o $(DEMO)/videos.gif

# Retrain a shipped model with its recipe (declared once, in tinydiff/registry.py: `python -m tinydiff.ship list`
# prints them), on 2 CPU threads in fp32; each resumes runs/NAME, exports the EMA weights into the package and
# records their SHA-256, recipe and training minutes in tinydiff/weights/manifest.json. Minutes on 2 CPU cores:
# writer 72, animator 66, digits-labelled 16, motion 71, its two baselines 8 together, ablation 80.
writer animator digits-labelled motion: install
	$(PY) -m tinydiff.ship $@

motion-baselines: install
	$(PY) -m tinydiff.ship motion-no-attention motion-per-frame

# The three networks of the temporal-consistency ablation (chapter 4); then `make ablation-measure` (about 8
# minutes) measures what chapter 4 tabulates, tagged with their SHA-256s.
ablation: install
	$(PY) -m tinydiff.ablation train

ablation-measure: install
	$(PY) -m tinydiff.ablation measure

# The same three recipes trained with seeds 1 and 2 (about 150 minutes; runs/ablation-seeds, resuming) and
# measured like the shipped networks (about 12 minutes): the training-seed spread that chapter 4 prints.
ablation-seeds: install
	$(PY) -m tinydiff.ablation seeds

# Retrain the shipped digit classifier (a minute); record the printed SHA-256 in the manifest.
classifier: install
	$(PY) -m tinydiff.classifier --out tinydiff/weights/classifier.pt

# Measure speed and quality (about 75 minutes on 2 CPU cores); writes BENCHMARKS.md.
bench: install
	$(PY) -m tinydiff bench

# On a CUDA machine: the CUDA tests, training and sampling speed, CPU-vs-GPU agreement and the
# notebooks' wall times, in about five minutes (tools/gpu_check.py; --smoke tests it on a CPU).
gpu-check: install
	$(PY) tools/gpu_check.py

# On a lent GPU: the motion recipe trained far past its CPU budget and judged along the way (about 9 minutes).
gpu-motion: install
	$(PY) tools/gpu_check.py --sections machine,motion --budget 540

clean:
	rm -rf $(VENV) runs .pytest_cache _build
