# Glassbox: the two commands of a fresh machine are `make demo` and `make test`.
SWIFT ?= swift
BIN = .build/release/glassbox

.PHONY: onnx-venv setup build release lib install demo test c-api-test python-test bench check-specs clean fuzz readers data study format format-check

setup:
	tools/setup

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release --product glassbox

# The C API: include/glassbox.h and .build/release/libglassbox.so (SwiftPM names the dynamic
# library after its product, GlassboxC; the copy has the API's name and no soname to disagree).
LIB = .build/release/libglassbox.so
lib: setup
	$(SWIFT) build -c release --product GlassboxC
	cp .build/release/libGlassboxC.so $(LIB)

# make install PREFIX=/usr/local: the library, its header and a pkg-config file
# (`cc app.c $$(pkg-config --cflags --libs glassbox)`).
PREFIX ?= /usr/local
install: lib release
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libglassbox.so
	install -m 644 include/glassbox.h $(DESTDIR)$(PREFIX)/include/glassbox.h
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/glassbox
	sed -e 's|@PREFIX@|$(PREFIX)|' -e "s|@VERSION@|$$($(BIN) version | awk 'NR==1{print $$2}')|" \
	  tools/glassbox.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/glassbox.pc

# The main job: the study end to end in --quick form (generated data, five trained models,
# their explanations and metrics, t-SNE, out/study/report.html); re-running continues it.
demo: release
	$(BIN) study --quick -o out/study

