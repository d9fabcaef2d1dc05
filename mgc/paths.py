"""Where external data is read from: one data root for everything.

Order: an explicit argument (the --data_root flag), else $MGC_DATA, else
../shared/data beside the repository. Nothing is ever written there.
"""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_root(override=None):
    """Absolute path of the data root."""
    root = override or os.environ.get("MGC_DATA") or os.path.join(REPO_ROOT, "..", "shared", "data")
    return os.path.abspath(root)


def data_file(relative_path, override=None):
    """Absolute path of a file under the data root; raises if it is missing.

    The error names the file and points at the data root's README, which says
    where every file comes from.
    """
    root = data_root(override)
    path = os.path.join(root, relative_path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found. It belongs to the data root {root} (set --data_root or "
            f"$MGC_DATA); {os.path.join(root, 'README.md')} says where each file comes from.")
    return path
