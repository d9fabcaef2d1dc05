"""The experiments' command lines (issue 10): every flag name is defined by one
module, the shared ones by experiments.common_flags alone, and a script takes
exactly the shared flags it declares. Scripts are found by listing
experiments/, so a new one is covered without editing this file."""
import collections
import importlib
import os
import re
import subprocess
import sys

import pytest
from absl import flags

from experiments import common_flags
from mgc import paths

FLAGS = flags.FLAGS
EXPERIMENTS = os.path.join(paths.REPO_ROOT, "experiments")
NOT_SCRIPTS = ("__init__", "common_flags", "mgcnet_flags")  # flag definitions


def _source(stem):
    with open(os.path.join(EXPERIMENTS, stem + ".py")) as stream:
        return stream.read()


def _modules():
    stems = sorted(os.path.splitext(name)[0] for name in os.listdir(EXPERIMENTS)
                   if name.endswith(".py"))
    return [stem for stem in stems if stem not in NOT_SCRIPTS]


# A script runs as `python -m experiments.<name>`; the rest are its helpers.
SCRIPTS = [stem for stem in _modules() if '__name__ == "__main__"' in _source(stem)]
HELPERS = [stem for stem in _modules() if stem not in SCRIPTS]


def _import_all():
    """Imports every module of experiments/ into this process; the errors
    (absl's DuplicateFlagError where two define one name) by module."""
    errors = {}
    for stem in SCRIPTS + HELPERS:
        try:
            importlib.import_module(f"experiments.{stem}")
        except flags.Error as error:
            errors[stem] = error
    return errors


def _definers():
    """Flag name -> the modules defining it."""
    found = collections.defaultdict(set)
    for module, defined in FLAGS.flags_by_module_dict().items():
        for flag in defined:
            found[flag.name].add(module)
    return found


def _shared_flags_read(stem):
    """The shared flags a script's source reads (FLAGS.x, value_or("x", ...))."""
    names = re.findall(r"FLAGS\.(\w+)|value_or\(\s*[\"'](\w+)[\"']", _source(stem))
    return {name for pair in names for name in pair if name in common_flags.SHARED}


def test_scripts_are_found():
    assert {"evaluate_aflw2000", "render_demo", "reconstruct"} <= set(SCRIPTS)
    assert "scenes" in HELPERS


@pytest.mark.parametrize("stem", SCRIPTS)
def test_script_imports_beside_the_others(stem):
    _import_all()  # the others first, so a clash shows whichever comes later
    importlib.import_module(f"experiments.{stem}")


def test_no_flag_name_is_defined_by_two_modules():
    errors = _import_all()
    assert not errors, errors
    twice = {name: sorted(modules) for name, modules in _definers().items()
             if len(modules) > 1}
    assert not twice


def test_shared_flags_are_defined_only_by_common_flags():
    _import_all()
    definers = _definers()
    for name in common_flags.SHARED:
        assert definers[name] == {"experiments.common_flags"}, name


def test_helpers_define_no_flags():
    _import_all()
    by_module = FLAGS.flags_by_module_dict()
    assert not {stem: by_module[f"experiments.{stem}"] for stem in HELPERS
                if by_module.get(f"experiments.{stem}")}


@pytest.mark.parametrize("stem", SCRIPTS)
def test_script_takes_the_shared_flags_it_reads(stem):
    """A shared flag a script reads but did not declare with
    common_flags.use() would be refused on its command line."""
    module = f"experiments.{stem}"
    importlib.import_module(module)
    key_flags = {flag.name for flag in FLAGS.get_key_flags_for_module(module)}
    assert _shared_flags_read(stem) <= key_flags


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", *args], cwd=paths.REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("flag", ["--write_docs", "--input=x"])
def test_a_shared_flag_the_script_does_not_take_is_refused(flag):
    done = _run("experiments.evaluate_synthetic", flag, "--count=1")
    assert done.returncode == 2  # a usage error (common_flags.parse)
    name = flag.split("=")[0]
    assert f"{name} does not apply to experiments.evaluate_synthetic" in done.stderr


def test_help_lists_the_shared_flags_the_script_takes():
    done = _run("experiments.render_demo", "--help")  # absl exits 1 after --help
    assert "--output defaults to out/demo" in done.stdout, done.stderr[-2000:]
    for name in ("--output", "--data_root", "--[no]overwrite", "--size"):
        assert name in done.stdout, name
    for name in ("--seed", "--count", "--detector"):
        assert name not in done.stdout, name


@pytest.mark.parametrize("stem", SCRIPTS)
def test_flag_errors_are_usage_errors_in_every_script(stem):
    """Every script parses with common_flags.parse: exit code 2, one line."""
    assert "app.run(main, flags_parser=common_flags.parse)" in _source(stem)
