"""The coefficient layout: MGCNet's 257-vector order and any model's ranks."""
import numpy as np
import pytest

from mgc.facemodel import MGCNET_LAYOUT, CoefficientLayout


def test_mgcnet_layout_is_the_original_order():
    assert MGCNET_LAYOUT.size == 257
    vector = np.arange(257, dtype=np.float32)[np.newaxis]
    parts = MGCNET_LAYOUT.split(vector)
    expected = {"identity": (0, 80), "albedo": (80, 160), "expression": (160, 224),
                "pose": (224, 230), "lighting": (230, 257)}
    for name, (start, stop) in expected.items():
        np.testing.assert_array_equal(parts[name].numpy()[0], np.arange(start, stop))
    joined = MGCNET_LAYOUT.join(*(parts[k] for k in ("identity", "albedo", "expression", "pose",
                                                    "lighting")))
    np.testing.assert_array_equal(joined.numpy(), vector)


def test_layout_for_other_ranks_and_errors():
    layout = CoefficientLayout(identity=100, albedo=0, expression=53)
    assert layout.size == 100 + 53 + 6 + 27
    parts = layout.split(np.zeros((3, layout.size), np.float32))
    assert parts["albedo"].shape == (3, 0) and parts["pose"].shape == (3, 6)
    with pytest.raises(ValueError, match="186 entries"):
        layout.split(np.zeros((1, 257), np.float32))
    with pytest.raises(ValueError, match="expression must have 53 entries"):
        layout.join(np.zeros((1, 100)), np.zeros((1, 0)), np.zeros((1, 52)), np.zeros((1, 6)),
                    np.zeros((1, 27)))
