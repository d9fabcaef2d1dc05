"""Real photos of one person from three viewpoints -> MGCNet's training
tuples in the original layout (mgc.data.layout). No TensorFlow.

Sources: each sub-folder of the input folder holding exactly three pictures
is one tuple, the target being the first picture in sorted order (then
source 1, source 2); or a list file names `target,source1,source2` per line
(paths relative to the input folder; blank lines and # comments skipped).

Per view (MGCNET_REFERENCE.md §7): the largest face and its 68 landmarks
(mgc.preprocess.prepare_faces: a landmark file beside the picture when there
is one, else dlib), the 5-point similarity onto std_224_bfm09, the landmarks
mapped into the 224 crop, the skin map of Deng's colour model
(mgc.preprocess.skin_color) on the crop, and MGCNet's K.

flag_sgl_mul: 2 when every view's 68 landmarks are a detector's or a
68-point file's, so all three are the same kind of estimate and may be
matched point to point (the epipolar loss). A view whose landmark file has
only 5 points is cropped by them and gets its 68 points from dlib run on
that crop; such a tuple is flagged 1 (multi-view losses, no landmark
correspondence), since its points were found another way than the others'.

The output folder gets, per tuple, <subfolder>/<frame_id>.jpg, _skin.jpg,
_cam.txt and _source.json (the pictures it came from, the flag, where each
view's landmarks came from; {"status": "started"} before the other files,
"done" after them), the list file `train.txt` of every done tuple in the
folder, and failures.csv (source, reason) of the sources that failed.
"""
import dataclasses
import os
from typing import List, Optional

import numpy as np

from mgc.data import layout
from mgc.job_files import FailureList, read_json, write_json
from mgc.preprocess import ImageError, LandmarkFileError, NoFaceError, load_image, prepare_faces
from mgc.preprocess.detection import LandmarkPredictor
from mgc.preprocess.inputs import IMAGE_EXTENSIONS
from mgc.preprocess.pipeline import detect_faces
from mgc.preprocess.skin_color import skin_map_uint8

FLAG_CORRESPONDING, FLAG_MULTIVIEW = 2, 1
SOURCE_SUFFIX = "_source.json"
FAILURES = "failures.csv"
LIST_NAME = "train"
# MGCNet's K (MGCNET_REFERENCE.md §3.3), written out: mgc.geometry would
# import TensorFlow, which nothing here needs (a test checks they agree).
MGCNET_K = np.array([[4700.0, 0.0, 112.0], [0.0, 4700.0, 112.0], [0.0, 0.0, 1.0]], np.float32)


class PrepareSetupError(ValueError):
    """The run cannot start; the message says why."""


class TupleFailure(ValueError):
    """One source cannot become a tuple; the message is its failures.csv reason."""


@dataclasses.dataclass
class TupleSource:
    """Three pictures that are to become one tuple.

    label: what failures.csv names (the sub-folder, or list file:line).
    subfolder, frame_id: the tuple's name in the layout.
    pictures: (target, source1, source2) paths.
    problem: why the source cannot be used at all (e.g. not three
      pictures), or None.
    """
    label: str
    subfolder: str
    frame_id: str
    pictures: tuple = ()
    problem: Optional[str] = None

    @property
    def name(self):
        return f"{self.subfolder}/{self.frame_id}"


@dataclasses.dataclass
class Summary:
    """What a run did: labels of the sources done now, skipped (done
    before) and failed, and the files it wrote."""
    done: List[str]
    skipped: List[str]
    failed: List[str]
    list_path: str
    failures_path: str


# --- Finding the sources ------------------------------------------------------

def _layout_name(text):
    """A name the list file can hold: no whitespace, no path separators."""
    return "_".join(text.replace(os.sep, " ").replace("/", " ").split()) or "_"


def _is_picture(path):
    return path.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(path)


def folder_sources(input_dir, skip=()):
    """One TupleSource per sub-folder of input_dir (sorted; hidden ones and
    the real paths in `skip` left out)."""
    sources = []
    for name in sorted(os.listdir(input_dir)):
        folder = os.path.join(input_dir, name)
        if name.startswith(".") or not os.path.isdir(folder) or os.path.realpath(folder) in skip:
            continue
        pictures = [os.path.join(folder, entry) for entry in sorted(os.listdir(folder))
                    if _is_picture(os.path.join(folder, entry))]
        source = TupleSource(label=folder, subfolder=_layout_name(name), frame_id="_")
        if len(pictures) != layout.VIEWS:
            source.problem = (f"pictures: the folder holds {len(pictures)} picture(s), needs "
                              f"{layout.VIEWS} (target first in sorted order)")
        else:
            source.pictures = tuple(pictures)
            source.frame_id = _layout_name(os.path.splitext(os.path.basename(pictures[0]))[0])
        sources.append(source)
    return sources


