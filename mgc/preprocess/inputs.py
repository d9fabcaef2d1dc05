"""Which pictures a command line names: files, folders, globs and list files.

    collect_pictures("a.jpg,shots/,more/*.png,@files.txt")

An item that exists as a path is taken literally, before anything else, so
`face[1].jpg` is that file and not a glob, and commas inside an existing
path do not split it (`face,1.jpg`). `@FILE` reads one
path per line (blank lines and lines starting with # are skipped; commas and
glob characters are literal there). Folders give their entries (not
recursive) whose names have a picture extension; so do globs. Entries that
are not regular files (broken or looping links, FIFOs) are kept, so the run
reports them instead of skipping them unseen.
"""
import collections
import glob
import os
import sys

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm",
                    ".pgm")


class InputError(ValueError):
    """A list file (`@FILE`) or a folder cannot be read; the message names it."""


def collect_pictures(spec):
    """Absolute paths of the pictures `spec` names, in the given order
    (folders and globs sorted), each once (by real path).

    Args:
      spec: a comma-separated string (see the module docstring) or a list
        of items.

    Raises:
      InputError: a list file is missing or unreadable, or a folder cannot
        be listed.
    """
    paths = []
    for item, literal in _items(spec):
        paths += _expand(item, literal)
    unique = collections.OrderedDict((os.path.realpath(p), os.path.abspath(p)) for p in paths)
    return list(unique.values())


def _items(spec):
    """(item, literal) pairs; items of list files are literal paths."""
    items = list(spec) if isinstance(spec, (list, tuple)) else _split_commas(spec)
    result = []
    for item in items:
        item = os.path.expanduser(item.strip())
        if item.startswith("@") and not os.path.lexists(item):
            result += [(path, True) for path in _list_file(item[1:])]
        elif item:
            result.append((item, False))
    return result


def _split_commas(spec):
    """The items of a comma-separated value; commas inside an existing path
    stay (of the pieces from one comma on, the longest run that joins into
    an existing path is one item)."""
    pieces, items, start = spec.split(","), [], 0
    while start < len(pieces):
        end = len(pieces)
        while end > start + 1 and not os.path.lexists(
                os.path.expanduser(",".join(pieces[start:end]).strip())):
            end -= 1
        items.append(",".join(pieces[start:end]))
        start = end
    return items


def _list_file(path):
    try:
        with open(path, encoding="utf-8") as stream:
            lines = stream.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise InputError(f"cannot read the list file @{path}: {reason}") from None
    folder = os.path.dirname(os.path.abspath(path))
    # Relative paths in a list file are relative to the list file.
    return [os.path.join(folder, os.path.expanduser(line.strip())) for line in lines
            if line.strip() and not line.lstrip().startswith("#")]


def _expand(item, literal):
    if os.path.isdir(item):
        try:
            names = os.listdir(item)
        except OSError as error:
            raise InputError(f"cannot list the folder {item}: {error.strerror}") from None
        return _pictures_in(sorted(os.path.join(item, name) for name in names))
    if literal or os.path.lexists(item) or not glob.has_magic(item):
        return [item]  # tried even when missing: the failure is reported
    found = _pictures_in(sorted(glob.glob(item)))
    if not found:
        print(f"warning: no pictures match {item}", file=sys.stderr)
    return found


def _pictures_in(paths):
    return [path for path in paths
            if path.lower().endswith(IMAGE_EXTENSIONS) and not os.path.isdir(path)]
