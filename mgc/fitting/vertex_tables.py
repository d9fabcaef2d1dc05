"""Per-model vertex tables kept as JSON beside the code: one entry per
built-in face model (name -> vertex count, one vertex id per point, what the
calibration measured), found by the model's vertex count. The built-in
models' topologies differ, and models sharing one share the table (MGCNet's
h5 and the BFM09 front mean have the same 35709 vertices)."""
import json
import os

import numpy as np


class VertexTable:
    """One such file: `points` vertex ids per entry, each >= `lowest`
    (-1 may mean "no such vertex")."""

    def __init__(self, path, points, lowest=0):
        self.path, self.points, self.lowest = path, points, lowest
        self._entries = None

    def entries(self):
        if self._entries is None:
            self._entries = {}
            if os.path.isfile(self.path):
                with open(self.path) as stream:
                    self._entries = json.load(stream)
        return self._entries

    def vertices(self, model):
        """int64 [points] of this model's entry, checked; None when none."""
        entry = next((e for e in self.entries().values()
                      if e["num_vertices"] == model.num_vertices), None)
        if entry is None:
            return None
        vertices = np.asarray(entry["vertices"], np.int64)
        if (vertices.shape != (self.points,) or vertices.min() < self.lowest
                or vertices.max() >= model.num_vertices):
            raise ValueError(f"{self.path} [{model.name}]: expected {self.points} vertex ids in "
                             f"[{self.lowest}, {model.num_vertices}), got shape {vertices.shape}")
        return vertices

    def write(self, name, num_vertices, vertices, report):
        """Stores (or replaces) one model's entry; the file is replaced whole."""
        vertices = [int(v) for v in vertices]
        if len(vertices) != self.points:
            raise ValueError(f"expected {self.points} vertices, got {len(vertices)}")
        entries = dict(self.entries())
        entries[name] = dict(num_vertices=int(num_vertices), vertices=vertices, measured=report)
        temporary = self.path + ".part"
        with open(temporary, "w") as stream:
            json.dump(entries, stream, indent=1, sort_keys=True)
            stream.write("\n")
        os.replace(temporary, self.path)
        self._entries = None
