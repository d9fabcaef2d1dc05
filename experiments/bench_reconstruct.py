"""Times `reconstruct --checkpoint` end to end per photo (detection or
landmark files, alignment, the network, decoding, writing every file),
start-up excluded, and writes the table to docs/PERFORMANCE.md.

    python -m experiments.bench_reconstruct [--write_docs]

It runs experiments.reconstruct once, as a user would, into a temporary
folder. The goal's number is the run's wall clock after start-up divided by
the photos (its summary line); the table beside it holds the busy seconds
of each part from the done.json records, by where the landmarks came from
(dlib on the picture, or a file beside it): the writing runs on its own
thread, overlapping the next photos' network, so the parts add up to more
than the wall clock. Defaults
here: --input is the demo photos of the data root (the astronaut, found by
dlib; 25 Deep3DFaceRecon examples with 5-point files; the 300-W image with
its 68 points); --checkpoint is the seeded parity checkpoint and, when
--face_model is not given, the face model is the synthetic MGCNet h5 of the
parity inputs (build/parity_inputs*, written by the tests: weights and bases
do not change the speed).
"""
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

from absl import app, flags

from experiments import common_flags, doc_blocks
from mgc import paths

FLAGS = flags.FLAGS
common_flags.use("input", "checkpoint", "face_model", "data_root", "write_docs")

PERFORMANCE_DOC = os.path.join(paths.REPO_ROOT, "docs", "PERFORMANCE.md")
PARITY_CHECKPOINT = os.path.join(paths.REPO_ROOT, "build", "parity_inputs_encoder", "ckpt",
                                 "model-400000")
PARITY_H5 = os.path.join(paths.REPO_ROOT, "build", "parity_inputs", "bfm09_synth_presplit.h5")
DEMO = ("astronaut_eileen_collins_public_domain.png", "deep3dfacerecon_examples_5pt",
        "eos_300W_image_0010_68pts")
GOAL_SECONDS = 0.25  # issue 11: per photo, default detector and landmarks


def _inputs():
    if FLAGS.input:
        return FLAGS.input
    folder = os.path.join(paths.data_root(FLAGS.data_root), "demo_images")
    return ",".join(os.path.join(folder, name) for name in DEMO)


def _run(output):
    face_model = FLAGS.face_model if FLAGS["face_model"].present else PARITY_H5
    checkpoint = common_flags.value_or("checkpoint", PARITY_CHECKPOINT)
    for path in (checkpoint + ".index", face_model):
        if not os.path.exists(path) and path.startswith(paths.REPO_ROOT):
            raise app.UsageError(f"{path} is missing: `make test` writes the parity inputs "
                                 "(or pass --checkpoint and --face_model)", exitcode=2)
    command = [sys.executable, "-m", "experiments.reconstruct", f"--input={_inputs()}",
               f"--output={output}", f"--checkpoint={checkpoint}", f"--face_model={face_model}"]
    done = subprocess.run(command, cwd=paths.REPO_ROOT, capture_output=True, text=True,
                          check=False)
    if done.returncode not in (0, 3):  # 3: some pictures failed, the rest are timed
        sys.exit(f"reconstruct failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def _wall_after_startup(stdout):
    """Seconds from the end of start-up to the end of the run."""
    found = re.search(r"Wall clock ([\d.]+) s \(([\d.]+) s of start-up", stdout)
    if not found:
        sys.exit(f"no wall clock in reconstruct's output:\n{stdout[-2000:]}")
    return float(found.group(1)) - float(found.group(2))


def _seconds_by_source(output):
    """landmark source -> list of per-picture seconds dicts."""
    found = collections.defaultdict(list)
    for name in sorted(os.listdir(output)):
        path = os.path.join(output, name, "done.json")
        if os.path.isfile(path):
            with open(path) as stream:
                record = json.load(stream)
            source = record["faces"][0]["landmark_source"] if record["faces"] else "none"
            found[source].append(record["seconds"])
    return found


def _table(found):
    lines = ["| landmarks | photos | preprocessing | network | writing | busy total per photo (s) |",
             "|---|---|---|---|---|---|"]
    for source, rows in sorted(found.items()) + [("all", sum(found.values(), []))]:
        mean = {key: sum(row[key] for row in rows) / len(rows)
                for key in ("preprocess", "fit", "write", "total")}
        lines.append(f"| {source} | {len(rows)} | {mean['preprocess']:.2f} | {mean['fit']:.2f} | "
                     f"{mean['write']:.2f} | {mean['total']:.2f} |")
    return lines


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}", exitcode=2)
    with tempfile.TemporaryDirectory() as folder:
        output = os.path.join(folder, "out")
        wall = _wall_after_startup(_run(output))
        found = _seconds_by_source(output)
    photos = sum(len(rows) for rows in found.values())
    text = "\n".join(_table(found) + [
        "", f"**{wall / photos:.2f} s per photo** of wall clock ({photos} photos in {wall:.1f} s), "
        f"start-up excluded, on {os.cpu_count()} CPU cores; network at batch 4, no refinement; "
        f"goal: under {GOAL_SECONDS} s per photo. The table: busy seconds per photo of each "
        "part (the writing overlaps the network)."])
    print(text)
    if FLAGS.write_docs:
        doc_blocks.replace_block(PERFORMANCE_DOC, "bench_reconstruct", text)


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
