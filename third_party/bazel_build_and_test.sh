#!/usr/bin/env bash
# Builds the ops with Bazel and runs `bazel test //...`, offline.
#
#   bash third_party/bazel_build_and_test.sh /abs/.venv/bin/python /abs/data/root
#
# Adds --config=cuda (the CUDA kernels, nvcc) when nvcc is at
# /usr/local/cuda/bin/nvcc or on the PATH; MGC_BAZEL_CUDA=0 turns that off.
# Writes nothing under the data root. Always stops the Bazel server at the end.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 PYTHON_WITH_TENSORFLOW [DATA_ROOT]" >&2
  exit 2
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

abspath() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }

python_bin="$1"
if [[ "${python_bin}" != /* ]]; then
  if [[ -e "${python_bin}" ]]; then
    python_bin="$(abspath "${python_bin}")"
  else
    python_bin="$(command -v "${python_bin}" || true)"
  fi
fi
if [[ -z "${python_bin}" || ! -x "${python_bin}" ]]; then
  echo "$0: no Python interpreter at '$1'" >&2
  exit 2
fi

data_root="${2:-${MGC_DATA:-${repo_root}/../shared/data}}"
if [[ ! -d "${data_root}" ]]; then
  echo "$0: data root '${data_root}' is not a folder" >&2
  exit 2
fi
data_root="$(cd "${data_root}" && pwd)"

if ! command -v bazel >/dev/null 2>&1; then
  echo "$0: bazel not found (apt-get install -y bazel-bootstrap)" >&2
  exit 2
fi

trap 'bazel shutdown >/dev/null 2>&1 || true' EXIT

export PYTHON_BIN_PATH="${python_bin}"
export MGC_DATA="${data_root}"

# Same options for build and test, so the analysis cache is kept.
flags=(
  "--repo_env=PYTHON_BIN_PATH=${python_bin}"
  "--action_env=PYTHON_BIN_PATH=${python_bin}"
  "--test_env=MGC_DATA=${data_root}"
  "--color=no"
  "--curses=no"
)

nvcc=""
if [[ -x /usr/local/cuda/bin/nvcc ]]; then
  nvcc=/usr/local/cuda/bin/nvcc
elif command -v nvcc >/dev/null 2>&1; then
  nvcc="$(command -v nvcc)"
fi
if [[ -n "${nvcc}" && "${MGC_BAZEL_CUDA:-1}" != "0" ]]; then
  echo "bazel: building with CUDA (${nvcc})"
  flags+=("--config=cuda")
else
  echo "bazel: building without CUDA (no nvcc)"
fi

bazel build "${flags[@]}" //ops/...
# The flags Bazel actually passed, against ops/build_config.bzl (the same
# check as for setup.py and the Makefile).
aquery_output="$(mktemp)"
trap 'rm -f "${aquery_output}"; bazel shutdown >/dev/null 2>&1 || true' EXIT
bazel aquery "${flags[@]}" 'mnemonic("CppCompile|Genrule", deps(//ops/...))' >"${aquery_output}"
python3 ops/check_build_flags.py --bazel_aquery="${aquery_output}"
bazel test "${flags[@]}" --test_output=errors //...
