"""experiments/multi_view_claim.py (issue 13, the paper's claim at small
scale): the error measures, the shared warm-up, the Trainer's optimizer reset
it relies on, a set-up error, and the whole script end to end in a tiny
setting (2 warm-up and 2 training steps, the same seed twice, 2 training and
1 held-out tuple; about 40 s on 2 cores, most of it tracing the two arms'
steps)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import parity_inputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, timeout=300):
    return subprocess.run([sys.executable, "-m", "experiments.multi_view_claim"] + args,
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_rotation_error_is_the_angle_between_rotations():
    from experiments.multi_view_claim import rotation_error_deg
    angle = np.radians(30.0)
    about_y = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                        [-np.sin(angle), 0, np.cos(angle)]])
    flip = np.diag([1.0, -1.0, -1.0])  # MGCNet's default rotation: 180 degrees about x
    errors = rotation_error_deg(np.stack([flip, flip @ about_y, about_y]),
                                np.stack([flip, flip, about_y.T]))
    np.testing.assert_allclose(errors, [0.0, 30.0, 60.0], atol=1e-4)


def test_depth_errors_use_pixels_both_cover_and_align_medians():
    from experiments.multi_view_claim import depth_errors
    truth = np.zeros((2, 4, 4))
    truth[:, 1:3, 1:3] = 5000.0
    predicted = truth + 7.0 * (truth > 0)   # 7 mm too far on the face
    predicted[0, 1, 1] += 4.0                # one pixel's relief wrong by 4 mm more
    predicted[1] = 0.0                       # covers nothing
    plain, aligned = depth_errors(predicted, truth)
    assert plain[0] == pytest.approx((3 * 7 + 11) / 4)
    assert aligned[0] == pytest.approx(4.0 / 4)  # median difference 7 removed
    assert math.isnan(plain[1]) and math.isnan(aligned[1])


def test_reset_optimizer_restores_the_initial_adam_state():
    import tensorflow as tf
    from mgc.losses import LossWeights
    from mgc.train.trainer import Trainer

    class Tiny:
        variables_by_name = {"tiny/weights": tf.Variable(tf.ones([3]))}

    trainer = Trainer(tf.distribute.get_strategy(), Tiny(), None, None, LossWeights(), 1)
    trainer._apply([tf.constant([1.0, -2.0, 3.0])])  # pylint: disable=protected-access
    assert np.any(trainer.m["tiny/weights"].numpy() != 0)
    trainer.reset_optimizer()
    assert not np.any(trainer.m["tiny/weights"].numpy())
    assert not np.any(trainer.v["tiny/weights"].numpy())
    assert trainer.beta1_power.numpy() == pytest.approx(0.9)
    assert trainer.beta2_power.numpy() == pytest.approx(0.999)


def test_warm_up_fits_the_pose_outputs_only():
    import tensorflow as tf
    from experiments.multi_view_claim import pose_slice, warm_up
    from mgc.facemodel import MGCNET_LAYOUT

    class MeanColourEncoder(tf.Module):
        """[B, 224, 224, 3] -> [B, 257], linear in each image's mean colour."""
        def __init__(self):
            super().__init__()
            self.variables_by_name = {
                "tiny/weights": tf.Variable(tf.zeros([3, MGCNET_LAYOUT.size])),
                "tiny/biases": tf.Variable(tf.zeros([MGCNET_LAYOUT.size]))}

        def __call__(self, images):
            colour = tf.reduce_mean(images, axis=[1, 2])
            return colour @ self.variables_by_name["tiny/weights"] + \
                self.variables_by_name["tiny/biases"]

    class Truth:
        def __init__(self, coefficients):
            self.coefficients = coefficients

    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (4, 3, 1, 1, 3)).astype(np.uint8)  # 1-pixel views
    images = np.broadcast_to(images, (4, 3, 224, 224, 3)).copy()
    truths = [Truth(rng.normal(0, 1, (3, MGCNET_LAYOUT.size)).astype(np.float32))
              for _ in range(4)]
    encoder = MeanColourEncoder()
    first = warm_up(encoder, {"images": images}, truths, 1, 2, seed=1, learning_rate=0.05)
    last = warm_up(encoder, {"images": images}, truths, 300, 2, seed=1, learning_rate=0.05)
    assert last < 0.5 * first
    weights = encoder.variables_by_name["tiny/weights"].numpy()
    others = np.ones(MGCNET_LAYOUT.size, bool)
    others[pose_slice()] = False
    assert np.any(weights[:, pose_slice()] != 0) and not np.any(weights[:, others])


