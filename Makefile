# Developer shortcuts.  The README's two commands are the supported entry
# points; these wrap the longer ones.
PYTHON ?= python
ASAN_LIB := $(shell gcc -print-file-name=libasan.so)
UBSAN_LIB := $(shell gcc -print-file-name=libubsan.so)

.PHONY: build test test-asan vectors bench clean

build:
	$(PYTHON) -m pip install -e ".[test]"

test: build
	$(PYTHON) -m pytest -q

# The whole suite with the C core and Cython modules built under
# AddressSanitizer + UndefinedBehaviorSanitizer (in-place build).  Python
# itself is not instrumented, so the runtime is preloaded and leak checking
# (which would report CPython's own allocations) is off.
test-asan:
	rm -rf build && VMCORE_SANITIZE=1 $(PYTHON) setup.py -q build_clib --force build_ext --inplace --force
	VMCORE_UNDER_ASAN=1 LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); \
	status=$$?; rm -rf build && $(PYTHON) setup.py -q build_clib --force build_ext --inplace --force; exit $$status

vectors:
	$(PYTHON) -m vmcore vectors tests/vectors

bench:
	$(PYTHON) perf/bench_interpreter.py --fast
	$(PYTHON) perf/bench_api.py --fast

clean:
	rm -rf build *.egg-info src/vmcore/*.so src/vmcore/*.c src/vmcore/_zygote

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
build/fuzz/libfuzzer_loader: fuzz/libfuzzer_loader.c src/vmcore/_native/decoder.c src/vmcore/_native/program.c src/vmcore/_native/interp.c
	mkdir -p build/fuzz
	$(CLANG) -std=c11 -g -O1 -Wall -Wextra -Wno-unused-function -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -Iinclude $^ -o $@

fuzz-libfuzzer: build/fuzz/libfuzzer_loader fuzz-corpus
	mkdir -p fuzz/work-c fuzz/crashes
	build/fuzz/libfuzzer_loader -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=fuzz/crashes/ \
	  -print_final_stats=1 fuzz/work-c fuzz/corpus