# Every study spec checked and drawn (out/NAME.svg).
check-specs: release
	@mkdir -p out
	@for g in graphs/*.graph; do \
	  name=$$(basename $$g .graph); \
	  $(BIN) check $$g --bind C=5 || exit 1; \
	  $(BIN) dot $$g --bind C=5 -o out/$$name.svg || exit 1; \
	  echo "  drew out/$$name.svg"; \
	done

# Swift sources checked by swift format (.swift-format); generated protobuf code is left as
# protoc writes it.
FORMATTED = $(shell git ls-files '*.swift' | grep -v '\.pb\.swift$$')

# Rewrites the sources in the project's format.
format:
	@echo "swift format format --in-place (the $(words $(FORMATTED)) Swift sources)"
	@$(SWIFT) format format --in-place --parallel $(FORMATTED)

# Fails on any source that `make format` would change.
format-check:
	@echo "swift format lint --strict (the $(words $(FORMATTED)) Swift sources; make format fixes them)"
	@$(SWIFT) format lint --strict --parallel $(FORMATTED)

# ONNX Runtime and the onnx package for the ONNX tests (exports run in ONNX Runtime, the light
# models), in .venv; the tests fail rather than skip without them (GLASSBOX_REQUIRE_ONNX).
onnx-venv:
	@.venv/bin/python -c "import onnx, onnxruntime" 2>/dev/null \
	  || { echo "onnx-venv: python3 -m venv .venv; pip install -r tools/reference/requirements-onnx.txt"; \
	       python3 -m venv .venv && .venv/bin/pip install -q -r tools/reference/requirements-onnx.txt; }

test: setup format-check onnx-venv
	$(SWIFT) build --build-tests
	GLASSBOX_REQUIRE_ONNX=1 $(SWIFT) test --skip-build
	$(MAKE) --no-print-directory c-api-test python-test

# The C API and the Python package are tested against the library and glassbox command of the
# debug build that `swift build` makes (GLASSBOX_BUILD=.build/release for release ones).
GLASSBOX_BUILD ?= .build/debug
export GLASSBOX_BUILD

# The C API under AddressSanitizer and UBSan: examples/c/api_test.c (every call, good and bad
# arguments, results against the glassbox command's) and examples/c/explain.c.
c-api-test:
	$(SWIFT) build --product GlassboxC
	$(SWIFT) build --product glassbox
	examples/c/test.sh

# The Python package (python/tests) with Debian's python3 and pytest: results bit for bit
# against the glassbox command's, every bad input, threads, memory over 1,000 cycles, and
# `pip install ./python` into a fresh venv.
python-test: setup
	$(SWIFT) build --product GlassboxC
	$(SWIFT) build --product glassbox
	/usr/bin/python3 -m pytest -q -p no:cacheprovider python/tests

# Glassbox against PyTorch eager, same shapes and threads, one run (needs a venv with torch:
# python3 -m venv .venv && .venv/bin/pip install -r tools/reference/requirements.txt).
bench: release
	@.venv/bin/python -c "import torch" 2>/dev/null || { python3 -m venv .venv && .venv/bin/pip install -q -r tools/reference/requirements.txt; }
	tools/bench/compare.py

clean:
	rm -rf .build out

# libFuzzer on the .model loader, the spec compiler and the ONNX importer (Fuzz/), FUZZ_SECONDS
# each, starting from the committed seed corpus; new inputs go to .build-fuzz/corpus, crashes to
# .build-fuzz/crashes (turn each into a fixture in Tests/GlassboxFormatTests/Fixtures/crashes, or
# for the importer Tests/GlassboxONNXTests/Fixtures/bad).
# Leak detection is off: Swift's lazily initialised globals (static lets) read as leaks.
FUZZ_SECONDS ?= 120
FUZZ_BIN = .build-fuzz/release
fuzz: setup
	$(SWIFT) build --package-path Fuzz --scratch-path .build-fuzz -c release \
	  --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address
	@for t in ModelLoader SpecParser ONNXImporter; do \
	  mkdir -p .build-fuzz/corpus/$$t .build-fuzz/crashes; \
	  echo "fuzz: Fuzz$$t for $(FUZZ_SECONDS) s"; \
	  ASAN_OPTIONS=detect_leaks=0 $(FUZZ_BIN)/Fuzz$$t .build-fuzz/corpus/$$t Fuzz/Corpus/$$t -max_total_time=$(FUZZ_SECONDS) \
	    -max_len=16384 -timeout=10 -rss_limit_mb=4096 -detect_leaks=0 -artifact_prefix=.build-fuzz/crashes/$$t- \
	    -print_final_stats=1 || exit 1; \
	done

# The format is open: read a compiled model with the Python reader and the C reader
# (protobuf-c) and check that they print the same thing.
READER_BUILD = .build-c-reader
readers: release
	@mkdir -p $(READER_BUILD)
	protoc-c --c_out=$(READER_BUILD) -I Formats Formats/glassbox.proto
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -I$(READER_BUILD) tools/c_reader/read_model.c \
	  $(READER_BUILD)/glassbox.pb-c.c -lprotobuf-c -o $(READER_BUILD)/read_model
	$(BIN) compile graphs/bilstm_attention2d.graph --bind C=5 -o $(READER_BUILD)/lid.model
	$(READER_BUILD)/read_model $(READER_BUILD)/lid.model --values 3 > $(READER_BUILD)/c.txt
	/usr/bin/python3 tools/read_model.py $(READER_BUILD)/lid.model --values 3 > $(READER_BUILD)/python.txt
	diff $(READER_BUILD)/c.txt $(READER_BUILD)/python.txt
	@cat $(READER_BUILD)/c.txt
	@echo "readers: the C and Python readers agree"

# Generated data sets, small by default (under 2 minutes): spoken clips in 12 Indian languages
# (espeak-ng) in DATA/lid/<Language>/, and action videos in the HMDB-51 layout in DATA/actions/.
# Bigger: make data SPEECH_CLIPS=400 ACTION_CLIPS=100 ACTION_SIZE=320x240 ACTION_FRAMES=90
DATA ?= data
SPEECH_CLIPS ?= 24
ACTION_CLIPS ?= 12
ACTION_SIZE ?= 160x120
ACTION_FRAMES ?= 48
SEED ?= 0
data: setup
	/usr/bin/python3 tools/gen_speech.py --out $(DATA)/lid --clips $(SPEECH_CLIPS) --seed $(SEED)
	/usr/bin/python3 tools/gen_actions.py --out $(DATA)/actions --clips $(ACTION_CLIPS) \
	  --size $(ACTION_SIZE) --frames $(ACTION_FRAMES) --seed $(SEED)

# The study end to end (data, training, explanations, t-SNE, report) in out/study; re-running
# continues. STUDY_FLAGS=--force starts over; without --quick it is the full run.
STUDY_FLAGS ?= --quick
study: release
	$(BIN) study $(STUDY_FLAGS) -o out/study
