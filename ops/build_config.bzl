# The one build configuration of the native code: read by setup.py and the
# Makefile (through ops/build_config.py) and loaded by Bazel (ops/*/BUILD,
# third_party/tensorflow/tf_configure.bzl). Plain assignments of literals
# only, so that Starlark and Python read it alike; ops/check_build_flags.py
# checks that the three builds pass exactly these flags.

# The TensorFlow the op library is built against and tested with (pip
# requirement syntax; tf_configure refuses another installed version).
TENSORFLOW_REQUIREMENT = "tensorflow==2.21.*"

# GPUs the CUDA kernels are compiled for: A100 (sm_80) and H100/H200 (sm_90),
# the machines the project lends. nvcc 13 defaults to sm_75 otherwise.
CUDA_ARCHS = ["80", "90"]

# Host C++ (op library, TF-free core, its C interface and tests).
#  -O3: the pixel loops vectorise better than at -O2 at no cost in accuracy.
#  -ffp-contract=off: no fused multiply-add contraction. The coverage test
#    decides on the sign of an edge function and the depth test on equal
#    floats, so one rounding more or less moves pixels between triangles.
#    Baseline x86-64 has no FMA instructions, but -march=native builds and
#    aarch64 (where GCC contracts by default) would; with it off the CPU
#    kernels round exactly as the NumPy reference and the CUDA kernels.
#  -fno-trapping-math: floating-point operations may be assumed not to trap,
#    so comparisons and selects can run without branches; no value changes
#    (unlike -ffast-math). It lets the rasterizer's loop over the vertices
#    (VertexRange) vectorise.
#  -DNDEBUG: release build, as Bazel's opt mode.
HOST_FLAGS = ["-O3", "-DNDEBUG", "-ffp-contract=off", "-fno-trapping-math"]

# Warnings TensorFlow's headers trigger in every file that includes them.
HOST_WARNING_FLAGS = ["-Wno-deprecated-declarations", "-Wno-interference-size"]

# Device and host code compiled by nvcc.
#  --fmad=false: the device counterpart of -ffp-contract=off (nvcc fuses
#    a * b + c into FMA by default), so the GPU's edge functions, depths and
#    barycentrics are bit-identical to the CPU's.
#  --prec-div=true --prec-sqrt=true: IEEE division (nvcc's default, stated
#    because the barycentrics are e_i / sum and the depth a quotient).
#  -Xcompiler=-ffp-contract=off: the host side of the .cu.cc files.
#  --expt-relaxed-constexpr: TensorFlow's headers call constexpr functions
#    from device code.
NVCC_FLAGS = [
    "-std=c++17",
    "-O3",
    "--fmad=false",
    "--prec-div=true",
    "--prec-sqrt=true",
    "--expt-relaxed-constexpr",
    "-Xcompiler=-ffp-contract=off",
    "-Xcompiler=-fPIC",
]
