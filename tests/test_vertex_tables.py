"""mgc.fitting.vertex_tables: the per-model JSON tables of the face-mesh
correspondence and the keypoints."""
import types

import numpy as np
import pytest

from mgc.fitting.vertex_tables import VertexTable


def model(num_vertices, name="m"):
    return types.SimpleNamespace(num_vertices=num_vertices, name=name)


def test_entries_are_found_by_vertex_count_and_replaced_whole(tmp_path):
    table = VertexTable(str(tmp_path / "table.json"), points=3, lowest=-1)
    assert table.vertices(model(10)) is None  # no file yet
    table.write("small", 10, [4, -1, 9], report=dict(error=0.5))
    table.write("large", 100, [40, 50, 99], report={})
    np.testing.assert_array_equal(table.vertices(model(10)), [4, -1, 9])
    table.write("small", 10, [1, 2, 3], report={})  # replaced, the other kept
    fresh = VertexTable(str(tmp_path / "table.json"), points=3, lowest=-1)
    np.testing.assert_array_equal(fresh.vertices(model(10)), [1, 2, 3])
    np.testing.assert_array_equal(fresh.vertices(model(100)), [40, 50, 99])
    assert fresh.vertices(model(11)) is None
    assert not (tmp_path / "table.json.part").exists()


def test_bad_entries_name_the_file_and_the_model(tmp_path):
    path = str(tmp_path / "table.json")
    VertexTable(path, points=3, lowest=-1).write("m", 10, [4, -1, 9], report={})
    with pytest.raises(ValueError, match=r"table.json \[ict\]: expected 3 vertex ids in \[0, 10\)"):
        VertexTable(path, points=3).vertices(model(10, "ict"))  # -1 not allowed here
    with pytest.raises(ValueError, match="expected 3 vertices, got 2"):
        VertexTable(path, points=3).write("m", 10, [1, 2], report={})
