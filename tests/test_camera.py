"""Camera helpers against their textbook definitions (gluPerspective,
gluLookAt, R = Rz Ry Rx)."""
import numpy as np

from mgc.geometry import euler_matrices, look_at, perspective, transform_homogeneous


def test_perspective_is_glu_perspective():
    matrix = perspective(4.0 / 3.0, 40.0, 0.01, 10.0).numpy()[0]
    f = 1.0 / np.tan(np.radians(20.0))
    expected = np.array([[f * 0.75, 0, 0, 0], [0, f, 0, 0],
                         [0, 0, -10.01 / 9.99, -0.2 / 9.99], [0, 0, -1, 0]])
    np.testing.assert_allclose(matrix, expected, rtol=1e-5, atol=1e-7)
    # The near and far planes map to NDC z = -1 and 1.
    for distance, ndc_z in ((0.01, -1.0), (10.0, 1.0)):
        clip = matrix @ [0.0, 0.0, -distance, 1.0]
        np.testing.assert_allclose(clip[2] / clip[3], ndc_z, atol=1e-4)


def test_look_at_puts_the_eye_at_the_origin_looking_down_minus_z():
    eye, center = np.array([2.0, 3.0, 6.0]), np.array([0.5, -0.5, 0.0])
    view = look_at(eye, center, [0.0, 1.0, 0.0]).numpy()[0]
    np.testing.assert_allclose(view @ np.append(eye, 1), [0, 0, 0, 1], atol=1e-5)
    target = view @ np.append(center, 1)
    np.testing.assert_allclose(target[:3], [0, 0, -np.linalg.norm(center - eye)], atol=1e-5)
    np.testing.assert_allclose(view[:3, :3] @ view[:3, :3].T, np.eye(3), atol=1e-6)
    # World up stays up: a point above the centre has camera y > 0.
    assert (view @ np.append(center + [0, 1, 0], 1))[1] > 0


def test_euler_matrices_are_rz_ry_rx():
    angles = np.array([[-20.0, 0.0, 60.0], [0.3, -1.1, 2.0]])
    result = euler_matrices(angles).numpy()
    for matrix, (ax, ay, az) in zip(result, angles):
        c, s = np.cos, np.sin
        rx = np.array([[1, 0, 0], [0, c(ax), -s(ax)], [0, s(ax), c(ax)]])
        ry = np.array([[c(ay), 0, s(ay)], [0, 1, 0], [-s(ay), 0, c(ay)]])
        rz = np.array([[c(az), -s(az), 0], [s(az), c(az), 0], [0, 0, 1]])
        np.testing.assert_allclose(matrix[:3, :3], rz @ ry @ rx, atol=1e-6)
        np.testing.assert_allclose(matrix[3], [0, 0, 0, 1])


def test_transform_homogeneous_applies_column_vector_matrices():
    rng = np.random.default_rng(0)
    matrices = rng.normal(size=(2, 4, 4)).astype(np.float32)
    points = rng.normal(size=(2, 5, 3)).astype(np.float32)
    result = transform_homogeneous(matrices, points).numpy()
    expected = np.einsum("bij,bvj->bvi", matrices, np.concatenate([points, np.ones((2, 5, 1))], -1))
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)
