"""Reconstructs the faces of pictures: meshes, coefficients, landmarks,
overlays and one index page.

    python -m experiments.reconstruct --input=photos/ --output=out/faces
    python -m experiments.reconstruct --input='a.jpg,b.png,shots/*.jpg' --output=out/faces \\
        --largest_face_only --steps=160 --batch_size=8

--input is a comma-separated list of files, folders (their pictures, not
recursive) and globs. Folders and globs keep files with a picture extension
(IMAGE_EXTENSIONS); files named one by one are always tried. Landmarks come
from a file beside the picture when there is one (<stem>.pts, <stem>.txt,
detections/<stem>.txt; --landmarks), else dlib finds every face.

Each picture gets a folder <output>/<stem>/ (stem = file name without its
extension; a second picture with the same stem gets <stem>_2, ...), laid out
as mgc/export/results.py describes: per face the OBJ, PLY, coefficients npz,
MGCNet's _cam/_lm2d/_lm3d text files, <stem>_lm68.txt (68 landmarks in the
photo's pixels), crop overlays and a multi-pose strip; per picture the
overlays pasted into the photo. <output>/index.html shows every picture
beside its results; <output>/failures.csv lists the pictures that failed
(unreadable, no face, ...) with the reason.

Resuming and overwriting:
  * <stem>/started.json (the source picture) is written first and
    <stem>/done.json (outputs, timings, settings) last, atomically. A picture
    whose done.json exists is skipped, so an interrupted run resumes where it
    stopped; --overwrite redoes it (and removes files of the old result that
    the new one does not have).
  * A folder with started.json but no done.json is an interrupted attempt:
    its files are replaced. A folder that is neither ours for this picture
    nor empty is never written into: the picture takes the next free stem.
  * failures.csv keeps failures of earlier runs; a picture that fails again
    gets its newest reason, one that succeeds leaves the list. index.html
    is rebuilt from every done.json in --output at the end of each run.

--steps sets the total number of optimisation steps, spread over the
fitting stages (pose, landmarks, appearance, joint) in the proportions of
FitSettings' defaults; left out, FitSettings() is used as is. Faces are fitted
--batch_size at a time, across pictures (faces with 68 and with 5 landmarks
in separate batches); a picture is written once all its faces are fitted.

The end of every run prints the counts and the seconds per picture and per
face (preprocessing, fitting, writing) and where to look.
"""
import time

_PROCESS_START = time.perf_counter()  # before the imports: TensorFlow's take seconds

import collections  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from typing import Dict, List, Optional  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from tqdm import tqdm  # noqa: E402

from mgc import preprocess  # noqa: E402
from mgc.export import index_page, results  # noqa: E402
from mgc.facemodel import load_face_model  # noqa: E402
from mgc.fitting import FitSettings, fit_faces  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("input", None, "Comma-separated pictures, folders (not recursive) and globs.")
flags.DEFINE_string("output", "out/reconstruct", "Folder for the results (created if missing).")
flags.DEFINE_string("face_model", "ict", "Face model: a built-in name (ict = ICT-FaceKit, "
                    "surrey, bfm_mean) or a face-model file.")
flags.DEFINE_string("data_root", None, "Data root (default: $MGC_DATA or ../shared/data).")
flags.DEFINE_string("checkpoint", None, "MGCNet network checkpoint (not available yet: the "
                    "faces are fitted by analysis-by-synthesis).")
flags.DEFINE_enum("detector", "hog", list(preprocess.pipeline.DETECTORS),
                  "Face detector: hog (when it finds nothing, the cnn box, or a weak "
                  "hog box the cnn confirms) or cnn.")
flags.DEFINE_enum("landmarks", "auto", list(preprocess.pipeline.LANDMARK_MODES),
                  "auto: a landmark file beside the picture if any, else detect; "
                  "detect: always detect; files: require a landmark file.")
flags.DEFINE_bool("largest_face_only", False, "Reconstruct only the largest face of a picture.")
flags.DEFINE_bool("mirror_average", True, "Average dlib's landmarks with its landmarks of the "
                  "mirror image (closer to the truth on every tested set; docs/RESULTS.md).")
