# Fairy Farm: the two commands a newcomer needs.
#   make test   install what is missing, build, run the whole test suite
#   make demo   install what is missing, build, run the demo job
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test test-unit demo format clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) > /dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j$(JOBS)

test: build
	@bash scripts/run-tests.sh $(BUILD_DIR)

test-unit: build
	@bash scripts/run-tests.sh $(BUILD_DIR) -L unit

demo: build
	@bash scripts/demo.sh $(BUILD_DIR)

format:
	@git ls-files '*.cpp' '*.h' | grep -v '^third_party/' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR)
