# Thin wrapper around cmake and ctest; all the logic is in CMakeLists.txt.
#   make                  configure build/ and build the libraries and the launcher
#   make tests            build them and every test program (the sanitizer and
#                         valgrind variants too: a few minutes on 2 cores)
#   make test             build everything, then run every test (ctest, JOBS at once: one per core)
#   make run [STATS=full] build, then run the main job with glibc's malloc and
#                         with mapalloc: same output? time, peak RSS, statistics
#   make install          build, then install into PREFIX (/usr/local)
#   make bench [QUICK=1]  build, then bash bench/run.sh
#   make debug            build build-debug/ with CMAKE_BUILD_TYPE=Debug
#   make clean            remove build/ and build-debug/
CMAKE      ?= cmake
CTEST      ?= ctest
BUILD      ?= build
DEBUG_BUILD ?= build-debug
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
QUICK      ?=
# The main job's interpreter: Debian's python3 itself, not a wrapper script
# (a wrapper's own processes would each print a statistics report).
PYTHON     ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
CMAKE_ARGS ?=

.PHONY: all tests configure test run install bench debug clean

# cmake --build runs make again: keep its output free of directory noise.
MAKEFLAGS += --no-print-directory

# What a program needs: the drop-in library (shared and static), the ma_
# library, the launcher (written at configure time). The tests' hundred-odd
# programs wait for `make tests` / `make test`.
all: configure
	$(CMAKE) --build $(BUILD) -j$(JOBS) --target mapalloc mapalloc_static mapalloc_ma

tests: configure
	$(CMAKE) --build $(BUILD) -j$(JOBS)

configure: $(BUILD)/CMakeCache.txt

$(BUILD)/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD) $(CMAKE_ARGS)

test: tests
	$(CTEST) --test-dir $(BUILD) --output-on-failure -j$(JOBS) --timeout 300

run: all
	@$(PYTHON) tools/compare.py --lib $(BUILD)/libmapalloc.so $(if $(filter full,$(STATS)),--stats=full) \
	    -- env PYTHONMALLOC=malloc PYTHONHASHSEED=0 $(PYTHON) examples/workload.py

install: all
	$(CMAKE) --install $(BUILD) --prefix $(PREFIX)
	@echo "make install: a program linked with -lmapalloc finds $(PREFIX)/lib/libmapalloc.so.0"
	@echo "  through the rpath pkg-config's Libs add, or LD_LIBRARY_PATH, or (system prefix) after ldconfig:"
	@echo "  README.md, 'Linking against an install'"

bench: all
	@test -f bench/run.sh || { echo "make bench: bench/run.sh is missing" >&2; exit 1; }
	QUICK=$(QUICK) bash bench/run.sh

debug:
	$(CMAKE) -S . -B $(DEBUG_BUILD) -DCMAKE_BUILD_TYPE=Debug $(CMAKE_ARGS)
	$(CMAKE) --build $(DEBUG_BUILD) -j$(JOBS)

clean:
	rm -rf $(BUILD) $(DEBUG_BUILD)