flags.DEFINE_integer("steps", None, "Total optimisation steps per face, spread over the "
                     "fitting stages in the proportions of FitSettings' defaults (default: "
                     "FitSettings() as is).", lower_bound=0)
flags.DEFINE_integer("batch_size", 4, "Faces fitted together.", lower_bound=1)
flags.DEFINE_bool("overwrite", False, "Redo pictures that are already done, replacing their files.")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm",
                    ".pgm")
DONE, STARTED, FAILURES = "done.json", "started.json", "failures.csv"
_STAGES = ("pose_steps", "landmark_steps", "appearance_steps", "joint_steps")


# --- Inputs and settings ------------------------------------------------------

def _is_picture(path):
    return os.path.isfile(path) and path.lower().endswith(IMAGE_EXTENSIONS)


def collect_inputs(items):
    """Absolute paths of the pictures named by files, folders and globs, in
    the given order (folders and globs sorted), each once."""
    paths = []
    for item in items:
        item = os.path.expanduser(item.strip())
        if not item:
            continue
        if glob.has_magic(item):
            found = [p for p in sorted(glob.glob(item)) if _is_picture(p)]
            if not found:
                print(f"warning: no pictures match {item}", file=sys.stderr)
            paths += found
        elif os.path.isdir(item):
            paths += [p for p in (os.path.join(item, n) for n in sorted(os.listdir(item)))
                      if _is_picture(p)]
        else:
            paths.append(item)  # tried even when missing: the failure is reported
    unique = collections.OrderedDict((os.path.realpath(p), os.path.abspath(p)) for p in paths)
    return list(unique.values())


def fit_settings(total_steps=None):
    """FitSettings with `total_steps` spread over the stages as the defaults
    are (largest remainders, so the counts add up exactly); None: defaults."""
    defaults = FitSettings()
    if total_steps is None:
        return defaults
    weights = np.array([getattr(defaults, stage) for stage in _STAGES], np.float64)
    exact = weights * total_steps / weights.sum()
    counts = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - counts))[:total_steps - counts.sum()]:
        counts[index] += 1
    return dataclasses.replace(defaults, **dict(zip(_STAGES, (int(c) for c in counts))))


def total_steps(settings):
    return sum(getattr(settings, stage) for stage in _STAGES)


# --- The output folder: markers, stems, failures ------------------------------

def read_json(path):
    """A JSON file's dict, or None when missing or unreadable (half-written)."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def write_json(path, data):
    """Writes JSON through a temporary file and os.replace, so the file is
    either absent or complete."""
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8", newline="\n") as stream:
        json.dump(data, stream, indent=1)
    os.replace(temporary, path)


def _folder_owner(folder):
    """The source picture recorded in a result folder, "" for an empty or
    missing folder, None for a folder holding files not written by us."""
    if not os.path.isdir(folder) or not os.listdir(folder):
        return ""
    for marker in (DONE, STARTED):
        data = read_json(os.path.join(folder, marker))
        if data and data.get("source"):
            return os.path.realpath(data["source"])
    return None


def assign_stems(paths, output_dir):
    """A result-folder name per picture: its stem, or stem_2, stem_3, ...
    when the stem is taken by another picture of this run or by a folder
    that belongs to another picture (or to no picture of ours)."""
    used, stems = set(), []
    for path in paths:
        base = os.path.splitext(os.path.basename(path))[0] or "image"
        source = os.path.realpath(path)
        for number in range(1, len(paths) + 10000):
            candidate = base if number == 1 else f"{base}_{number}"
            owner = _folder_owner(os.path.join(output_dir, candidate))
            if candidate not in used and owner in ("", source):
                break
        used.add(candidate)
        stems.append(candidate)
    return stems


class FailureList:
    """failures.csv (columns image, reason): earlier runs' rows are kept, a
    picture appears once with its newest reason, successes are removed."""

    def __init__(self, path):
        self.path = path
        self.rows = collections.OrderedDict()
        if os.path.exists(path):
            with open(path, newline="", encoding="utf-8") as stream:
                for row in csv.DictReader(stream):
                    if row.get("image"):
                        self.rows[row["image"]] = row.get("reason") or ""

    def add(self, image, reason):
        self.rows.pop(image, None)
        self.rows[image] = reason

    def remove(self, image):
        self.rows.pop(image, None)

    def save(self):
        if not self.rows and not os.path.exists(self.path):
            return
        temporary = self.path + ".tmp"
        with open(temporary, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(["image", "reason"])
            writer.writerows(self.rows.items())
        os.replace(temporary, self.path)


def done_records(output_dir):
    """Every finished picture's record in output_dir, sorted by folder."""
    records = []
    for name in sorted(os.listdir(output_dir)):
        record = read_json(os.path.join(output_dir, name, DONE))
        if record:
            records.append(dict(record, folder=name))
    return records


