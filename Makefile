# Two entry points (see README.md): `make run` (builds the book) and `make test` (every test).
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO := runs/demo

.PHONY: run test lab demo install clean writer animator digits-labelled ablation ablation-measure classifier bench gpu-check

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
# (nbval: a cell that raises, or prints anything else, fails), and the book build (warnings are errors).
test: install
	$(PY) -m pytest tests notebooks --nbval --nbval-sanitize-with notebooks/nbval_sanitize.cfg
	$(VENV)/bin/jupyter-book build . -W --keep-going

# The notebooks in JupyterLab, to run and change them.
lab: install
	$(VENV)/bin/jupyter lab notebooks/

# Train a small model briefly on the CPU (or GPU), then animate 16 held-out digits into a GIF.
demo: install
	$(PY) -m tinydiff train --preset default --steps 200 --out $(DEMO) --no-resume
	$(PY) -m tinydiff generate --checkpoint $(DEMO)/checkpoint.pt --heldout-digits 16 --steps 50 -o $(DEMO)/videos.gif

# Retrain the shipped writer from scratch (about 72 minutes on 2 CPU cores), then export its EMA
# weights into the package; record the printed SHA-256 in tinydiff/checkpoint.py (SHIPPED).
# Conditioning modes (RESULTS.md): 20 % nothing, 40 % the label alone, 40 % the finished digit.
writer: install
	$(PY) -m tinydiff train --preset default --steps 4800 --batch-size 64 --lr 3e-3 --cond-drop 0.2 --label-share 0.4 \
		--seed 0 --device cpu --precision fp32 --threads 2 --checkpoint-every 200 --out runs/writer
	$(PY) -m tinydiff export runs/writer/checkpoint.pt tinydiff/weights/writer.pt

# Retrain the cascade's writing stage from scratch (about 65 minutes on 2 CPU cores): the writer's network and
# recipe, trained on image-to-video alone (no videos from nothing or from a label alone), which it then does better than the
# three-mode writer (RESULTS.md, "The animator"); export it and record the printed SHA-256 as above.
animator: install
	$(PY) -m tinydiff train --preset default --steps 4400 --batch-size 64 --lr 3e-3 --cond-drop 0 --label-share 0 \
		--seed 0 --device cpu --precision fp32 --threads 2 --checkpoint-every 200 --out runs/animator
	$(PY) -m tinydiff export runs/animator/checkpoint.pt tinydiff/weights/animator.pt

# Retrain the cascade's 2D digit model from scratch (about 16 minutes on 2 CPU cores): one frame, nothing to
# condition on but its label, which is dropped for half the training digits so that classifier-free guidance
# has an unconditional model to push from; then export it (with the training label counts it draws "any
# digit" from) and record the printed SHA-256 in tinydiff/checkpoint.py (SHIPPED).
digits-labelled: install
	$(PY) -m tinydiff train --preset digits-labelled --steps 5000 --batch-size 128 --lr 3e-3 --cond-drop 0.5 \
		--label-share 0.5 --seed 0 --device cpu --precision fp32 --threads 2 --checkpoint-every 500 \
		--out runs/digits-labelled
	$(PY) -m tinydiff export runs/digits-labelled/checkpoint.pt tinydiff/weights/digits-labelled.pt

# Retrain the three networks of the temporal-consistency ablation (chapter 4) with the writer's recipe on
# one shared budget (tinydiff.ablation.BUDGET; about 80 minutes on 2 CPU cores) and export them into the
# package; record the printed SHA-256s in tinydiff/checkpoint.py (SHIPPED), then `make ablation-measure`
# (about 8 minutes) measures what chapter 4 tabulates, tagged with those SHA-256s.
ablation: install
	$(PY) -m tinydiff.ablation train

ablation-measure: install
	$(PY) -m tinydiff.ablation measure

# Retrain the shipped digit classifier (a minute); record the printed SHA-256 as above.
classifier: install
	$(PY) -m tinydiff.classifier --out tinydiff/weights/classifier.pt

# Measure speed and quality (about two hours on 2 CPU cores); writes BENCHMARKS.md.
bench: install
	$(PY) -m tinydiff bench

# On a CUDA machine: the CUDA tests, training and sampling speed, CPU-vs-GPU agreement and the
# notebooks' wall times, in about five minutes (tools/gpu_check.py; --smoke tests it on a CPU).
gpu-check: install
	$(PY) tools/gpu_check.py

clean:
	rm -rf $(VENV) runs .pytest_cache _build
