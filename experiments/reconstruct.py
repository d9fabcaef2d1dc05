"""Reconstructs the faces of pictures: meshes, coefficients, landmarks,
overlays and one index page.

    python -m experiments.reconstruct --input=photos/ --output=out/faces
    python -m experiments.reconstruct --input='a.jpg,b.png,shots/*.jpg' --output=out/faces \\
        --largest_face_only --steps=160 --batch_size=8
    python -m experiments.reconstruct --input=@pictures.txt --output=out/faces
    python -m experiments.reconstruct --input=photos/ --output=out/net \\
        --checkpoint=ckpt/model-400000 --face_model=bfm09_trim_exp_uv_presplit.h5

--input is a comma-separated list of files, folders (their pictures, not
recursive) and globs, or @FILE: a list file with one path per line (commas
and glob characters are literal there, relative paths are relative to the
list file). A path that exists is always taken literally (face[1].jpg is that
file, not a glob). Folders and globs keep entries with a picture extension
(mgc.preprocess.inputs.IMAGE_EXTENSIONS); files named one by one are always
tried. Landmarks come from a file beside the picture when there is one
(<stem>.pts, <stem>.txt, detections/<stem>.txt; --landmarks), else every face
is found (--detector) and its landmarks predicted (--landmarks_model):
MediaPipe's 468-point face mesh (mesh, the default: `make build` fetches
its model files), whose points the fit then follows, each at its vertex of
the face model, or dlib's 68 points (dlib). Defaults of the shared flags
here: --output=out/reconstruct, --batch_size=4, --landmarks_model=mesh,
--detector=auto (the backend's own: for the mesh BlazeFace, which finds
profiles, with dlib's detectors where it finds nothing), --steps: 140 with
the mesh (DEFAULT_STEPS), FitSettings() as is (560) with dlib.

Each picture gets a folder <output>/<stem>/ (stem = file name without its
extension; a second picture with the same stem gets <stem>_2, ...), laid out
as mgc/export/results.py describes: per face the OBJ, PLY, coefficients npz,
MGCNet's _cam/_lm2d/_lm3d text files, <stem>_lm68.txt (68 landmarks in the
photo's pixels), the depth map (16-bit PNG in mm and a coloured preview),
crop overlays and a multi-pose strip; per picture the
overlays pasted into the photo. <output>/index.html shows every picture
beside its results; <output>/failures.csv lists the pictures that failed
(unreadable, no face, ...) with the reason.

One run at a time per --output: a run holds <output>/reconstruct.lock, and a
second run into the same folder stops at once, naming the lock and the pid
of the run that holds it.

Resuming and overwriting (mgc/export/run_folder.py):
  * <stem>/started.json (the source picture) is written first and
    <stem>/done.json (outputs, timings, settings, the size and SHA-256 of the
    picture and of its landmark files) last, atomically. A picture whose
    done.json matches this run is skipped, so an interrupted run resumes
    where it stopped. When a done picture was made with other settings
    (--face_model, --checkpoint, --steps, --refine_steps, --detector,
    --landmarks, --landmarks_model, --largest_face_only, --mirror_average) or its
    picture or landmark file has changed since, the
    run stops before any work and names the flag or the file; --overwrite
    redoes such pictures (and every other done one), removing files of the
    old result that the new one does not have. A redo that fails withdraws
    the old result (its done.json), so a picture is never both done and
    failed.
  * A folder with started.json but no done.json is an interrupted attempt:
    its files are replaced. A folder that is neither ours for this picture
    nor empty is never written into: the picture takes the next free stem.
  * failures.csv keeps failures of earlier runs; a picture that fails again
    gets its newest reason, one that succeeds leaves the list; it is saved
    after every change. index.html is rebuilt from every done.json in
    --output at the end of each run. An index.html or failures.csv that this
    project did not write is never replaced without --overwrite.

The faces are fitted by analysis-by-synthesis (mgc.fitting), or with
--checkpoint=PREFIX predicted by MGCNet's network (mgc.nets.load_encoder: an
original TF1 checkpoint, or one this project's training writes), --batch_size
crops at a time, decoded with --face_model, which must have MGCNet's 257
coefficients (its h5, or a model converted with that layout);
--refine_steps=N then continues with the fitter from the network's answer.
Both paths write the same files.

--steps sets the total number of optimisation steps, spread over the
fitting stages (pose, landmarks, appearance, joint) in the proportions of
FitSettings' defaults. Faces are fitted --batch_size at a time, across
pictures (faces with 68 and with 5 landmarks in separate batches); a picture
is written once all its faces are fitted.

The end of every run prints the counts and the seconds per picture and per
face (preprocessing, fitting, writing) and where to look.

Exit codes:
  0  every picture is done (now or by an earlier run)
  3  some pictures failed (listed in failures.csv), the others are done
  1  no picture could be done (all failed)
  2  a usage or set-up error (bad flags, no inputs, a face model, a
     checkpoint or an output folder that cannot be used, a locked folder,
     done pictures that no longer match): nothing was reconstructed
  130  interrupted (run the same command again to resume)
"""
import time