def list_sources(input_dir, list_file):
    """One TupleSource per line `target,source1,source2` of list_file."""
    try:
        with open(list_file, encoding="utf-8") as stream:
            lines = stream.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise PrepareSetupError(f"cannot read the list file {list_file}: {error}") from None
    sources = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        names = [name.strip() for name in line.split(",")]
        label = f"{list_file}:{number}"
        if len(names) != layout.VIEWS or not all(names):
            sources.append(TupleSource(label, "_", "_", problem=(
                f"list: {len(names)} comma-separated picture(s), needs target,source1,source2")))
            continue
        pictures = tuple(os.path.join(input_dir, name) for name in names)
        parent = os.path.dirname(os.path.normpath(names[0])) or os.path.basename(
            os.path.normpath(input_dir))
        sources.append(TupleSource(label, _layout_name(parent), _layout_name(
            os.path.splitext(os.path.basename(names[0]))[0]), pictures))
    return sources


def find_sources(input_dir, list_file=None, skip=()):
    """The TupleSources of a run; duplicate names get a problem.

    Raises:
      PrepareSetupError: input_dir is not a folder, the list file cannot be
        read, or there is nothing to prepare.
    """
    if not os.path.isdir(input_dir):
        raise PrepareSetupError(f"the input folder {input_dir} does not exist or is not a folder")
    sources = list_sources(input_dir, list_file) if list_file else folder_sources(input_dir, skip)
    if not sources:
        what = f"lines in {list_file}" if list_file else f"sub-folders in {input_dir}"
        raise PrepareSetupError(f"nothing to prepare: no {what}")
    first = {}
    for source in sources:
        if source.problem is None and source.name in first:
            source.problem = f"name: tuple {source.name} is also made from {first[source.name]}"
        first.setdefault(source.name, source.label)
    return sources


# --- One tuple ----------------------------------------------------------------

def prepare_view(image, path, detector="auto"):
    """(crop uint8 [224, 224, 3], 68 crop landmarks float32, where they came
    from: "detected", "file" or "crop") of the largest face of a picture
    (uint8 RGB, read from path)."""
    face = prepare_faces(image, path, landmarks="auto", detector=detector,
                         largest_face_only=True)[0]
    if face.crop_landmarks68 is not None:
        return face.crop, face.crop_landmarks68, face.landmark_source
    landmarks = crop_landmarks(face.crop, detector)  # a 5-point file: 68 points from the crop
    if landmarks is None:
        raise NoFaceError(f"{path}: no face found in the crop its 5-point file "
                          f"{face.landmark_file} aligns")
    return face.crop, landmarks, "crop"


def crop_landmarks(crop, detector="auto"):
    """68 landmarks float32 [68, 2] of the first face detected in a crop
    (uint8 [224, 224, 3]), or None where none is found."""
    boxes = detect_faces(crop, detector)
    if not boxes:
        return None
    return LandmarkPredictor().predict(crop, boxes[0]).astype(np.float32)


def make_tuple(source, detector="auto"):
    """(layout.Tuple, its _source.json record) of a usable TupleSource.

    Raises TupleFailure with the failures.csv reason.
    """
    crops, landmarks, origins = [], [], []
    try:
        images = [load_image(path) for path in source.pictures]  # all readable before detecting
        for image, path in zip(images, source.pictures):
            crop, points, origin = prepare_view(image, path, detector)
            crops.append(crop)
            landmarks.append(points)
            origins.append(origin)
    except Exception as error:  # pylint: disable=broad-except
        # Any problem of one source fails that source only; the run goes on.
        raise TupleFailure(failure_reason(error)) from error
    flag = FLAG_MULTIVIEW if "crop" in origins else FLAG_CORRESPONDING
    tuple_ = layout.Tuple(
        images=np.stack(crops), skins=np.stack([skin_map_uint8(crop) for crop in crops]),
        landmarks=np.stack(landmarks).astype(np.float32),
        intrinsics=np.repeat(MGCNET_K[np.newaxis], layout.VIEWS, axis=0),
        flag=flag, name=source.name)
    record = dict(status="done", flag=flag, pictures=[os.path.abspath(p) for p in source.pictures],
                  landmarks=origins)
    return tuple_, record


def failure_reason(error):
    """A one-line reason, its kind first (as reconstruct's failures.csv)."""
    if isinstance(error, ImageError):
        kind = "unreadable"
    elif isinstance(error, NoFaceError):
        kind = "no face"
    elif isinstance(error, (LandmarkFileError, FileNotFoundError)):
        kind = "landmarks"
    else:
        kind = f"error ({type(error).__name__})"
    # On one line; not mgc.facemodel.files.one_line, whose package imports TensorFlow.
    return f"{kind}: " + " ".join(str(error).split())