# --- One run ------------------------------------------------------------------

@dataclasses.dataclass
class Job:
    """A picture on its way through the run."""
    path: str
    stem: str
    folder: str
    replace: bool                      # files in folder may be replaced
    old_record: Optional[dict] = None  # the done.json being redone (--overwrite)
    image: Optional[np.ndarray] = None
    faces: List = dataclasses.field(default_factory=list)
    fits: Dict = dataclasses.field(default_factory=dict)          # face -> (FitResult, b)
    fit_seconds: Dict = dataclasses.field(default_factory=dict)   # face -> seconds
    preprocess_seconds: float = 0.0
    error: Optional[str] = None


def failure_reason(error):
    """A one-line reason for failures.csv."""
    if isinstance(error, preprocess.ImageError):
        kind = "unreadable"
    elif isinstance(error, preprocess.NoFaceError):
        kind = "no face"
    elif isinstance(error, (preprocess.LandmarkFileError, FileNotFoundError)):
        kind = "landmarks"
    else:
        kind = f"error ({type(error).__name__})"
    return f"{kind}: " + " ".join(str(error).split())


class Reconstruction:
    """The loop over the pictures: preparing, fitting in batches, writing,
    and the counts and timings of the run."""

    def __init__(self, output_dir, model, settings, options):
        self.output_dir, self.model, self.settings = output_dir, model, settings
        self.options = options
        self.failures = FailureList(os.path.join(output_dir, FAILURES))
        self.counts = collections.Counter()
        self.seconds = collections.Counter()
        self.pending = []  # prepared jobs whose faces are not all fitted yet
        self.queues = collections.defaultdict(list)  # landmark count -> (job, face, PreparedFace)
        self.bar = None

    def run(self, paths):
        stems = assign_stems(paths, self.output_dir)
        with tqdm(total=len(paths), unit="image", file=sys.stderr, dynamic_ncols=True) as bar:
            self.bar = bar
            for path, stem in zip(paths, stems):
                job = self._start(path, stem)
                if job is not None:
                    self._queue(job)
                    self._finish_ready()
            for kind in list(self.queues):
                self._fit(kind)
            self._finish_ready()

    def _advance(self):
        self.bar.set_postfix(faces=self.counts["faces"], failed=self.counts["failed"])
        self.bar.update(1)

    def _fail(self, path, reason):
        self.failures.add(path, reason)
        self.counts["failed"] += 1
        tqdm.write(f"failed: {path}: {reason}", file=sys.stderr)
        self._advance()

    def _start(self, path, stem):
        """A Job with the picture's faces prepared, or None when the picture
        is skipped (already done) or failed."""
        folder = os.path.join(self.output_dir, stem)
        old = read_json(os.path.join(folder, DONE))
        if old and not self.options["overwrite"]:
            self.failures.remove(path)
            self.counts["skipped"] += 1
            self._advance()
            return None
        # The folder is ours (assign_stems): files in it are an interrupted attempt's.
        leftovers = os.path.isdir(folder) and bool(os.listdir(folder))
        job = Job(path, stem, folder, replace=self.options["overwrite"] or leftovers,
                  old_record=old)
        start = time.perf_counter()
        try:
            job.image = preprocess.load_image(path)
            job.faces = preprocess.prepare_faces(
                job.image, path, landmarks=self.options["landmarks"],
                detector=self.options["detector"],
                largest_face_only=self.options["largest_face_only"],
                mirror_average=self.options["mirror_average"])
        except Exception as error:  # pylint: disable=broad-except
            # Every preparation error fails this picture only; the run goes on.
            if not isinstance(error, (ValueError, OSError)):
                traceback.print_exc()
            self._fail(path, failure_reason(error))
            return None
        job.preprocess_seconds = time.perf_counter() - start
        return job

    def _queue(self, job):
        """Queues the job's faces by landmark count (68 or 5 points cannot
        share a batch); a full queue is fitted at once. Full batches keep
        one batch shape, whose compiled steps the fitter reuses."""
        self.pending.append(job)
        for index, face in enumerate(job.faces):
            kind = len(results.fit_target_landmarks(face))
            self.queues[kind].append((job, index, face))
            if len(self.queues[kind]) == self.options["batch_size"]:
                self._fit(kind)

    def _fit(self, kind):
        entries, self.queues[kind] = self.queues[kind], []
        entries = [entry for entry in entries if entry[0].error is None]
        if not entries:
            return
        crops = np.stack([face.crop for _, _, face in entries])
        targets = np.stack([results.fit_target_landmarks(face) for _, _, face in entries])
        start = time.perf_counter()
        try:
            fit = fit_faces(crops, targets, self.model, self.settings)
        except Exception as error:  # pylint: disable=broad-except
            traceback.print_exc()
            for job, _, _ in entries:
                job.error = "fitting failed: " + " ".join(str(error).split())
            return
        share = (time.perf_counter() - start) / len(entries)
        for b, (job, index, _) in enumerate(entries):
            job.fits[index] = (fit, b)
            job.fit_seconds[index] = share

    def _finish_ready(self):
        """Writes (or fails) the pictures whose faces are all fitted."""
        waiting = []
        for job in self.pending:
            if job.error or len(job.fits) == len(job.faces):
                self._finish(job)
            else:
                waiting.append(job)
        self.pending = waiting

    def _finish(self, job):
        if job.error:
            self._fail(job.path, job.error)
            return
        start = time.perf_counter()
        try:
            record = self._write(job)
        except Exception as error:  # pylint: disable=broad-except
            traceback.print_exc()
            self._fail(job.path, "writing failed: " + " ".join(str(error).split()))
            return
        write_seconds = time.perf_counter() - start
        fit_seconds = sum(job.fit_seconds.values())
        record["seconds"] = dict(preprocess=job.preprocess_seconds, fit=fit_seconds,
                                 write=write_seconds,
                                 total=job.preprocess_seconds + fit_seconds + write_seconds)
        write_json(os.path.join(job.folder, DONE), record)  # last: marks the picture done
        self._remove_stale(job, record)
        self.failures.remove(job.path)
        self.counts["done"] += 1
        self.counts["faces"] += len(job.faces)
        self.seconds.update(record["seconds"])
        self._advance()

    def _write(self, job):
        """Writes every file of a picture; returns its record (without timings)."""
        os.makedirs(job.folder, exist_ok=True)
        if job.old_record is not None:
            os.remove(os.path.join(job.folder, DONE))  # unfinished until rewritten
        write_json(os.path.join(job.folder, STARTED), dict(source=job.path))
        faces, face_records = [], []
        for index, face in enumerate(job.faces):
            fit, b = job.fits[index]
            outputs = results.write_face_results(
                job.folder, job.stem, index, face, fit, b, self.model,
                face_model_name=self.options["face_model"], overwrite=job.replace)
            faces.append(outputs)
            face_records.append(dict(
                index=index, files=outputs.files, landmark_error=outputs.landmark_error,
                landmark_source=face.landmark_source,
                landmark_count=len(results.fit_target_landmarks(face)),
                landmark_file=face.landmark_file,
                box=None if face.box is None else [face.box.left, face.box.top, face.box.right,
                                                   face.box.bottom, face.box.score],
                fit_seconds=job.fit_seconds[index]))
        files = results.write_image_results(job.folder, job.stem, job.image, faces,
                                            overwrite=job.replace)
        return dict(source=job.path, stem=job.stem,
                    image_size=[int(job.image.shape[1]), int(job.image.shape[0])],
                    files=files, faces=face_records,
                    settings=dict(face_model=self.options["face_model"],
                                  steps=total_steps(self.settings),
                                  batch_size=self.options["batch_size"],
                                  detector=self.options["detector"],
                                  landmarks=self.options["landmarks"],
                                  largest_face_only=self.options["largest_face_only"],
                                  mirror_average=self.options["mirror_average"]),
                    finished=datetime.datetime.now().isoformat(timespec="seconds"))

    def _remove_stale(self, job, record):
        """Removes files of a redone picture's old result that the new one lacks."""
        if job.old_record is None:
            return
        keep = set(_record_files(record))
        for name in set(_record_files(job.old_record)) - keep:
            path = os.path.join(job.folder, name)
            if os.path.basename(name) == name and os.path.isfile(path):
                os.remove(path)


