# lockr-local: every target bootstraps .venv itself, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= ./data

.PHONY: run test bench lint exe clean soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/lockr-local serve --data-dir $(DATA)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench
	$(BIN)/python -m bench.sync

# The long kill harness: LOCKR_SOAK_KILLS random SIGKILLs (default 200) plus the named crash points, on
# SQLite + a folder and then on PostgreSQL + an S3 bucket (LOCKR_SOAK_STACKS=sqlite+folder picks one);
# LOCKR_SOAK_SEED replays a run. Then the power-cut harness: LOCKR_POWERCUT_CUTS kills, each followed by a
# power cut (default 1000), on a FUSE filesystem that forgets unsynced writes; then LOCKR_POWERCUT_SYNC_ROUNDS
# rounds (default 200) of the sync agent SIGKILLed mid-sync and its disk's power cut. Then the class tests of
# hostile input with many more random values, and schemathesis with at least 5,000 generated cases.
# Each has a short mode inside `make test` (tests/soak, tests/powercut, tests/security).
soak: $(STAMP)
	$(BIN)/python -m tests.soak
	$(BIN)/python -m tests.powercut
	$(BIN)/python -m tests.powercut.sync_soak
	LOCKR_HOSTILE_EXAMPLES=200 LOCKR_SCHEMATHESIS_EXAMPLES=250 LOCKR_SCHEMATHESIS_MIN_CASES=5000 \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/security/test_hostile_input.py tests/security/test_openapi.py

lint: $(STAMP)
	$(BIN)/python -m compileall -q lockr_local server sync tray tests bench packaging
	$(BIN)/python -m pyflakes lockr_local server sync tray tests bench packaging
	$(BIN)/python -m tests.typecheck

exe:
	PYTHON=$(PYTHON) VENV=$(VENV) packaging/build.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