# --- The output folder --------------------------------------------------------

def _record_path(output_dir, subfolder, frame_id):
    return os.path.join(output_dir, subfolder, frame_id + SOURCE_SUFFIX)


def tuple_state(output_dir, source):
    """"done", "started" (an interrupted attempt of ours), "foreign" (files
    of that name this tool did not write) or "new"."""
    record = read_json(_record_path(output_dir, source.subfolder, source.frame_id))
    files = layout.tuple_paths(output_dir, source.subfolder, source.frame_id)
    if record is not None and record.get("status") == "done" and all(map(os.path.isfile, files)):
        return "done"
    if record is not None:
        return "started"
    return "foreign" if any(map(os.path.lexists, files)) else "new"


def write_prepared(output_dir, tuple_, record):
    """The tuple's files, framed by its record: "started" first, "done" last."""
    subfolder, frame_id = tuple_.name.split("/")
    path = _record_path(output_dir, subfolder, frame_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_json(path, dict(status="started", pictures=record["pictures"]))
    layout.write_tuple(output_dir, subfolder, frame_id, tuple_)
    write_json(path, record)


def done_entries(output_dir):
    """(flag, subfolder, frame_id) of every done tuple in output_dir, sorted."""
    entries = []
    for subfolder in sorted(os.listdir(output_dir)):
        folder = os.path.join(output_dir, subfolder)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.endswith(SOURCE_SUFFIX):
                frame_id = name[:-len(SOURCE_SUFFIX)]
                record = read_json(os.path.join(folder, name))
                if record and record.get("status") == "done" and all(
                        map(os.path.isfile, layout.tuple_paths(output_dir, subfolder, frame_id))):
                    entries.append((record["flag"], subfolder, frame_id))
    return entries


def check_output(output_dir, overwrite=False):
    """Refuses an output that is a file, or whose list file names tuples
    this tool did not prepare (unless overwrite)."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise PrepareSetupError(f"{output_dir} exists and is not a folder")
    list_path = layout.list_path(output_dir, LIST_NAME)
    if overwrite or not os.path.exists(list_path):
        return
    ours = {(subfolder, frame_id) for _, subfolder, frame_id in done_entries(output_dir)}
    try:
        listed = [(subfolder, frame_id) for _, subfolder, frame_id, _ in
                  layout.read_list(output_dir, LIST_NAME)]
    except layout.TupleError as error:
        raise PrepareSetupError(f"{error}; pass --overwrite to replace it") from None
    foreign = [f"{s}/{f}" for s, f in listed if (s, f) not in ours]
    if foreign:
        raise PrepareSetupError(
            f"{list_path} lists {len(foreign)} tuple(s) this tool did not prepare (e.g. "
            f"{foreign[0]}); choose another --output, or --overwrite to rewrite the list")


# --- A run --------------------------------------------------------------------

def prepare_dataset(input_dir, output_dir, list_file=None, detector="auto", overwrite=False,
                    wrap=None, report=None):
    """Prepares every source of input_dir into output_dir (see the module
    docstring); a source that fails is recorded in failures.csv and the run
    goes on. Done tuples are skipped unless overwrite.

    Args:
      wrap: applied to the list of sources, e.g. a progress bar.
      report: called with (label, message) for each failure, e.g. to print it.

    Returns:
      Summary.

    Raises:
      PrepareSetupError: before any work (see find_sources, check_output).
    """
    skip = {os.path.realpath(output_dir)}
    sources = find_sources(input_dir, list_file, skip)
    check_output(output_dir, overwrite)
    os.makedirs(output_dir, exist_ok=True)
    failures = FailureList(os.path.join(output_dir, FAILURES), key="source")
    summary = Summary([], [], [], layout.list_path(output_dir, LIST_NAME), failures.path)
    for source in (wrap(sources) if wrap else sources):
        outcome, reason = _prepare_one(source, output_dir, detector, overwrite)
        getattr(summary, outcome).append(source.label)
        if outcome == "failed":
            failures.add(source.label, reason)
            if report:
                report(source.label, reason)
        else:
            failures.remove(source.label)
    layout.write_list(output_dir, done_entries(output_dir), LIST_NAME)
    return summary


def _prepare_one(source, output_dir, detector, overwrite):
    """("done" | "skipped" | "failed", failure reason or None)."""
    if source.problem:
        return "failed", source.problem
    state = tuple_state(output_dir, source)
    if state == "done" and not overwrite:
        return "skipped", None
    if state == "foreign" and not overwrite:
        return "failed", (f"exists: {source.name} has files this tool did not write; "
                          "--overwrite replaces them")
    try:
        tuple_, record = make_tuple(source, detector)
    except TupleFailure as failure:
        return "failed", str(failure)
    write_prepared(output_dir, tuple_, record)
    return "done", None
