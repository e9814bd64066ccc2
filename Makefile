# mmloom developer commands. `make demo` and `make test` create .venv and install whatever
# is missing; nothing needs to be on the machine beforehand except python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat setup.py | sha256sum | cut -c1-12)
OUT    ?= out/sample
TINY_CLIP := out/models/mmloom-tiny-clip.safetensors
TINY_LM   := out/models/mmloom-tiny-lm
TINY_VLM := out/models/mmloom-tiny-vlm

.PHONY: venv sysdeps tiny-clip tiny-lm demo test test-fast lint style bench clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (as on our CI machines), Python
# never writes .pyc files, and every process would compile Beam, torch and the rest from
# source again (about 20 s before `mmloom build --help` printed anything; about 5 s with them)
$(STAMP): setup.py | $(BIN)/uv
	$(BIN)/uv pip install --compile-bytecode --python $(BIN)/python -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# Debian packages for local services and browser tests (redis-server, chromium)
sysdeps:
	./scripts/install_system_deps.sh

# the sample config's CLIP model: a tiny open_clip model made locally (no hub download)
$(TINY_CLIP): | $(STAMP)
	$(BIN)/python -m tools.make_tiny_clip --output $@

tiny-clip: $(TINY_CLIP)

# the sample config's blind-audit language model: a tiny random-weight causal LM and a
# byte-level tokenizer, made locally (no hub download)
$(TINY_LM)/config.json: | $(STAMP)
	$(BIN)/python -m tools.make_tiny_lm --output $(TINY_LM)

tiny-lm: $(TINY_LM)/config.json

# a tiny random-weight vision-language model folder for the label-suspicion audit's tests and
# smoke runs (audit.label.model_dir), made locally (no hub download)
$(TINY_VLM)/config.json: | $(STAMP)
	$(BIN)/python -m tools.make_tiny_vlm --output $(TINY_VLM)

.PHONY: tiny-vlm
tiny-vlm: $(TINY_VLM)/config.json

demo: venv sysdeps tiny-clip tiny-lm
	OUT=$(OUT) ./scripts/demo.sh

# the whole suite (every tier, with a real Argilla and headless Chromium), then
# argilla-server's own search-engine tests against mmloom's SQL engine
test: venv sysdeps tiny-lm
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-argilla-conformance

# pure and TestPipeline tests only: no sample build, no server, no browser (markers set by
# tests/conftest.py from the fixtures and files a test uses)
test-fast: venv
	$(BIN)/python -m pytest -m "not slow and not server and not browser"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

style: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv
	$(BIN)/python bench/build_throughput.py

# README.md's config table, generated from schemas/config.schema.json (checked by
# tests/schemas/test_config_table.py)
config-table: venv
	$(BIN)/python -m tools.config_table --write

clean:
	rm -rf $(VENV) out build dist *.egg-info .pytest_cache .ruff_cache

# README.md's screenshots (docs/screenshots/*.png): one item per category in Argilla's real UI,
# from a throw-away local Argilla and headless /usr/bin/chromium (uses out/sample when built)
.PHONY: screenshots
screenshots: venv sysdeps
	$(BIN)/python -m tools.screenshots --output docs/screenshots

# argilla-server 2.8.0's own search-engine tests (tests/unit/search_engine from its pinned
# sdist) against mmloom's SQL engine, in a separate test venv (~/.cache/mmloom/
# argilla-conformance); needs only python3 and the package index. Uses the project venv's
# Python (and so uv) when it exists. See annotation/server/conformance.py.
.PHONY: test-argilla-conformance
test-argilla-conformance:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -m annotation.server.conformance