def test_detected_training_landmarks_replace_the_exact_ones(oracle):
    from experiments.multi_view_claim import detect_landmarks, make_tuples
    from mgc import paths
    from mgc.facemodel import load_face_model
    model = load_face_model(parity_inputs.synthetic_h5(oracle))
    data, _ = make_tuples(model, 3, 0, 0, paths.data_root())
    exact = data["landmarks"].copy()
    data["images"][1, 2] = 0  # a view without a face: its tuple is left out
    detected, kept, error = detect_landmarks(data)
    assert kept == [0, 2]
    assert detected["images"].shape[0] == detected["flag"].shape[0] == 2
    assert np.array_equal(detected["images"][1], data["images"][2])
    assert detected["landmarks"].shape == (2, 3, 68, 2)
    distance = np.linalg.norm(detected["landmarks"] - exact[kept], axis=-1)
    # dlib's points are near the projected ones but not the same (about 5 px on these faces).
    assert 0.5 < error < 15 and error == pytest.approx(distance.mean(), rel=1e-5)


def test_identity_term_is_refused_with_one_line(tmp_path):
    done = _run(["--gpmm_id_loss_weight=0.2", f"--output={tmp_path / 'x.json'}"])
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "FaceNet" in errors[0], done.stderr[-2000:]
    assert not os.path.exists(tmp_path / "x.json")


def test_heldout_tuples_overlapping_the_training_set_are_refused(tmp_path):
    done = _run(["--num_train_tuples=8", "--heldout_start=4", f"--output={tmp_path / 'x.json'}"])
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--heldout_start=4" in errors[0], done.stderr[-2000:]


def test_tiny_comparison_end_to_end(oracle, tmp_path):
    from experiments.multi_view_claim import ARMS, METRICS
    h5 = parity_inputs.synthetic_h5(oracle)
    output = tmp_path / "claim.json"
    done = _run([f"--path_gpmm={h5}", f"--output={output}", "--train_steps=2",
                 "--run_seeds=1,1", "--num_train_tuples=2", "--num_heldout_tuples=1",
                 "--batch_size=1", "--warm_up_steps=2", "--depth_frame=target",
                 "--heldout_start=5", "--train_landmarks=detected"])
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    settings = result["settings"]
    assert settings["depth_frame"] == "target" and settings["epipolar"] == "original"
    assert settings["heldout_start"] == 5
    assert settings["train_landmarks"] == "detected" and settings["train_tuples_kept"] == 2
    assert 0 < settings["train_landmark_error_px"] < 15
    assert settings["train_steps"] == 2 and settings["run_seeds"] == [1, 1]
    assert settings["warm_up_steps"] == 2
    assert settings["weights"]["without"]["MULTIVIEW_weight"] == 0.0
    assert settings["weights"]["with"]["MULTIVIEW_weight"] > 0
    assert settings["weights"]["with"]["gpmm_id_loss_weight"] == 0.0
    first, second = result["runs"]
    for run in result["runs"]:
        for arm in ARMS:
            assert len(run[arm]["total_loss"]) == 2
            assert all(math.isfinite(v) for v in run[arm]["total_loss"])
            assert set(run[arm]["errors"]) == set(METRICS)
            assert all(math.isfinite(v) and v >= 0 for v in run[arm]["errors"].values())
        # Same start and batches; the with arm adds the (gated, flag 2) multi-view sum.
        assert run["with"]["total_loss"][0] > run["without"]["total_loss"][0]
    # The arms' encoders and Adam states are reused across seeds (traced
    # once): a repeated seed must repeat the run.
    for arm in ARMS:
        assert second[arm]["total_loss"] == pytest.approx(first[arm]["total_loss"], rel=1e-4)
        assert second[arm]["errors"] == pytest.approx(first[arm]["errors"], rel=1e-4)
    assert second["untrained"] == pytest.approx(first["untrained"], rel=1e-6)
    # The warm-up moved the pose away from the initialisation's, the same in both seeds.
    assert first["start"]["rotation_deg"] != first["untrained"]["rotation_deg"]
    assert second["start"] == pytest.approx(first["start"], rel=1e-4)
    assert set(result["summary"]) == set(METRICS)
    for row in result["summary"].values():
        assert row["runs"] == 2 and row["with_better"] in (0, 2)
        mean_difference = row["without"]["mean"] - row["with"]["mean"]
        assert row["difference"]["mean"] == pytest.approx(mean_difference, abs=1e-9)
    assert "| rotation_deg |" in done.stdout


