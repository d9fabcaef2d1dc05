"""The output folder of a batch run: its lock, the per-picture markers,
folder names, `failures.csv`, and the checks that keep a run from losing or
silently reusing results.

    <output>/reconstruct.lock     held (flock) while a run writes; holds its pid
    <output>/failures.csv         image,reason: the pictures that failed
    <output>/index.html           the page over every done picture
    <output>/<stem>/started.json  {"source": ...}: written before any result file
    <output>/<stem>/done.json     the picture's record, written last: it is done

Every JSON and CSV is written through a temporary file and os.replace, so a
reader (or a run that was killed) sees a file either whole or absent.
"""
import contextlib
import errno
import fcntl
import hashlib
import os

from mgc.export.index_page import GENERATOR as INDEX_GENERATOR
from mgc.job_files import read_json

DONE, STARTED, FAILURES, LOCK, INDEX = (
    "done.json", "started.json", "failures.csv", "reconstruct.lock", "index.html")
FAILURES_HEADER = ("image", "reason")


class RunFolderError(Exception):
    """The output folder cannot be used; the message says why and what to do."""


# --- Fingerprints of inputs ---------------------------------------------------

def fingerprint(path):
    """{"size": bytes, "sha256": hex} of a file, to tell whether it changed."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return dict(size=os.path.getsize(path), sha256=digest.hexdigest())


# --- The folder itself --------------------------------------------------------

def check_output_path(folder, flag="--output"):
    """Raises RunFolderError when `folder` cannot become a writable folder
    (it is a file, lies under a file, or its nearest existing ancestor is
    not writable). Creates nothing."""
    path = os.path.abspath(folder)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise RunFolderError(f"{flag}={folder} is a file, not a folder")
    ancestor = path
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise RunFolderError(f"{flag}={folder} cannot be created: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise RunFolderError(f"{flag}={folder} cannot be written: no write permission "
                             f"on {ancestor}")


def make_output_folder(folder, flag="--output"):
    check_output_path(folder, flag)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise RunFolderError(f"{flag}={folder} cannot be created: {error.strerror}") from None


@contextlib.contextmanager
def locked(folder, flag="--output"):
    """Holds the folder's lock for the block; a second run into the same
    folder gets RunFolderError naming the lock and the holder's pid. The
    lock is an flock, so a killed run releases it; the file stays (removing
    it would let a third run lock a new file while a second waits on the
    old one)."""
    path = os.path.join(folder, LOCK)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise RunFolderError(f"{flag}={folder} cannot be written ({path}: "
                             f"{error.strerror})") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = os.pread(descriptor, 64, 0).decode("ascii", "replace").strip() or "?"
            raise RunFolderError(
                f"{flag}={folder} is locked by another run (pid {holder}, lock file {path}); "
                "wait for it to finish or choose another --output") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
        yield path
    finally:
        os.close(descriptor)  # releases the flock


def check_summary_files(folder, overwrite):
    """Raises RunFolderError when index.html or failures.csv in `folder`
    was not written by us (it would be replaced), unless overwrite."""
    if overwrite:
        return
    index = os.path.join(folder, INDEX)
    if os.path.isfile(index) and not _is_our_index(index):
        raise RunFolderError(f"{index} exists and was not written by mgc; pass --overwrite to "
                             "replace it, or choose another --output")
    failures = os.path.join(folder, FAILURES)
    if os.path.isfile(failures) and not _is_our_failure_list(failures):
        raise RunFolderError(f"{failures} exists and is not an mgc failure list (first line "
                             f"{','.join(FAILURES_HEADER)}); pass --overwrite to replace it, "
                             "or choose another --output")


def _head(path, size):
    try:
        with open(path, "rb") as stream:
            return stream.read(size).decode("utf-8", "replace")
    except OSError:
        return ""


def _is_our_index(path):
    return f'<meta name="generator" content="{INDEX_GENERATOR}">' in _head(path, 4096)


def _is_our_failure_list(path):
    return _head(path, 256).splitlines()[:1] == [",".join(FAILURES_HEADER)]


# --- Result folders -----------------------------------------------------------

def folder_owner(folder):
    """The source picture recorded in a result folder; "" for a missing
    folder, or one holding nothing but our half-written markers (a run killed
    while writing them); None for a folder holding files not written by us."""
    if not os.path.isdir(folder):
        return ""
    names = os.listdir(folder)
    if all(name in (STARTED + ".tmp", DONE + ".tmp") for name in names):
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
            owner = folder_owner(os.path.join(output_dir, candidate))
            if candidate not in used and owner in ("", source):
                break
        used.add(candidate)
        stems.append(candidate)
    return stems


def done_records(output_dir):
    """Every finished picture's record in output_dir, sorted by folder."""
    records = []
    for name in sorted(os.listdir(output_dir)):
        record = read_json(os.path.join(output_dir, name, DONE))
        if record:
            records.append(dict(record, folder=name))
    return records


def stale_reasons(record, settings, flag_names):
    """Why a done picture's record does not hold what this run would make:
    one line per changed setting (named by its flag), a changed or missing
    source picture or landmark file. Empty when it can be kept.

    Args:
      record: the picture's done.json.
      settings: this run's settings that shape results, name -> value.
      flag_names: name -> the flag that sets it, e.g. "--face_model".
    """
    reasons = []
    done_settings = record.get("settings", {})
    for name, value in settings.items():
        if done_settings.get(name) != value:
            reasons.append(f"{flag_names[name]}={_flag_text(done_settings.get(name))} when it "
                           f"was done, {flag_names[name]}={_flag_text(value)} now")
    files = [("picture", record.get("source"), record.get("source_file"))]
    files += [("landmark file", face.get("landmark_file"), face.get("landmark_fingerprint"))
              for face in record.get("faces", []) if face.get("landmark_file")]
    for kind, path, recorded in files:
        reason = _file_change(path, recorded)
        if reason:
            reasons.append(f"the {kind} {path} {reason}")
    return reasons


def _flag_text(value):
    if isinstance(value, bool):
        return str(value).lower()
    return "(not recorded)" if value is None else str(value)


def _file_change(path, recorded):
    if not recorded:
        return "has no recorded size and hash (done by an older version)"
    try:
        now = fingerprint(path)
    except OSError as error:
        return f"cannot be read now ({error.strerror})"
    if now["size"] != recorded.get("size"):
        return f"changed ({recorded.get('size')} bytes when it was done, {now['size']} now)"
    if now["sha256"] != recorded.get("sha256"):
        return "changed (same size, other content)"
    return ""
