"""Turns folders of three photos of one person into MGCNet training tuples
in the original layout (mgc.data.prepare).

    python -m experiments.prepare_tuples --input=people/ --output=data/real
    python -m experiments.prepare_tuples --input=people/ --output=data/real \\
        --list=people/tuples.txt --detector=cnn

--input (required): a folder whose sub-folders each hold three pictures of
one person; the target is the first in sorted order, then source 1 and 2.
Pictures directly in --input are not used. With --list=FILE the tuples are
the lines `target,source1,source2` of FILE instead (paths relative to
--input). A landmark file beside a picture (<stem>.pts, <stem>.txt,
detections/<stem>.txt) is used instead of detecting its face; a 5-point one
makes the tuple's flag 1 (mgc/data/prepare.py says why).
--output (required): the dataset folder: <subfolder>/<frame_id>.jpg,
_skin.jpg, _cam.txt, _source.json per tuple, train.txt of every done tuple
there, failures.csv of the sources that failed (source, reason).

A source that fails (not three pictures, an unreadable picture, no face) is
recorded in failures.csv and the run goes on. A tuple done by an earlier run
is skipped, so an interrupted run resumes; --overwrite redoes done tuples
and replaces files of the same names this tool did not write (otherwise such
a source fails), and rewrites a train.txt that lists tuples it did not make
(otherwise the run stops before any work).

Exit codes:
  0  every tuple is done (now or by an earlier run)
  3  some sources failed (listed in failures.csv), the others are done
  1  no tuple could be done (all failed)
  2  a usage or set-up error (bad flags, --input not a folder or without
     sub-folders, an unreadable --list, an --output that is a file or whose
     train.txt is not this tool's): nothing was prepared
"""
import sys

from absl import app, flags
from tqdm import tqdm

from experiments import common_flags
from mgc.data.prepare import PrepareSetupError, prepare_dataset

EXIT_DONE, EXIT_NONE_DONE, EXIT_SETUP, EXIT_SOME_FAILED = 0, 1, 2, 3

FLAGS = flags.FLAGS
common_flags.use("input", "output", "overwrite", "detector")
flags.DEFINE_string("list", None, "A list file of tuples, one `target,source1,source2` per "
                    "line, paths relative to --input (default: each sub-folder of --input).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}", exitcode=EXIT_SETUP)
    if not FLAGS.input or not FLAGS.output:
        print("error: --input and --output are required (a folder of three-picture folders, "
              "and the dataset folder to write)", file=sys.stderr)
        return EXIT_SETUP
    try:
        summary = prepare_dataset(
            FLAGS.input, FLAGS.output, list_file=FLAGS.list, detector=FLAGS.detector,
            overwrite=FLAGS.overwrite, wrap=_progress_bar,
            report=lambda label, reason: tqdm.write(f"failed: {label}: {reason}",
                                                    file=sys.stderr))
    except PrepareSetupError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_SETUP
    total = len(summary.done) + len(summary.skipped) + len(summary.failed)
    print(f"{total} source(s): {len(summary.done)} prepared, {len(summary.skipped)} already done "
          f"(skipped), {len(summary.failed)} failed"
          + (f" (reasons in {summary.failures_path})" if summary.failed else "")
          + f"; list: {summary.list_path}")
    if not summary.failed:
        return EXIT_DONE
    return EXIT_SOME_FAILED if summary.done or summary.skipped else EXIT_NONE_DONE


def _progress_bar(sources):
    return tqdm(sources, unit="tuple", file=sys.stderr, dynamic_ncols=True)


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
