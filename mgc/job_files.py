"""Files a batch job writes whole (a temporary file, then rename), so that a
killed run never leaves half a file: its JSON markers (read_json,
write_json) and failures.csv (FailureList). Used by reconstruct's run
folder and by prepare_tuples.

failures.csv has one row per input that failed, with its reason. Rows of
earlier runs are kept, an input appears once with its newest reason
and leaves the list when it succeeds. Every change is saved at once and
whole (a temporary file, then rename), so a killed run loses no row and
never leaves half a file. Its key column is `image` for reconstruct and
`source` for prepare_tuples.
"""
import collections
import csv
import json
import os


def read_json(path):
    """A JSON file's dict, or None when missing or unreadable (half-written)."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def write_json(path, data):
    """Writes JSON through a temporary file and os.replace."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8", newline="\n") as stream:
        json.dump(data, stream, indent=1)
        stream.write("\n")
    os.replace(temporary, path)


class FailureList:
    """failures.csv with the columns (key, reason)."""

    def __init__(self, path, key="image"):
        self.path, self.header = path, (key, "reason")
        self.rows = collections.OrderedDict()
        if os.path.exists(path):
            with open(path, newline="", encoding="utf-8") as stream:
                for row in csv.DictReader(stream):
                    if row.get(key):
                        self.rows[row[key]] = row.get("reason") or ""

    def add(self, name, reason):
        self.rows.pop(name, None)
        self.rows[name] = reason
        self.save()

    def remove(self, name):
        if self.rows.pop(name, None) is not None:
            self.save()

    def save(self):
        if not self.rows and not os.path.exists(self.path):
            return
        temporary = f"{self.path}.tmp-{os.getpid()}"
        with open(temporary, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(self.header)
            writer.writerows(self.rows.items())
        os.replace(temporary, self.path)
