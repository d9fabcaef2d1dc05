"""Checks that setup.py, the Makefile and Bazel compile the native code with
the flags of ops/build_config.bzl: every configured flag present, the
effective (last) -O level the configured one, and nvcc's -gencode set equal
to CUDA_ARCHS.

    python3 ops/check_build_flags.py --setup=PYTHON --make [--bazel_aquery=FILE]

--setup runs `PYTHON setup.py build_ext --print-commands` (PYTHON must have
TensorFlow) and reads the commands it prints; --make reads `make -n -B` of
the targets that compile; --bazel_aquery reads the text output of
`bazel aquery 'mnemonic("CppCompile|Genrule", //ops/...)'`
(third_party/bazel_build_and_test.sh writes it). Prints one line per
compiler command and exits 1 if any disagrees or a build compiled nothing.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_config  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST_COMPILERS = ("g++", "gcc", "c++", "cc", "clang", "clang++")
MAKE_TARGETS = ("core-libs", "parity-harness")


def _normalise_nvcc(tokens):
    """'-Xcompiler X' -> '-Xcompiler=X', '-gencode X' -> '-gencode=X'."""
    out, i = [], 0
    while i < len(tokens):
        if tokens[i] in ("-Xcompiler", "-gencode") and i + 1 < len(tokens):
            out.append(f"{tokens[i]}={tokens[i + 1]}")
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


def _last_opt_level(tokens):
    levels = [t for t in tokens if re.fullmatch(r"-O[0-3s]?|-Ofast|-Xcompiler=-O[0-3s]", t)]
    return levels[-1] if levels else None


def classify(tokens):
    """('host' | 'nvcc' | None, the ops/ source it compiles)."""
    if not tokens:
        return None, None
    tool = os.path.basename(tokens[0])
    sources = [t for t in tokens if t.startswith("ops/") and t.endswith(".cc")]
    if not sources or "-c" not in tokens and "-shared" not in tokens:
        return None, None
    if tool == "nvcc":
        return "nvcc", sources[0]
    if tool in HOST_COMPILERS:
        return "host", sources[0]
    return None, None


def problems_of(kind, tokens):
    config = build_config.load()
    if kind == "host":
        wanted = config["HOST_FLAGS"]
    else:
        tokens = _normalise_nvcc(tokens)
        wanted = config["NVCC_FLAGS"]
    problems = [f"missing {flag}" for flag in wanted if flag not in tokens]
    configured_opt = _last_opt_level(wanted)
    if _last_opt_level(tokens) != configured_opt:
        problems.append(f"effective {_last_opt_level(tokens)} instead of {configured_opt}")
    if kind == "nvcc":
        gencode = {t for t in tokens if t.startswith("-gencode=")}
        if gencode != set(build_config.gencode_flags()):
            problems.append(f"gencode {sorted(gencode)} instead of {build_config.gencode_flags()}")
    return problems


def check(build, commands, expect_nvcc):
    """Prints a line per compiler command; returns the number of problems."""
    seen, failures = set(), 0
    for tokens in commands:
        kind, source = classify(tokens)
        if kind is None:
            continue
        seen.add(kind)
        problems = problems_of(kind, tokens)
        failures += bool(problems)
        print(f"{build:6} {kind:4} {source}: {'; '.join(problems) or 'ok'}")
    for kind in ("host", "nvcc") if expect_nvcc else ("host",):
        if kind not in seen:
            print(f"{build:6} {kind:4} no compiler command found")
            failures += 1
    return failures


def setup_commands(python):
    with tempfile.TemporaryDirectory() as temp:
        result = subprocess.run(
            [python, "setup.py", "build_ext", "--print-commands", f"--build-temp={temp}",
             f"--build-lib={temp}"], cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"setup.py build_ext --print-commands failed:\n{result.stderr[-3000:]}")
    return [shlex.split(line) for line in result.stdout.splitlines()]


def make_commands():
    result = subprocess.run(["make", "-n", "-B", *MAKE_TARGETS], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"make -n failed:\n{result.stderr[-3000:]}")
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]


def aquery_commands(path):
    """Command lines of a `bazel aquery` text output; genrules' bash -c
    scripts are split into their commands."""
    with open(path) as stream:
        text = stream.read()
    commands = []
    for block in re.findall(r"Command Line: \(exec (.*?)\)\n", text, re.S):
        tokens = shlex.split(block.replace("\\\n", " "))
        if len(tokens) >= 3 and os.path.basename(tokens[0]) == "bash" and tokens[1] == "-c":
            commands.extend(shlex.split(part) for part in tokens[2].split(";"))
        else:
            commands.append(tokens)
    return commands


def nvcc_present():
    return any(os.access(os.path.join(d, "nvcc"), os.X_OK)
               for d in ["/usr/local/cuda/bin"] + os.environ.get("PATH", "").split(os.pathsep))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", metavar="PYTHON", help="a Python with TensorFlow")
    parser.add_argument("--make", action="store_true")
    parser.add_argument("--bazel_aquery", metavar="FILE")
    args = parser.parse_args()
    expect_nvcc = nvcc_present() and not os.environ.get("MGC_WITHOUT_CUDA")
    failures = 0
    if args.setup:
        failures += check("setup", setup_commands(args.setup), expect_nvcc)
    if args.make:
        failures += check("make", make_commands(), expect_nvcc)
    if args.bazel_aquery:
        failures += check("bazel", aquery_commands(args.bazel_aquery), expect_nvcc)
    print("build flags agree with ops/build_config.bzl" if not failures
          else f"{failures} disagreement(s) with ops/build_config.bzl")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
