# Two entry points (see README.md): `make run` (the main job) and `make test` (every test).
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO := runs/demo

.PHONY: run test install clean writer bench

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --editable .
	touch $@

# Train a small model briefly on the CPU (or GPU), then animate 16 test digits into a GIF.
run: install
	$(PY) -m tinydiff train --preset default --steps 200 --out $(DEMO) --no-resume
	$(PY) -m tinydiff generate --checkpoint $(DEMO)/checkpoint.pt --test-digits 16 --steps 50 -o $(DEMO)/videos.gif

test: install
	$(PY) -m pytest

# Retrain the shipped writer from scratch (about an hour on 2 CPU cores), then export its EMA
# weights into the package; record the printed SHA-256 in tinydiff/pipeline.py (PRETRAINED).
writer: install
	$(PY) -m tinydiff train --preset default --steps 5000 --batch-size 16 --lr 2e-3 --seed 0 \
		--checkpoint-every 500 --out runs/writer
	$(PY) -m tinydiff export runs/writer/checkpoint.pt tinydiff/weights/writer.pt

# Measure speed and quality (about an hour on 2 CPU cores); writes BENCHMARKS.md.
bench: install
	$(PY) -m tinydiff bench

clean:
	rm -rf $(VENV) runs .pytest_cache