def _record_files(record):
    names = list(record.get("files", {}).values())
    for face in record.get("faces", []):
        names += list(face.get("files", {}).values())
    return names


# --- Reporting ----------------------------------------------------------------

def summary_lines(reconstruction, total_inputs, wall_seconds, startup_seconds):
    """The end-of-run report (counts and timings)."""
    counts, seconds = reconstruction.counts, reconstruction.seconds
    faces = counts["faces"]
    lines = [f"{total_inputs} picture(s): {counts['done']} reconstructed, {counts['skipped']} "
             f"already done (skipped), {counts['failed']} failed"
             + (f" (reasons in {reconstruction.failures.path})" if counts["failed"] else "")
             + f"; {faces} face(s) reconstructed."]
    if faces:
        per_face = {key: seconds[key] / faces for key in ("preprocess", "fit", "write", "total")}
        lines.append(
            f"Seconds per face on {os.cpu_count()} CPU core(s): {per_face['total']:.1f} "
            f"(preprocessing {per_face['preprocess']:.1f}, fitting {per_face['fit']:.1f}, "
            f"writing {per_face['write']:.1f}); per picture "
            f"{seconds['total'] / counts['done']:.1f}; "
            f"{total_steps(reconstruction.settings)} steps, batch size "
            f"{reconstruction.options['batch_size']}.")
    lines.append(f"Wall clock {wall_seconds:.1f} s ({startup_seconds:.1f} s of start-up: "
                 "TensorFlow, face model).")
    return lines


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.checkpoint:
        print(f"error: --checkpoint={FLAGS.checkpoint}: the MGCNet network is not available "
              "yet; leave --checkpoint out to fit the faces by analysis-by-synthesis.",
              file=sys.stderr)
        return 2
    if not FLAGS.input:
        print("error: --input is required (pictures, folders or globs, comma-separated).",
              file=sys.stderr)
        return 2
    paths = collect_inputs(FLAGS.input)
    if not paths:
        print(f"error: no pictures found in --input={','.join(FLAGS.input)}", file=sys.stderr)
        return 2
    os.makedirs(FLAGS.output, exist_ok=True)
    model = load_face_model(FLAGS.face_model, data_root=FLAGS.data_root)
    options = dict(batch_size=FLAGS.batch_size, detector=FLAGS.detector,
                   landmarks=FLAGS.landmarks, largest_face_only=FLAGS.largest_face_only,
                   mirror_average=FLAGS.mirror_average, overwrite=FLAGS.overwrite,
                   face_model=FLAGS.face_model)
    reconstruction = Reconstruction(FLAGS.output, model, fit_settings(FLAGS.steps), options)
    startup = time.perf_counter() - _PROCESS_START
    try:
        reconstruction.run(paths)
    except KeyboardInterrupt:
        _write_summaries(reconstruction, "")
        print("Interrupted: run the same command again to resume.")
        return 130
    lines = summary_lines(reconstruction, len(paths), time.perf_counter() - _PROCESS_START,
                          startup)
    index_path = _write_summaries(reconstruction, " ".join(lines))
    print("\n".join(lines + [f"Results: {index_path}"]))
    return 0


def _write_summaries(reconstruction, summary):
    """failures.csv and index.html; returns the index's path."""
    reconstruction.failures.save()
    output = reconstruction.output_dir
    return index_page.write_index(output, done_records(output),
                                  list(reconstruction.failures.rows.items()),
                                  summary=f"Last run: {summary}" if summary else "")


if __name__ == "__main__":
    app.run(main)