_PROCESS_START = time.perf_counter()  # before the imports: TensorFlow's take seconds

import collections  # noqa: E402
import concurrent.futures  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
from typing import Dict, List, Optional  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from tqdm import tqdm  # noqa: E402

from experiments import common_flags  # noqa: E402
from mgc import preprocess  # noqa: E402
from mgc.export import index_page, overlays, results, run_folder  # noqa: E402
from mgc.export.run_folder import DONE, FAILURES, STARTED, RunFolderError  # noqa: E402
from mgc.job_files import FailureList, read_json, write_json  # noqa: E402
from mgc.facemodel import MGCNET_LAYOUT, CoefficientLayout, FaceModelError, load_face_model  # noqa: E402,E501
from mgc.facemodel.files import one_line  # noqa: E402
from mgc.fitting import (FitSettings, check_model_landmarks, fit_faces,  # noqa: E402
                         trace_answer)
from mgc.nets import CheckpointError, load_encoder  # noqa: E402
from mgc.nets.encoder import images_to_unit  # noqa: E402
from mgc.preprocess.inputs import InputError, collect_pictures  # noqa: E402

FLAGS = flags.FLAGS
common_flags.use("input", "output", "overwrite", "data_root", "face_model", "batch_size",
                 "detector", "steps", "checkpoint", "landmarks_model")
flags.DEFINE_integer("refine_steps", 0, "With --checkpoint: fitting steps after the network, "
                     "started from its coefficients and spread over the stages as --steps "
                     "is (0: the network's answer as is).", lower_bound=0)
flags.DEFINE_enum("landmarks", "auto", list(preprocess.pipeline.LANDMARK_MODES),
                  "auto: a landmark file beside the picture if any, else detect; "
                  "detect: always detect; files: require a landmark file.")
flags.DEFINE_bool("largest_face_only", False, "Reconstruct only the largest face of a picture.")
flags.DEFINE_bool("mirror_average", True, "Average the landmarks (dlib's or the face mesh's) with "
                  "those of the mirror image (closer to the truth on every tested set; "
                  "docs/RESULTS.md).")

DEFAULT_OUTPUT = "out/reconstruct"
DEFAULT_BATCH_SIZE = 4
# The mesh: on AFLW2000-3D it beats dlib's fit in every yaw bin (docs/RESULTS.md).
DEFAULT_LANDMARKS_MODEL = "mesh"
# Fitting steps without --steps, per backend (None: FitSettings() as is, 560).
# The mesh's fit scores the same at 140 steps as at 560 on AFLW2000-3D, at a
# fifth of the time (docs/PERFORMANCE.md).
DEFAULT_STEPS = {"mesh": 140, "dlib": None}
# The settings that shape a picture's results: a done picture is kept only
# when they are unchanged. Each is set by the flag of the same name.
SHAPING_SETTINGS = ("face_model", "checkpoint", "steps", "refine_steps", "detector", "landmarks",
                    "landmarks_model", "largest_face_only", "mirror_average")
EXIT_DONE, EXIT_NONE_DONE, EXIT_SETUP, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class SetupError(Exception):
    """The run cannot start; the message says why (exit code 2)."""


