"""Builds the mgc package and its custom ops with the installed TensorFlow.

    pip install --no-build-isolation -e .

The op library is compiled with the compiler flags TensorFlow reports
(tf.sysconfig), never hard-coded ABI flags. When nvcc is found the CUDA
kernels are added, linked with the static CUDA runtime so the library still
loads on machines without a GPU. Bazel builds the same sources (ops/BUILD).
Compiler flags, CUDA architectures and the TensorFlow pin come from
ops/build_config.bzl, shared with the Makefile and Bazel.
"""
import importlib.util
import os
import shutil
import subprocess

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

OP_DIR = os.path.join("ops", "rasterize_triangles")
CPU_SOURCES = [
    "rasterize_triangles_op.cc",
    "rasterize_triangles_kernels.cc",
    "rasterize_triangles_cpu.cc",
]
CUDA_SOURCE = "rasterize_triangles_cuda.cu.cc"


def _load_build_config():
    spec = importlib.util.spec_from_file_location(
        "build_config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops",
                                     "build_config.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD_CONFIG = _load_build_config()
# TensorFlow itself must be installed before this script runs (it supplies the
# compiler flags); `make` does that.
# OpenCV pinned: 5.1's warpAffine rounds some pixels 1 off from 5.0's
# (decoding is the same), so the crops make_inputs.py builds no longer hash
# as the parity oracle's (../shared/parity), which match 5.0's.
OPENCV_REQUIREMENT = "opencv-python-headless==5.0.0.93"
REQUIREMENTS = [BUILD_CONFIG.tensorflow_requirement(), "numpy", "pillow", "tqdm", "absl-py", "scipy", "h5py",
                "trimesh", OPENCV_REQUIREMENT, "dlib-bin", "face-recognition-models",
                "ai-edge-litert"]
HOST_FLAGS = BUILD_CONFIG.host_flags() + ["-fPIC"]
NVCC_FLAGS = BUILD_CONFIG.nvcc_flags()


def find_nvcc():
    """Path of nvcc, or None (then the library is CPU-only)."""
    if os.environ.get("MGC_WITHOUT_CUDA"):
        return None
    candidates = [os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc"),
                  shutil.which("nvcc") or ""]
    return next((os.path.realpath(c) for c in candidates if os.path.exists(c)), None)


class BuildOps(build_ext):
    """Compiles the op library with g++ (and nvcc) instead of distutils."""

    user_options = build_ext.user_options + [
        ("print-commands", None, "print the compiler commands without running them")]
    boolean_options = build_ext.boolean_options + ["print-commands"]

    def initialize_options(self):
        super().initialize_options()
        self.print_commands = False

    def build_extension(self, ext):
        import tensorflow as tf  # Needs --no-build-isolation.

        compile_flags = tf.sysconfig.get_compile_flags()
        link_flags = tf.sysconfig.get_link_flags()
        work = os.path.abspath(os.path.join(self.build_temp, "ops"))
        os.makedirs(work, exist_ok=True)
        output = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
        sources = [os.path.join(OP_DIR, s) for s in CPU_SOURCES]
        objects, cuda_flags, cuda_link = [], [], []

        nvcc = find_nvcc()
        if nvcc:
            cuda_root = os.path.dirname(os.path.dirname(nvcc))
            cuda_include = os.path.join(cuda_root, "include")
            include_map = self._cuda_include_map(work, cuda_include)
            cuda_object = os.path.join(work, "rasterize_triangles_cuda.o")
            self._run([nvcc, *NVCC_FLAGS, "-x", "cu",
                       "-c", os.path.join(OP_DIR, CUDA_SOURCE), "-o", cuda_object])
            objects.append(cuda_object)
            # The map must come before TensorFlow's bundled CUDA headers.
            cuda_flags = ["-DGOOGLE_CUDA=1", f"-I{include_map}", f"-I{cuda_include}"]
            cuda_link = [f"-L{os.path.join(cuda_root, 'lib64')}",
                         "-Wl,--exclude-libs,libcudart_static.a",
                         "-l:libcudart_static.a", "-lpthread", "-ldl", "-lrt"]

        partial = output + ".part"
        self._run(["g++", "-shared", *HOST_FLAGS, *cuda_flags, *compile_flags,
                   *sources, *objects, "-o", partial, *link_flags, *cuda_link])
        if self.print_commands:
            return
        # Renamed into place, never written over: a running process that has
        # the old library loaded keeps it (overwriting it in place crashes it).
        os.replace(partial, output)
        # Editable installs import from the source tree: put a copy there too.
        in_source = os.path.join(*ext.name.split(".")[:-1], os.path.basename(output))
        if os.path.abspath(in_source) != os.path.abspath(output):
            shutil.copyfile(output, in_source + ".part")
            os.replace(in_source + ".part", in_source)

    @staticmethod
    def _cuda_include_map(work, cuda_include):
        """A folder where third_party/gpus/cuda/include is the local CUDA."""
        root = os.path.join(work, "cuda_include_map")
        link = os.path.join(root, "third_party", "gpus", "cuda", "include")
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.islink(link):
            os.remove(link)
        os.symlink(cuda_include, link)
        return root

    def _run(self, command):
        """Runs (or with --print-commands only prints) a compiler command;
        the printed lines are what ops/check_build_flags.py reads."""
        print(" ".join(command), flush=True)
        if not self.print_commands:
            subprocess.check_call(command)


setup(
    name="mgc",
    version="0.1.0",
    description="MGCNet (ECCV 2020) in TensorFlow 2 with its own rasterizer ops",
    packages=find_packages(include=["mgc", "mgc.*"]),
    # The calibrated tables the mesh backend and the fit read beside their code.
    package_data={"mgc.preprocess": ["*.json"], "mgc.fitting": ["*.json"]},
    python_requires=">=3.9",
    install_requires=REQUIREMENTS,
    # onnx: experiments.export_model --onnx (tested with tf2onnx 1.17.0, onnx
    # 1.23.2, onnxruntime 1.32.0 beside TensorFlow 2.21; not in make test).
    extras_require={"test": ["pytest", "pytest-xdist"],
                    "onnx": ["tf2onnx>=1.17", "onnx>=1.14", "onnxruntime>=1.17"]},
    ext_modules=[Extension("mgc.render._rasterize_triangles_ops", sources=[])],
    cmdclass={"build_ext": BuildOps},
    zip_safe=False,
)
