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
	LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); \
	status=$$?; rm -rf build && $(PYTHON) setup.py -q build_clib --force build_ext --inplace --force; exit $$status

vectors:
	$(PYTHON) -m vmcore vectors tests/vectors

bench:
	$(PYTHON) perf/bench_interpreter.py --fast
	$(PYTHON) perf/bench_api.py --fast

clean:
	rm -rf build *.egg-info vmcore/*.so vmcore/*.c
