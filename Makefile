# Developer shortcuts.  The README's two commands are the supported entry
# points; these wrap the longer ones.  Development builds treat warnings in
# our C as errors (setup.py: VMCORE_WERROR; end-user builds only warn).
PYTHON ?= python
export VMCORE_WERROR ?= 1
ASAN_LIB := $(shell gcc -print-file-name=libasan.so)
UBSAN_LIB := $(shell gcc -print-file-name=libubsan.so)

.PHONY: build build-deps test test-asan vectors bench clean docs docs-deps docs-serve wheel \
	test-aarch64 test-aarch64-deps test-aarch64-python

build:
	$(PYTHON) -m pip install -e ".[test]"

test: build
	$(PYTHON) -m pytest -q

# The whole suite with the C core and Cython modules built under
# AddressSanitizer + UndefinedBehaviorSanitizer (in-place build).  Python
# itself is not instrumented, so the runtime is preloaded and leak checking
# (which would report CPython's own allocations) is off.
test-asan: build-deps
	rm -rf build && VMCORE_SANITIZE=1 $(PYTHON) setup.py -q build_clib --force build_ext --inplace --force
	VMCORE_UNDER_ASAN=1 LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); \
	status=$$?; rm -rf build && $(PYTHON) setup.py -q build_clib --force build_ext --inplace --force; exit $$status

# What `setup.py` itself needs (pyproject.toml's build requirements): for
# the in-place builds of test-asan and the fuzz builds (pip builds isolated).
build-deps:
	$(PYTHON) .ci/project.py build-requires | $(PYTHON) -m pip install -q -r /dev/stdin

vectors:
	$(PYTHON) -m vmcore vectors tests/vectors

# The documentation site (mkdocs.yml, docs/) into site/; warnings are errors.
# The API reference is read from the sources and stubs (nothing is imported).
docs-deps:
	$(PYTHON) .ci/project.py extra docs | $(PYTHON) -m pip install -q -r /dev/stdin

docs:
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict

docs-serve:
	$(PYTHON) -m mkdocs serve

# A wheel for this machine in dist/ (cibuildwheel --platform linux builds the
# manylinux ones: pyproject.toml [tool.cibuildwheel]).
wheel:
	rm -rf dist && $(PYTHON) -m pip wheel . -w dist --no-deps
	$(PYTHON) .ci/project.py check-wheel dist/vmcore-*.whl