def _fake_output(path, seeds, learning_rate=1e-4):
    """A multi_view_claim output of `seeds` with made-up errors (2 images)."""
    from experiments.multi_view_claim import METRICS
    runs = []
    for seed in seeds:
        errors = {arm: {m: [seed + bias, seed + bias + 1.0] for m in METRICS}
                  for arm, bias in (("without", 1.0), ("with", 0.5))}
        runs.append({"seed": seed, **{state: {m: 5.0 for m in METRICS}
                                      for state in ("untrained", "start")},
                     **{arm: {"errors": {m: float(np.mean(v)) for m, v in e.items()},
                              "per_image": e} for arm, e in errors.items()}})
    settings = dict(backbone="small", train_steps=2, batch_size=2, learning_rate=learning_rate,
                    warm_up_steps=2, warm_up_learning_rate=1e-4, num_train_tuples=2,
                    num_heldout_tuples=1, heldout_start=160, run_seeds=list(seeds), data_seed=0,
                    face_model="x.h5", commit="abc1234", per_sample_gating=False,
                    flag_fore=1, depth_frame="target", epipolar="textbook", minutes=1.5)
    with open(path, "w") as stream:
        json.dump({"settings": settings, "summary": {}, "runs": runs}, stream)
    return str(path)


def test_combine_tables_the_seeds_of_several_runs(tmp_path):
    first = _fake_output(tmp_path / "a.json", [1, 2])
    second = _fake_output(tmp_path / "b.json", [3])
    output = tmp_path / "all.json"
    done = _run([f"--combine={first},{second}", f"--output={output}"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seeds 1, 2, 3" in done.stdout
    combined = json.loads(output.read_text())
    assert [r["seed"] for r in combined["runs"]] == [1, 2, 3]
    assert combined["settings"]["minutes"] == pytest.approx(3.0)
    rotation = combined["summary"]["rotation_deg"]
    assert rotation["difference"]["mean"] == pytest.approx(0.5)
    assert rotation["with_better"] == 3 and rotation["per_image_difference"]["n"] == 6
    # Other settings, repeated seeds, or the output among the inputs: refused.
    other = _fake_output(tmp_path / "c.json", [4], learning_rate=1e-5)
    for args, message in (([f"--combine={first},{other}"], "learning_rate"),
                          ([f"--combine={first},{first}"], "repeat"),
                          ([f"--combine={first},{second}", f"--output={first}"], "new file"),
                          ([f"--combine={first},{tmp_path}"], "not a multi_view_claim output"),
                          ([f"--combine={first}", f"--output={tmp_path}"], "is a folder")):
        done = _run(args)
        assert done.returncode == 2 and message in done.stderr, done.stderr[-1000:]
