"""The flags several experiments share, each defined here once with one
meaning.

A script names the shared flags it takes:

    from experiments import common_flags
    common_flags.use("data_root", "output", "face_model")

which lists them in the script's --help; a shared flag the running script
does not take is refused at parse time ("--seed does not apply to ...")
instead of being silently ignored. Where scripts need different defaults the
flag's default here is None and each script's --help says what None means
there; `value_or(name, default)` reads such a flag.

Flags that port the original MGCNet scripts keep the original's names and
defaults (../shared/spec/MGCNET_REFERENCE.md §5.9) in the scripts that port
them; they are not shared here.
"""
import sys

from absl import flags

from mgc.preprocess.pipeline import DETECTORS, LANDMARK_MODELS

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "input", None, "What the script reads: pictures for reconstruct, a face-model file for "
    "convert_face_model (see the script's --help).")
flags.DEFINE_string(
    "output", None, "Where the script writes its results (None: the script's own default, "
    "see its --help).")
flags.DEFINE_bool("overwrite", False, "Replace results that already exist in --output.")
flags.DEFINE_string("data_root", None, "Data root (default: $MGC_DATA or ../shared/data).")
flags.DEFINE_string(
    "face_model", "ict", "Face model: a built-in name (ict = ICT-FaceKit, surrey, bfm_mean) "
    "or a face-model file (mgc.facemodel.load_face_model).")
flags.DEFINE_integer(
    "batch_size", None, "Faces (or samples) processed together (None: the script's own "
    "default, see its --help).", lower_bound=1)
flags.DEFINE_enum(
    "detector", "auto", list(DETECTORS), "Face detector: auto (the landmark backend's own: "
    "blazeface for the mesh; for dlib's predictor dlib's HOG detector, where it finds nothing "
    "the CNN detector's box, or a weak HOG box the CNN confirms), blazeface (MediaPipe's "
    "BlazeFace, which finds profiles; dlib's detectors where it finds nothing), hog (HOG "
    "only) or cnn (the CNN detector only).")
flags.DEFINE_enum(
    "landmarks_model", None, list(LANDMARK_MODELS), "Landmark backend: mesh (MediaPipe's "
    "468-point face mesh, the fit uses every point) or dlib (dlib's 68 points) (None: the "
    "script's own default, see its --help).")
flags.DEFINE_integer("seed", None, "Random seed (None: the script's own default, see its "
                     "--help).")
flags.DEFINE_integer("count", None, "How many random samples the script draws (None: the "
                     "script's own default, see its --help).", lower_bound=1)
flags.DEFINE_integer(
    "steps", None, "Total optimisation steps of the fit per face, spread over the fitting "
    "stages in the proportions of FitSettings' defaults (None: FitSettings() as is).",
    lower_bound=0)
flags.DEFINE_bool("write_docs", False, "Replace the script's measured table in docs/.")
flags.DEFINE_integer("repeats", None, "Timed repetitions per measurement, the median reported "
                     "(None: the script's own default, see its --help).", lower_bound=1)
flags.DEFINE_list("batches", None, "Batch sizes to time (None: the script's own default, see "
                  "its --help).")
flags.DEFINE_string(
    "checkpoint", None, "An MGCNet checkpoint prefix (e.g. ckpt/model-400000): an original TF1 "
    "checkpoint or one this project writes (mgc.nets.load_encoder).")

SHARED = ("input", "output", "overwrite", "data_root", "face_model", "batch_size", "detector",
          "landmarks_model",
          "seed", "count", "steps", "write_docs", "repeats", "batches", "checkpoint")
_USED = {}  # shared flag name -> modules that take it
_SCRIPTS = set()  # modules that called use()


def use(*names):
    """Declares that the calling script takes these shared flags: they show
    in its --help, and only these may be given on its command line."""
    caller = sys._getframe(1).f_globals  # pylint: disable=protected-access
    module = _module_name(caller)
    # absl files the main module's key flags under sys.argv[0].
    help_module = sys.argv[0] if caller["__name__"] == "__main__" else module
    _SCRIPTS.add(module)
    for name in names:
        if name not in SHARED:
            raise ValueError(f"{name!r} is not a shared flag (experiments.common_flags.SHARED)")
        _USED.setdefault(name, set()).add(module)
        FLAGS.register_key_flag_for_module(help_module, FLAGS[name])


def _applies(name):
    """A validator refusing the shared flag `name` when given to a script
    that does not take it."""
    def check(_):
        if not FLAGS[name].present:
            return True
        running = _running_script()
        if running not in _SCRIPTS or running in _USED.get(name, ()):
            return True
        raise flags.ValidationError(f"--{name} does not apply to {running} (see its --help)")
    return check


for _name in SHARED:
    flags.register_validator(_name, _applies(_name))


def _module_name(module_globals):
    """A module's import name, also for the one run as `python -m name`."""
    spec = module_globals.get("__spec__")
    return spec.name if spec is not None else module_globals.get("__name__")


def _running_script():
    main = sys.modules.get("__main__")
    return None if main is None else _module_name(vars(main))


def value_or(name, default):
    """The flag's value, or `default` when it was left at None."""
    value = FLAGS[name].value
    return default if value is None else value


def parse(argv):
    """app.run's flags_parser: a flag error is one `error:` line and exit
    code 2 (a usage error), where absl's own parser exits with 1."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        message = " ".join(str(error).split())
        sys.stderr.write(f"error: {message}\nPass --help to see the flags.\n")
        sys.exit(2)