# ---- Linux aarch64 -----------------------------------------------------
# The whole C core cross-compiled (-Werror; the x86-64-only zygote is not
# part of an aarch64 build) and the interpreter running every JSON vector
# under qemu-user (tests/native/vectors_runner.c, no Python on aarch64).
# `make test-aarch64-deps` installs the cross compiler and qemu (apt-get).
AARCH64_CC ?= aarch64-linux-gnu-gcc
QEMU_AARCH64 ?= qemu-aarch64
AARCH64_FLAGS = -std=c11 -Wall -Wextra -Werror -fno-strict-aliasing -O2 -Iinclude
AARCH64_CORE = $(filter-out %/zygote.c %/zygote_confine.c %/zygote_libc.c %/zygote_hostile.c,$(wildcard src/vmcore/_native/*.c src/vmcore/_native/x64/*.c))
AARCH64_RUNNER = tests/native/vectors_runner.c $(addprefix src/vmcore/_native/,decoder.c program.c interp.c interp_build.c memory.c guest_memory.c gas.c)

test-aarch64-deps:
	@if ! command -v $(AARCH64_CC) >/dev/null || ! command -v $(QEMU_AARCH64) >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu \
	    libc6-dev-arm64-cross qemu-user >/dev/null; fi

build/aarch64/vectors_runner: $(AARCH64_RUNNER) $(wildcard include/vmcore/*.h)
	mkdir -p build/aarch64/core
	for f in $(AARCH64_CORE); do \
	  $(AARCH64_CC) $(AARCH64_FLAGS) -fPIC -c $$f -o build/aarch64/core/$$(basename $$f .c).o || exit 1; done
	$(AARCH64_CC) $(AARCH64_FLAGS) -static $(AARCH64_RUNNER) -o $@

test-aarch64: build/aarch64/vectors_runner
	$(PYTHON) tests/native/vectors.py --runner "$(QEMU_AARCH64) build/aarch64/vectors_runner" tests/vectors

# vmcore cross-built for aarch64 CPython (Debian bookworm's arm64
# python3.11, extracted into build/aarch64-python) and the interpreter's
# pytest suites run on it under trixie's qemu-user (extracted there too):
# .ci/aarch64_python.sh.  Needs the cross compiler (test-aarch64-deps) and
# the build requirements; PYTEST_ARGS picks the tests.
test-aarch64-python: test-aarch64-deps build-deps
	PYTHON="$(PYTHON)" .ci/aarch64_python.sh $(PYTEST_ARGS)

bench:
	$(PYTHON) perf/bench_interpreter.py --fast
	$(PYTHON) perf/bench_api.py --fast

clean:
	rm -rf build dist site *.egg-info src/*.egg-info src/vmcore/*.so src/vmcore/*.c src/vmcore/_zygote

# ---- Fuzzing (see fuzz/README.md) --------------------------------------
# `make fuzz`: the built-in campaign (loaders + differential), long form.
# `make fuzz-atheris[-asan]`: coverage-guided fuzzing of the loaders and the
# decoder with atheris, on a copy of vmcore built out of tree (build/fuzz*)
# with clang's -fsanitize=fuzzer-no-link (the editable install is untouched).
.PHONY: fuzz fuzz-corpus fuzz-build fuzz-build-asan fuzz-atheris fuzz-atheris-asan fuzz-libfuzzer
CLANG ?= clang
FUZZ_SECONDS ?= 600
FUZZ_SEED ?= 1
FUZZ_CC = $(CURDIR)/fuzz/clang-cc
FUZZ_ARCH := $(shell uname -m)
FUZZ_RT = $(shell $(CLANG) -print-file-name=libclang_rt.fuzzer_no_main-$(FUZZ_ARCH).a)
FUZZ_ASAN_RT = $(shell $(CLANG) -print-file-name=libclang_rt.asan-$(FUZZ_ARCH).a)
FUZZ_RUN = $(PYTHON) fuzz/atheris_loader.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=fuzz/crashes/ \
	-print_final_stats=1 fuzz/work fuzz/corpus

fuzz:
	$(PYTHON) -m vmcore fuzz --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED) --target all

fuzz-corpus:
	$(PYTHON) fuzz/make_corpus.py

# libFuzzer as a shared library, preloaded so the instrumented modules find
# its coverage callbacks (atheris then uses it instead of its own copy).
build/fuzz/libfuzzer.so:
	mkdir -p build/fuzz
	$(CLANG)++ -Wl,--whole-archive $(FUZZ_RT) -Wl,--no-whole-archive -lpthread -ldl -shared -o $@

# ASan's runtime merged with libFuzzer (what atheris' asan_with_fuzzer.so is
# when atheris is built from source), for the sanitized build.
build/fuzz/asan_with_fuzzer.so:
	mkdir -p build/fuzz
	cp $(FUZZ_ASAN_RT) build/fuzz/asan.a && ar d build/fuzz/asan.a asan_preinit.cpp.o
	$(CLANG)++ -Wl,--whole-archive $(FUZZ_RT) build/fuzz/asan.a -Wl,--no-whole-archive -lpthread -ldl -shared -o $@

fuzz-build: build/fuzz/libfuzzer.so
	CC="$(FUZZ_CC)" LDSHARED="$(FUZZ_CC) -shared -pthread" VMCORE_FUZZ=1 \
	  $(PYTHON) setup.py -q build --build-base build/fuzz --build-lib build/fuzz/lib

fuzz-build-asan: build/fuzz/asan_with_fuzzer.so
	CC="$(FUZZ_CC)" LDSHARED="$(FUZZ_CC) -shared -pthread" VMCORE_FUZZ=1 VMCORE_SANITIZE=1 \
	  $(PYTHON) setup.py -q build --build-base build/fuzz-asan --build-lib build/fuzz-asan/lib

fuzz-atheris: fuzz-build fuzz-corpus
	mkdir -p fuzz/work fuzz/crashes
	LD_PRELOAD=$(CURDIR)/build/fuzz/libfuzzer.so PYTHONPATH=build/fuzz/lib $(FUZZ_RUN)

fuzz-atheris-asan: fuzz-build-asan fuzz-corpus
	mkdir -p fuzz/work fuzz/crashes
	LD_PRELOAD=$(CURDIR)/build/fuzz/asan_with_fuzzer.so ASAN_OPTIONS=detect_leaks=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 PYTHONPATH=build/fuzz-asan/lib $(FUZZ_RUN)

# The C loader and decoder alone under libFuzzer + ASan + UBSan (no Python):
# fuzz/libfuzzer_loader.c, same seeds, native speed.
build/fuzz/libfuzzer_loader: fuzz/libfuzzer_loader.c src/vmcore/_native/decoder.c src/vmcore/_native/program.c src/vmcore/_native/interp.c \
	  src/vmcore/_native/interp_build.c src/vmcore/_native/memory.c src/vmcore/_native/gas.c
	mkdir -p build/fuzz
	$(CLANG) -std=c11 -g -O1 -Wall -Wextra -Wno-unused-function -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -Iinclude $^ -o $@

fuzz-libfuzzer: build/fuzz/libfuzzer_loader fuzz-corpus
	mkdir -p fuzz/work-c fuzz/crashes
	build/fuzz/libfuzzer_loader -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=fuzz/crashes/ \
	  -print_final_stats=1 fuzz/work-c fuzz/corpus
