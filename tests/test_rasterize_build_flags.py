"""setup.py and the Makefile compile the rasterizer with ops/build_config.bzl's
flags (Bazel is checked the same way by `make test-bazel`), and the check
itself notices a build that strays."""
import os
import subprocess
import sys

from mgc import paths

sys.path.insert(0, os.path.join(paths.REPO_ROOT, "ops"))
import check_build_flags  # noqa: E402


def test_setup_and_makefile_use_the_configured_flags():
    result = subprocess.run(
        [sys.executable, os.path.join("ops", "check_build_flags.py"), f"--setup={sys.executable}",
         "--make"], cwd=paths.REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "setup  host" in result.stdout and "make   host" in result.stdout


def test_check_reports_a_missing_flag_and_a_later_optimisation_level():
    command = ["g++", "-O3", "-DNDEBUG", "-c", "ops/rasterize_triangles/rasterize_triangles_cpu.cc",
               "-O2"]
    assert check_build_flags.classify(command) == ("host", command[4])
    problems = check_build_flags.problems_of("host", command)
    assert problems == ["missing -ffp-contract=off", "missing -fno-trapping-math",
                        "effective -O2 instead of -O3"]


def test_check_reads_nvcc_flags_in_either_spelling():
    flags = check_build_flags.build_config.nvcc_flags()
    split = []
    for flag in flags:  # '-Xcompiler=X' as nvcc also takes it: '-Xcompiler X'
        split.extend(flag.split("=", 1) if flag.startswith("-Xcompiler=") else [flag])
    command = ["/usr/local/cuda/bin/nvcc", *split, "-x", "cu", "-c",
               "ops/rasterize_triangles/rasterize_triangles_cuda.cu.cc"]
    assert check_build_flags.problems_of("nvcc", command) == []
    without_one_arch = [t for t in command if "sm_90" not in t]
    assert any("gencode" in p for p in check_build_flags.problems_of("nvcc", without_one_arch))
