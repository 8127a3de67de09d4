# Glassbox: the two commands of a fresh machine are `make demo` and `make test`.
SWIFT ?= swift
BIN = .build/release/glassbox

.PHONY: setup build release demo test bench clean

setup:
	tools/setup

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release --product glassbox

# The main job. Until the study pipeline lands, it checks every study spec and draws it.
demo: release
	@mkdir -p out
	@for g in graphs/*.graph; do \
	  name=$$(basename $$g .graph); \
	  $(BIN) check $$g --bind C=5 || exit 1; \
	  $(BIN) dot $$g --bind C=5 -o out/$$name.svg || exit 1; \
	  echo "  drew out/$$name.svg"; \
	done

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# Glassbox against PyTorch eager, same shapes and threads, one run (needs a venv with torch:
# python3 -m venv .venv && .venv/bin/pip install -r tools/reference/requirements.txt).
bench: release
	@[ -x .venv/bin/python ] || { python3 -m venv .venv && .venv/bin/pip install -q -r tools/reference/requirements.txt; }
	tools/bench/compare.py

clean:
	rm -rf .build out
