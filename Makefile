# FaceStage — `make demo` and `make test` are all a newcomer needs.
PY ?= python3.11
# fake-bpy-module stubs use PEP 695 syntax, which mypy can only parse on Python >= 3.12.
TYPES_PY ?= $(firstword $(shell for p in python3.13 python3.12; do $$p -c '' 2>/dev/null && echo $$p; done) $(wildcard $(HOME)/.pyenv/versions/3.1[23]*/bin/python3))
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv venv-cluster test demo extension wheels wheels-linux wheels-lock typecheck bench accuracy clean

venv: $(VENV)/.stamp

$(VENV)/.stamp: requirements.txt requirements-mediapipe.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -r requirements-mediapipe.txt
	ln -sfn $(CURDIR) "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/facestage"
	touch $@

# The optional Ray extra for `batch --cluster` (and its tests); the add-on and `make demo` never need it.
venv-cluster: $(VENV)/.stamp-cluster

$(VENV)/.stamp-cluster: requirements-cluster.txt $(VENV)/.stamp
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-cluster.txt -c requirements.txt
	touch $@

.venv-types/.stamp: requirements-types.txt
	$(TYPES_PY) -m venv .venv-types
	.venv-types/bin/pip install --disable-pip-version-check -q -r requirements-types.txt
	touch $@

typecheck: .venv-types/.stamp
	mkdir -p .typecheck && ln -sfn $(CURDIR) .typecheck/facestage
	cd .typecheck && ../.venv-types/bin/mypy --config-file ../mypy.ini -p facestage.scene -p facestage.operators -p facestage.ui -m facestage -m facestage.properties -m facestage.jobs

# The pinned wheels of every platform into wheels/ (git-ignored, ~1.2 GB; no pip call when all are there), checked
# against the manifest's list. wheels-linux: only what the tests install. wheels-lock: after changing a pin in
# deps.py, rewrite the manifest's list from what pip fetches.
wheels: venv
	$(BIN)/python tools/fetch_wheels.py

wheels-linux: venv
	$(BIN)/python tools/fetch_wheels.py --platform linux-x64

wheels-lock: venv
	$(BIN)/python tools/fetch_wheels.py --lock

# dist/facestage-<version>-{full,lite}-{linux_x64,windows_x64,macos_arm64}.zip (see README › Install).
extension: wheels
	$(BIN)/python tools/build_extension.py --output-dir dist

test: venv venv-cluster typecheck wheels-linux
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/python -m facestage reconstruct samples/astronaut.jpg -o out/sample --force
	$(BIN)/python -m facestage relight out/sample --preset rembrandt -o out/sample/relit.png --force
	$(BIN)/python -m facestage caricature out/sample --factor 1.8 -o out/sample-caricature --force
	@echo "Done: open out/sample/report.png (then relit.png, face.blend, and out/sample-caricature/render.png)."

bench: venv
	for b in bench/*.py; do case $$b in */_*|*reference*|*/cuda.py|*/accuracy.py|*/cluster.py) ;; *) $(BIN)/python $$b || exit 1;; esac; done

# Ground-truth accuracy on 12 Cycles scenes (about 30 min on 2 CPU cores); table in bench/results/accuracy.md.
accuracy: venv
	$(BIN)/python bench/accuracy.py

clean:
	rm -rf dist out .typecheck .mypy_cache .pytest_cache
