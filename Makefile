# Everything a newcomer runs: `make demo` and `make test`. Both set up what
# they need on a fresh Debian machine: a venv with the pip packages, the op
# library (setup.py), and for the tests Bazel and googletest from Debian.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_ROOT ?= $(abspath $(or $(MGC_DATA),../shared/data))
export MGC_DATA := $(DATA_ROOT)

# Compiler flags, CUDA architectures and the TensorFlow pin: ops/build_config.bzl,
# shared with setup.py and Bazel.
BUILD_CONFIG := $(PYTHON) ops/build_config.py
# TensorFlow first (setup.py imports it for its flags); the rest comes from
# setup.py's install_requires.
TENSORFLOW := $(shell $(BUILD_CONFIG) tensorflow_requirement)
TF_STAMP := $(VENV)/.tensorflow-installed
OPS_STAMP := build/.ops-built
OP_SOURCES := setup.py ops/build_config.bzl ops/build_config.py \
  $(wildcard ops/rasterize_triangles/*.h ops/rasterize_triangles/rasterize_*.cc)
PARITY_HARNESS := build/parity_harness
NVCC := $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
# nvcc's -x applies to every later file, so each source is compiled alone.
NVCC_FLAGS := $(shell $(BUILD_CONFIG) nvcc_flags)
HOST_FLAGS := $(shell $(BUILD_CONFIG) host_flags)
APT_GET := $(if $(filter 0,$(shell id -u)),apt-get,sudo apt-get)

.PHONY: build core-libs face-mesh-models demo test test-python test-bazel parity-harness bench evaluate-aflw2000 bazel-tools \
  clean

$(TF_STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet '$(TENSORFLOW)'
	touch $@

# The package, its dependencies and the op library, built by setup.py with
# TensorFlow's own compiler flags.
$(OPS_STAMP): $(TF_STAMP) $(OP_SOURCES)
	$(PY) -m pip install --quiet --no-build-isolation -e '.[test]'
	mkdir -p build && touch $@

build: $(OPS_STAMP) core-libs face-mesh-models

# MediaPipe's face-mesh and BlazeFace models (Apache-2.0, licence kept
# beside them), taken out of the mediapipe wheel from PyPI: the wheel is not
# installed (its protobuf pin clashes with TensorFlow's). One fixed wheel
# whatever the local Python; mgc.preprocess.mesh_models checks the hashes.
FACE_MESH_DIR := build/face_mesh_models
FACE_MESH_STAMP := $(FACE_MESH_DIR)/.extracted
MEDIAPIPE_WHEEL := mediapipe==0.10.21

face-mesh-models: $(FACE_MESH_STAMP)

$(FACE_MESH_STAMP): $(OPS_STAMP) mgc/preprocess/mesh_models.py
	rm -rf $(FACE_MESH_DIR)/wheel
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
	  --platform manylinux_2_28_x86_64 '$(MEDIAPIPE_WHEEL)' -d $(FACE_MESH_DIR)/wheel
	$(PY) -m mgc.preprocess.mesh_models --wheel_dir=$(FACE_MESH_DIR)/wheel --output=$(FACE_MESH_DIR)
	rm -rf $(FACE_MESH_DIR)/wheel
	touch $@

# The example faces of ../shared/data/demo_images (the astronaut, the 25
# Deep3DFaceRecon examples with their 5-point files, the 300-W image with its
# 68 points): 27 faces at the default fitting steps, about 2 minutes on
# 2 CPU cores. Finished pictures are kept: a second `make demo` only redoes
# what is missing (delete out/demo to redo all).
DEMO_IMAGES := $(DATA_ROOT)/demo_images
DEMO_INPUT := $(DEMO_IMAGES)/astronaut_eileen_collins_public_domain.png,$(DEMO_IMAGES)/deep3dfacerecon_examples_5pt,$(DEMO_IMAGES)/eos_300W_image_0010_68pts

demo: build
	$(PY) -m experiments.reconstruct --input=$(DEMO_INPUT) --output=out/demo
	$(PY) -m experiments.render_demo --output=out/demo/renderer
	@echo "Open out/demo/index.html: every picture beside its mesh, overlays and files;"
	@echo "out/demo/renderer/ holds the rasterizer's demo scenes."

# pytest last, so its summary is the closing line.
test: parity-harness test-bazel test-python

# Two pytest workers (pytest-xdist): about half the wall clock on 2 cores,
# since much of the suite waits on subprocesses importing TensorFlow.
PYTEST_WORKERS ?= 2
test-python: build
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests

bazel-tools:
	command -v bazel >/dev/null || ($(APT_GET) update && $(APT_GET) install -y bazel-bootstrap)
	dpkg -s libgtest-dev >/dev/null 2>&1 || ($(APT_GET) update && $(APT_GET) install -y libgtest-dev)

# The same sources through Bazel (offline, Debian's Bazel 4.2.3).
test-bazel: bazel-tools $(TF_STAMP)
	bash third_party/bazel_build_and_test.sh $(abspath $(PY)) $(DATA_ROOT)

# The TensorFlow-free core behind a C interface for ctypes (tests/rasterizer_backends.py),
# built from the same sources and flags as the op library: the CPU library always, the
# CUDA one where nvcc is found. No TensorFlow needed, so a GPU machine with only numpy and
# pytest can run the backend tests.
CORE_DIR := build/rasterize_core
CORE_SRC := ops/rasterize_triangles
CORE_HEADERS := $(wildcard $(CORE_SRC)/*.h) ops/build_config.bzl
CORE_LIBS := $(CORE_DIR)/librasterize_core_cpu.so $(CORE_DIR)/librasterize_core_cpu_scalar.so \
  $(CORE_DIR)/librasterize_core_cpu_sse2.so $(if $(NVCC),$(CORE_DIR)/librasterize_core_cuda.so)

# Each library is linked to a .part file and renamed into place: a process that has
# the old one loaded (a test run) keeps it instead of crashing.
core-libs: $(CORE_LIBS)

$(CORE_DIR)/librasterize_core_cpu.so: $(CORE_SRC)/rasterize_core_c_api.cc $(CORE_SRC)/rasterize_triangles_cpu.cc $(CORE_HEADERS)
	mkdir -p $(CORE_DIR)
	g++ -shared -fPIC $(HOST_FLAGS) -std=c++17 $(CORE_SRC)/rasterize_core_c_api.cc $(CORE_SRC)/rasterize_triangles_cpu.cc -o $@.part
	mv $@.part $@

# The CPU core once more with rasterize_math.h's scalar functions (what the CUDA kernels run)
# instead of its SSE2 code, so the backend tests check that arithmetic without a GPU.
$(CORE_DIR)/librasterize_core_cpu_scalar.so: $(CORE_SRC)/rasterize_core_c_api.cc $(CORE_SRC)/rasterize_triangles_cpu.cc $(CORE_HEADERS)
	mkdir -p $(CORE_DIR)
	g++ -shared -fPIC $(HOST_FLAGS) -std=c++17 -DMGC_RASTERIZE_SCALAR $(CORE_SRC)/rasterize_core_c_api.cc $(CORE_SRC)/rasterize_triangles_cpu.cc -o $@.part
	mv $@.part $@

# And with SSE2 only (-DMGC_RASTERIZE_NO_AVX2): the path of x86 CPUs without AVX2, which the
# default library only takes where the CPU lacks it.
$(CORE_DIR)/librasterize_core_cpu_sse2.so: $(CORE_SRC)/rasterize_core_c_api.cc $(CORE_SRC)/rasterize_triangles_cpu.cc $(CORE_HEADERS)
	mkdir -p $(CORE_DIR)
	g++ -shared -fPIC $(HOST_FLAGS) -std=c++17 -DMGC_RASTERIZE_NO_AVX2 $(CORE_SRC)/rasterize_core_c_api.cc $(CORE_SRC)/rasterize_triangles_cpu.cc -o $@.part
	mv $@.part $@

$(CORE_DIR)/librasterize_core_cuda.so: $(CORE_SRC)/rasterize_core_c_api.cc $(CORE_SRC)/rasterize_triangles_cpu.cc $(CORE_SRC)/rasterize_triangles_cuda.cu.cc $(CORE_HEADERS)
	mkdir -p $(CORE_DIR)
	g++ -fPIC $(HOST_FLAGS) -std=c++17 -c $(CORE_SRC)/rasterize_triangles_cpu.cc -o $(CORE_DIR)/core_cpu.o
	$(NVCC) $(NVCC_FLAGS) -DMGC_CORE_CUDA=1 -x cu -c $(CORE_SRC)/rasterize_core_c_api.cc -o $(CORE_DIR)/c_api_cuda.o
	$(NVCC) $(NVCC_FLAGS) -x cu -c $(CORE_SRC)/rasterize_triangles_cuda.cu.cc -o $(CORE_DIR)/core_cuda.o
	$(NVCC) $(NVCC_FLAGS) -shared $(CORE_DIR)/c_api_cuda.o $(CORE_DIR)/core_cuda.o $(CORE_DIR)/core_cpu.o -o $@.part
	mv $@.part $@

# The CUDA core's sanitizer driver (TensorFlow-free): built here so the CUDA code compiles
# in `make test`; on a GPU machine it runs the kernels on every edge case (run it under
# compute-sanitizer --tool memcheck / racecheck). Without a GPU it says so and exits 0.
parity-harness:
ifeq ($(NVCC),)
	@echo "nvcc not found: parity harness not built"
else
	mkdir -p build
	g++ $(HOST_FLAGS) -std=c++17 -c ops/rasterize_triangles/rasterize_triangles_cpu.cc -o build/parity_cpu.o
	$(NVCC) $(NVCC_FLAGS) -x cu -c ops/rasterize_triangles/rasterize_triangles_cuda.cu.cc -o build/parity_cuda.o
	$(NVCC) $(NVCC_FLAGS) -x cu -c ops/rasterize_triangles/parity_harness.cu.cc -o build/parity_harness.o
	$(NVCC) $(NVCC_FLAGS) build/parity_harness.o build/parity_cuda.o build/parity_cpu.o -o $(PARITY_HARNESS)
	$(PARITY_HARNESS)
endif

bench: build
	$(PY) -m experiments.bench_rasterizer --write_docs
	$(PY) -m experiments.bench_encoder --write_docs
	$(PY) -m experiments.bench_reconstruct --write_docs
	$(PY) -m experiments.bench_losses --write_docs
	$(PY) -m experiments.bench_train --write_docs

# AFLW2000-3D 68-point NME on the 200-image subset of the data root (about 10
# minutes on 2 cores); replaces the table in docs/RESULTS.md. make test runs
# it on two images (tests/test_eval_aflw2000.py).
evaluate-aflw2000: build
	$(PY) -m experiments.evaluate_aflw2000 --output=out/aflw2000 --write_docs

clean:
	rm -rf build out mgc/render/_rasterize_triangles_ops*.so *.egg-info
	-command -v bazel >/dev/null && bazel clean --expunge