def fit_settings(total_steps=None):
    """FitSettings with `total_steps` spread over the stages; None: defaults."""
    return FitSettings().with_total_steps(total_steps)


# --- One run ------------------------------------------------------------------

@dataclasses.dataclass
class Job:
    """A picture on its way through the run."""
    path: str
    stem: str
    folder: str
    replace: bool                      # files in folder may be replaced
    old_record: Optional[dict] = None  # the done.json being redone (--overwrite)
    source_file: Optional[dict] = None  # the picture's run_folder.fingerprint
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
    return f"{kind}: " + one_line(error)


class Reconstruction:
    """The loop over the pictures: preparing, fitting in batches, writing,
    and the counts and timings of the run.

    A picture's files are written by one writer thread while the main thread
    prepares and fits the next pictures (file formatting and encoding
    overlap with TensorFlow's work). Everything that ends a picture (done,
    failed, skipped) runs on that thread, in order: it alone touches the
    counts, failures.csv and the progress bar."""

    # Pictures handed to the writer and not yet written, at most: bounds the
    # memory when writing is slower than fitting.
    WRITE_QUEUE = 8

    def __init__(self, output_dir, model, settings, options, encoder=None):
        self.output_dir, self.model, self.settings = output_dir, model, settings
        self.options, self.encoder = options, encoder
        self.failures = FailureList(os.path.join(output_dir, FAILURES))
        self.counts = collections.Counter()
        self.seconds = collections.Counter()
        self.pending = []  # prepared jobs whose faces are not all fitted yet
        self.queues = collections.defaultdict(list)  # landmark count -> (job, face, PreparedFace)
        self.bar = None
        self.writer = None
        self.write_slots = threading.BoundedSemaphore(self.WRITE_QUEUE)
        self.handed = []  # futures of the writer's tasks
        self.full_batch_kinds = set()  # landmark counts fitted in a full batch

    def run(self, paths, stems):
        """Reconstructs the pictures. On an exception (Ctrl-C too) the
        pictures handed to the writer and not started are dropped, the one
        being written is finished, and the exception goes on."""
        writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="writer")
        with tqdm(total=len(paths), unit="image", file=sys.stderr, dynamic_ncols=True) as bar:
            self.bar, self.writer = bar, writer
            try:
                for path, stem in zip(paths, stems):
                    job = self._start(path, stem)
                    if job is not None:
                        self._queue(job)
                        self._finish_ready()
                for kind in list(self.queues):
                    self._fit(kind)
                self._finish_ready()
            except BaseException:
                writer.shutdown(wait=True, cancel_futures=True)
                raise
            writer.shutdown(wait=True)
            self._raise_writer_error()

    def _later(self, task, *args):
        """Runs task(*args) on the writer thread, after the tasks before it."""
        self._raise_writer_error()
        self.write_slots.acquire()

        def run():
            try:
                task(*args)
            finally:
                self.write_slots.release()
        self.handed.append(self.writer.submit(run))

    def _raise_writer_error(self):
        """Re-raises, on the main thread, an error the writer did not handle."""
        running = []
        for future in self.handed:
            if future.done():
                future.result()
            else:
                running.append(future)
        self.handed = running

    def _advance(self):
        self.bar.set_postfix(faces=self.counts["faces"], failed=self.counts["failed"])
        self.bar.update(1)

    def _fail(self, job, reason):
        if job.old_record is not None:
            # A failed redo withdraws the old result: never both done and failed.
            _remove_if_present(os.path.join(job.folder, DONE))
        self.failures.add(job.path, reason)
        self.counts["failed"] += 1
        tqdm.write(f"failed: {job.path}: {reason}", file=sys.stderr)
        self._advance()

    def _start(self, path, stem):
        """A Job with the picture's faces prepared, or None when the picture
        is skipped (already done) or failed."""
        folder = os.path.join(self.output_dir, stem)
        old = read_json(os.path.join(folder, DONE))
        if old and not self.options["overwrite"]:
            self._later(self._skip, path)
            return None
        # The folder is ours (assign_stems): files in it are an interrupted attempt's.
        leftovers = os.path.isdir(folder) and bool(os.listdir(folder))
        job = Job(path, stem, folder, replace=self.options["overwrite"] or leftovers,
                  old_record=old)
        start = time.perf_counter()
        try:
            job.image = preprocess.load_image(path)
            job.source_file = run_folder.fingerprint(path)
            job.faces = preprocess.prepare_faces(
                job.image, path, landmarks=self.options["landmarks"],
                detector=self.options["detector"],
                largest_face_only=self.options["largest_face_only"],
                mirror_average=self.options["mirror_average"],
                landmarks_model=self.options["landmarks_model"])
        except Exception as error:  # pylint: disable=broad-except
            # Every preparation error fails this picture only; the run goes on.
            if not isinstance(error, (ValueError, OSError)):
                traceback.print_exc()
            self._later(self._fail, job, failure_reason(error))
            return None
        job.preprocess_seconds = time.perf_counter() - start
        return job

    def _queue(self, job):
        """Queues the job's faces by landmark count (68 or 5 points cannot
        share a batch); a full queue is fitted at once. Full batches keep
        one batch shape, whose compiled steps the fitter reuses."""
        self.pending.append(job)
        for index, face in enumerate(job.faces):
            kind = (len(results.fit_target_landmarks(face)), face.crop_mesh_points is not None)
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
        crops, targets = self._padded(kind, crops), self._padded(kind, targets)
        mesh = None
        if kind[1]:  # the face mesh's points, where the faces have them
            mesh = self._padded(kind, np.stack([face.crop_mesh_points for _, _, face in entries]))
        start = time.perf_counter()
        try:
            initial = None if self.encoder is None else self.encoder(images_to_unit(crops))
            fit = fit_faces(crops, targets, self.model, self.settings, initial_coefficients=initial,
                            mesh_points=mesh)
        except Exception as error:  # pylint: disable=broad-except
            traceback.print_exc()
            for job, _, _ in entries:
                job.error = "fitting failed: " + one_line(error)
            return
        share = (time.perf_counter() - start) / len(entries)
        for b, (job, index, _) in enumerate(entries):
            job.fits[index] = (fit, b)
            job.fit_seconds[index] = share

    def _padded(self, kind, batch):
        """A short batch padded with copies of its last face when a full
        batch of this kind was fitted before: the fitter's compiled steps for
        that shape serve it (a new shape is compiled again, seconds). Only the
        real faces are written."""
        size = self.options["batch_size"]
        if len(batch) == size:
            self.full_batch_kinds.add(kind)
        if len(batch) == size or kind not in self.full_batch_kinds:
            return batch
        return np.concatenate([batch, np.repeat(batch[-1:], size - len(batch), axis=0)])

    def _finish_ready(self):
        """Writes (or fails) the pictures whose faces are all fitted."""
        waiting = []
        for job in self.pending:
            if job.error or len(job.fits) == len(job.faces):
                self._later(self._finish, job)
            else:
                waiting.append(job)
        self.pending = waiting

    def _skip(self, path):
        self.failures.remove(path)
        self.counts["skipped"] += 1
        self._advance()

    def _finish(self, job):
        """Writes a picture's files and its done.json (on the writer thread)."""
        if job.error:
            self._fail(job, job.error)
            return
        start = time.perf_counter()
        try:
            record = self._write(job)
        except Exception as error:  # pylint: disable=broad-except
            traceback.print_exc()
            self._fail(job, "writing failed: " + one_line(error))
            return
        write_seconds = time.perf_counter() - start
        fit_seconds = sum(job.fit_seconds.values())
        record["seconds"] = dict(preprocess=job.preprocess_seconds, fit=fit_seconds,
                                 write=write_seconds,
                                 total=job.preprocess_seconds + fit_seconds + write_seconds)
        write_json(os.path.join(job.folder, DONE), record)  # last: marks it done
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
                mesh_points=face.crop_mesh_points is not None,
                mesh_failure=face.mesh_failure,
                landmark_file=face.landmark_file,
                landmark_fingerprint=(run_folder.fingerprint(face.landmark_file)
                                      if face.landmark_file else None),
                box=None if face.box is None else [face.box.left, face.box.top, face.box.right,
                                                   face.box.bottom, face.box.score],
                fit_seconds=job.fit_seconds[index]))
        files = results.write_image_results(job.folder, job.stem, job.image, faces,
                                            overwrite=job.replace)
        return dict(source=job.path, source_file=job.source_file, stem=job.stem,
                    image_size=[int(job.image.shape[1]), int(job.image.shape[0])],
                    files=files, faces=face_records,
                    settings=dict(shaping_settings(self.options, self.settings),
                                  batch_size=self.options["batch_size"]),
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


def _remove_if_present(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def shaping_settings(options, settings):
    """This run's SHAPING_SETTINGS, as recorded in done.json."""
    network = options["checkpoint"] is not None
    values = dict(options, steps=None if network else settings.total_steps,
                  refine_steps=settings.total_steps if network else None)
    return {name: values[name] for name in SHAPING_SETTINGS}


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
    total = reconstruction.settings.total_steps
    method, steps = ("fitting", f"{total} steps") if reconstruction.encoder is None else (
        "network and refinement", f"network, {total} refinement steps")
    lines = [f"{total_inputs} picture(s): {counts['done']} reconstructed, {counts['skipped']} "
             f"already done (skipped), {counts['failed']} failed"
             + (f" (reasons in {reconstruction.failures.path})" if counts["failed"] else "")
             + f"; {faces} face(s) reconstructed."]
    if faces:
        busy = {key: seconds[key] / faces for key in ("preprocess", "fit", "write")}
        lines.append(
            f"Seconds per face on {os.cpu_count()} CPU core(s): "
            f"{(wall_seconds - startup_seconds) / faces:.2f} of wall clock, start-up excluded "
            f"(busy: preprocessing {busy['preprocess']:.2f}, {method} {busy['fit']:.2f}, "
            f"writing {busy['write']:.2f}, the writing overlapping the next faces' work); "
            f"{steps}, batch size {reconstruction.options['batch_size']}.")
    lines.append(f"Wall clock {wall_seconds:.1f} s ({startup_seconds:.1f} s of start-up: "
                 "TensorFlow, face model).")
    return lines


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}", exitcode=EXIT_SETUP)
    try:
        return _run()
    except (SetupError, RunFolderError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SETUP


def _run():
    """The run after flag parsing; raises SetupError before any work."""
    if FLAGS.checkpoint and FLAGS.steps is not None:
        raise SetupError("--steps sets the fit's steps; with --checkpoint use --refine_steps")
    if FLAGS.refine_steps and not FLAGS.checkpoint:
        raise SetupError("--refine_steps refines a network's answer: it needs --checkpoint")
    if not FLAGS.input:
        raise SetupError("--input is required (pictures, folders, globs, comma-separated, "
                         "or @FILE with one path per line).")
    paths = collect_pictures(FLAGS.input)
    if not paths:
        raise SetupError(f"no pictures found in --input={FLAGS.input}")
    output = common_flags.value_or("output", DEFAULT_OUTPUT)
    run_folder.check_output_path(output)
    model = _face_model()
    encoder = _encoder(model)
    options = dict(batch_size=common_flags.value_or("batch_size", DEFAULT_BATCH_SIZE),
                   detector=FLAGS.detector, landmarks=FLAGS.landmarks,
                   landmarks_model=common_flags.value_or("landmarks_model",
                                                         DEFAULT_LANDMARKS_MODEL),
                   largest_face_only=FLAGS.largest_face_only,
                   mirror_average=FLAGS.mirror_average, overwrite=FLAGS.overwrite,
                   face_model=FLAGS.face_model, checkpoint=FLAGS.checkpoint)
    settings = fit_settings(FLAGS.refine_steps if FLAGS.checkpoint else
                            FLAGS.steps if FLAGS.steps is not None else
                            DEFAULT_STEPS[options["landmarks_model"]])
    if FLAGS.landmarks != "files":  # at start-up, not on a picture
        try:
            preprocess.load_detection_models(FLAGS.detector, options["landmarks_model"])
        except (ImportError, OSError, RuntimeError) as error:
            raise SetupError(f"--landmarks_model={options['landmarks_model']}: "
                             f"{one_line(error)}") from None
    run_folder.make_output_folder(output)
    with run_folder.locked(output):
        run_folder.check_summary_files(output, FLAGS.overwrite)
        stems = run_folder.assign_stems(paths, output)
        if not FLAGS.overwrite:
            _check_done_pictures(paths, stems, output, shaping_settings(options, settings))
        if FLAGS.overwrite or not all(read_json(os.path.join(output, stem, DONE))
                                      for stem in stems):
            # Traced now, at start-up, not on the first picture; not at all
            # when every picture is done already.
            overlays.trace_result_renders(model.num_vertices, results.picture_triangles(model))
            if encoder is not None and not settings.total_steps:
                trace_answer(model, options["batch_size"])
        reconstruction = Reconstruction(output, model, settings, options, encoder)
        return _reconstruct(reconstruction, paths, stems)


def _face_model():
    """The face model, checked to have landmarks enough to fit."""
    try:
        model = load_face_model(FLAGS.face_model, data_root=FLAGS.data_root)
        check_model_landmarks(model)
        return model
    except (FaceModelError, OSError, ValueError) as error:
        raise SetupError(f"--face_model={FLAGS.face_model}: {one_line(error)}") from None


def _encoder(model):
    """The network of --checkpoint (None without it), checked against the
    face model's coefficient layout."""
    if not FLAGS.checkpoint:
        return None
    layout = CoefficientLayout.for_model(model)
    if layout != MGCNET_LAYOUT:
        raise SetupError(f"--face_model={FLAGS.face_model} has {layout.size} coefficients "
                         f"({layout}); the network predicts MGCNet's {MGCNET_LAYOUT.size}: use "
                         "its h5 or a model converted with that layout")
    try:
        encoder = load_encoder(FLAGS.checkpoint)
    except CheckpointError as error:
        raise SetupError(f"--checkpoint: {error}") from None
    encoder(tf.zeros([1, 224, 224, 3]))  # traced now, at start-up, not on the first batch
    return encoder


def _check_done_pictures(paths, stems, output, settings, shown=10):
    """Raises SetupError listing the done pictures whose results this run
    would not make (other settings, changed files)."""
    flag_names = {name: f"--{name}" for name in SHAPING_SETTINGS}
    problems = []
    for path, stem in zip(paths, stems):
        record = read_json(os.path.join(output, stem, DONE))
        if record:
            problems += [f"  {os.path.join(output, stem)}: {reason}"
                         for reason in run_folder.stale_reasons(record, settings, flag_names)]
    if problems:
        more = [f"  ... and {len(problems) - shown} more"] if len(problems) > shown else []
        raise SetupError("done pictures in the output folder do not match this run; pass "
                         "--overwrite to redo them, or choose another --output:\n"
                         + "\n".join(problems[:shown] + more))


def _reconstruct(reconstruction, paths, stems):
    """Runs over the pictures, writes the summaries; returns the exit code."""
    startup = time.perf_counter() - _PROCESS_START
    try:
        reconstruction.run(paths, stems)
    except KeyboardInterrupt:
        _write_summaries(reconstruction, "")
        print("Interrupted: run the same command again to resume.")
        return EXIT_INTERRUPTED
    lines = summary_lines(reconstruction, len(paths), time.perf_counter() - _PROCESS_START,
                          startup)
    index_path = _write_summaries(reconstruction, " ".join(lines))
    print("\n".join(lines + [f"Results: {index_path}"]))
    counts = reconstruction.counts
    if not counts["failed"]:
        return EXIT_DONE
    return EXIT_SOME_FAILED if counts["done"] + counts["skipped"] else EXIT_NONE_DONE


def _write_summaries(reconstruction, summary):
    """failures.csv and index.html; returns the index's path."""
    reconstruction.failures.save()
    output = reconstruction.output_dir
    return index_page.write_index(output, run_folder.done_records(output),
                                  list(reconstruction.failures.rows.items()),
                                  summary=f"Last run: {summary}" if summary else "")


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
