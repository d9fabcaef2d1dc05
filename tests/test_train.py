"""experiments/train.py and mgc.train (issue 13): a smoke run on synthetic
tuples, resuming, the NaN stop and atomic checkpoints.

The real encoder takes about 35 s to trace and 3 s a step (batch 1, three
views) on 2 cores, so the runs here are few: one 20-step run, which the
resume and NaN tests continue from its model-10.
"""
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import parity_inputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TSV = os.path.join(REPO, "..", "shared", "spec", "mgcnet_checkpoint_variables.tsv")
SMOKE = ["--preset=documented", "--gpmm_id_loss_weight=0", "--batch_size=1", "--min_steps=0",
         "--summary_freq=1"]


def _run(args, timeout=600):
    return subprocess.run([sys.executable, "-m", "experiments.train"] + args, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _rows(directory):
    with open(os.path.join(directory, "scalars.csv")) as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def h5(oracle):
    return parity_inputs.synthetic_h5(oracle)


@pytest.fixture(scope="module")
def tuples(h5, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tuples"))
    done = subprocess.run([sys.executable, "-m", "experiments.make_synthetic_tuples",
                           f"--output={folder}", "--num_tuples=4", f"--face_model={h5}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


@pytest.fixture(scope="module")
def smoke(tuples, h5, tmp_path_factory):
    """The issue's smoke run: 20 steps, checkpoints at 10 and 20."""
    directory = str(tmp_path_factory.mktemp("smoke"))  # exists and is empty: fine
    done = _run([f"--dataset_dir={tuples}", f"--path_gpmm={h5}", f"--checkpoint_dir={directory}",
                 "--max_steps=20", "--save_freq=10"] + SMOKE)
    assert done.returncode == 0, done.stderr[-3000:]
    return directory


def _tsv_rows():
    rows = {}
    with open(TSV) as stream:
        for line in stream:
            if line.startswith("#") or line.startswith("name\t"):
                continue
            name, shape = line.split("\t")[:2]
            rows[name] = [int(d) for d in shape.strip("[]").split(",") if d]
    return rows


def test_smoke_run_learns_and_writes_original_checkpoints(smoke):
    import tensorflow as tf
    from mgc.losses.total import LOSS_NAMES, SUM_NAMES
    from mgc.nets import load_encoder
    rows = _rows(smoke)
    assert list(rows[0]) == ["step"] + list(LOSS_NAMES + SUM_NAMES)
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    total = [float(r["total_loss"]) for r in rows]
    assert np.mean(total[-3:]) < np.mean(total[:3]), total
    latest = tf.train.latest_checkpoint(smoke)
    assert os.path.basename(latest) == "model-20"
    assert os.path.exists(os.path.join(smoke, "model-10.index"))
    load_encoder(latest)
    stored = {name: shape for name, shape in tf.train.list_variables(latest)}
    wanted = {n: s for n, s in _tsv_rows().items()
              if n.startswith("resnet_v1_50/") or n in ("global_step", "train_op/beta1_power",
                                                        "train_op/beta2_power")}
    assert len([n for n in wanted if n.startswith("resnet_v1_50/")]) == 108 * 3
    for name, shape in wanted.items():
        assert stored.get(name) == shape, name
    reader = tf.train.load_checkpoint(latest)
    assert reader.get_variable_to_dtype_map()["global_step"] == tf.int32
    assert int(reader.get_tensor("global_step")) == 20
    assert np.isclose(reader.get_tensor("train_op/beta1_power"), 0.9 ** 21, rtol=1e-5)
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(smoke))


def _from_model_10(smoke, directory):
    """A checkpoint folder holding what a run killed after its save at step 10
    leaves: model-10 and the state file naming it (and a stale temporary)."""
    os.makedirs(directory)
    for name in os.listdir(smoke):
        if name.startswith("model-10."):
            shutil.copy(os.path.join(smoke, name), directory)
    with open(os.path.join(directory, "checkpoint"), "w") as stream:
        stream.write('model_checkpoint_path: "model-10"\nall_model_checkpoint_paths: "model-10"\n')
    with open(os.path.join(directory, ".model-11.tmp-1.index"), "w") as stream:
        stream.write("cut off")


def test_resume_continues_exactly(smoke, tuples, h5, tmp_path):
    directory = str(tmp_path / "resumed")
    _from_model_10(smoke, directory)
    done = _run([f"--dataset_dir={tuples}", f"--path_gpmm={h5}", f"--checkpoint_dir={directory}",
                 "--continue_train", "--max_steps=12", "--save_freq=10"] + SMOKE)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "global_step 10" in done.stderr
    resumed = _rows(directory)
    assert [int(r["step"]) for r in resumed] == [11, 12]
    # Step 11's loss is the restored weights' (and the same batch: the data
    # order goes on); step 12's is after one update with the restored Adam
    # state. Step 11, the next step, is held to 1e-5 (issue 13). Two runs'
    # CPU gradients differ in the last bits, and after one update that can
    # move a depth-edge pixel of the warp (depth_loss moved 1e-5 relative in
    # one CI run), so step 12 is held to 1e-4.
    for row, uninterrupted, tolerance in zip(resumed, _rows(smoke)[10:12], (1e-5, 1e-4)):
        assert row["step"] == uninterrupted["step"]
        for name, value in row.items():
            if value:
                assert abs(float(value) - float(uninterrupted[name])) <= tolerance * max(
                    1.0, abs(float(value))), (row["step"], name, value, uninterrupted[name])


def test_nan_stops_and_keeps_the_last_checkpoint(smoke, tuples, h5, tmp_path):
    import tensorflow as tf
    directory = str(tmp_path / "nan")
    _from_model_10(smoke, directory)
    # a learning rate that makes the weights overflow after one update
    done = _run([f"--dataset_dir={tuples}", f"--path_gpmm={h5}", f"--checkpoint_dir={directory}",
                 "--continue_train", "--max_steps=14", "--save_freq=100",
                 "--learning_rate=1e37"] + SMOKE)
    assert done.returncode == 1, done.stderr[-3000:]
    message = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1 and re.search(r"step 1[1-4]: the loss \w+ is", message[0]), message
    assert os.path.basename(tf.train.latest_checkpoint(directory)) == "model-10"


_SAVER = """
import sys, numpy as np
from mgc.train import checkpoints
big = np.ones([64, 1024, 1024], np.float32)
step = 1
while True:
    checkpoints.save(sys.argv[1], step, {"resnet_v1_50/x": big * step, "global_step": np.int32(step)},
                     max_to_keep=2)
    print(step, flush=True)
    step += 1
"""


def test_checkpoint_killed_while_saving_leaves_the_previous(tmp_path):
    import tensorflow as tf
    from mgc.train import checkpoints
    directory = str(tmp_path / "ckpt")
    saver = subprocess.Popen([sys.executable, "-c", _SAVER, directory], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        saver.stdout.readline()                      # step 1 is complete
        time.sleep(0.7)                              # most likely in the middle of a save
    finally:
        saver.send_signal(signal.SIGKILL)
        saver.wait()
    prefix = tf.train.latest_checkpoint(directory)
    step = checkpoints.step_of(prefix)
    values = checkpoints.read(prefix)
    assert int(values["global_step"]) == step
    assert float(values["resnet_v1_50/x"][0, 0, 0]) == step
    # a temporary left by the kill is ignored, then cleaned by the next save
    with open(os.path.join(directory, ".model-99.tmp-7.index"), "w") as stream:
        stream.write("cut off")
    assert tf.train.latest_checkpoint(directory) == prefix
    checkpoints.save(directory, step + 1, {"global_step": np.int32(step + 1)})
    assert checkpoints.step_of(tf.train.latest_checkpoint(directory)) == step + 1
    assert not [n for n in os.listdir(directory) if ".tmp-" in n]


def test_setup_errors_are_one_line(tuples, h5, tmp_path):
    cases = [
        [f"--dataset_dir={tmp_path}/none", f"--path_gpmm={h5}", f"--checkpoint_dir={tmp_path}/a"],
        [f"--dataset_dir={tuples}", f"--path_gpmm={h5}", f"--checkpoint_dir={tmp_path}/b",
         "--gpmm_id_loss_weight=0.2"],
        [f"--dataset_dir={tuples}", f"--path_gpmm={h5}", f"--checkpoint_dir={tmp_path}/c",
         "--continue_train"],
        [f"--dataset_dir={tuples}", f"--path_gpmm={h5}", f"--checkpoint_dir={tmp_path}/d",
         "--ckpt_face_pretrain=/nonexistent/ckpt"],
    ]
    for args in cases:
        done = _run(args + ["--max_steps=1", "--min_steps=0"])
        assert done.returncode == 2, (args, done.stderr[-2000:])
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, (args, done.stderr[-2000:])


def _free_ports(count):
    import socket
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_loopback_agree(tuples, h5, tmp_path):
    """MultiWorkerMirroredStrategy from TF_CONFIG: two processes, global batch 2
    (one tuple each), 2 steps; worker 0 writes the checkpoint, worker 1 its copy."""
    import json
    from mgc.train import checkpoints
    directory = str(tmp_path / "workers")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "experiments.train", f"--dataset_dir={tuples}",
             f"--path_gpmm={h5}", f"--checkpoint_dir={directory}", "--max_steps=2",
             "--save_freq=2", "--preset=documented", "--gpmm_id_loss_weight=0",
             "--batch_size=2", "--min_steps=0", "--summary_freq=1"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    try:
        errors = [p.communicate(timeout=400)[1] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in processes] == [0, 0], [e[-2000:] for e in errors]
    assert sorted(n for n in os.listdir(directory) if n.startswith("model-")) == [
        "model-2.data-00000-of-00001", "model-2.index"]
    chief = checkpoints.read(checkpoints.latest(directory))
    other = checkpoints.read(os.path.join(directory, "worker_1", "model-2"))
    assert sorted(chief) == sorted(other)
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    assert int(chief["global_step"]) == 2
    assert [int(r["step"]) for r in _rows(directory)] == [1, 2]


def test_mirrored_replicas_reproduce_the_one_device_step(h5):
    """MirroredStrategy over two logical CPUs, one tuple a replica: the
    losses reduced across replicas and the weights after two Adam steps are
    those of the same global batch on one device (the original's batch mean)."""
    import json
    from mgc import paths
    done = subprocess.run([sys.executable, "-m", "tests.mirrored_step_check", h5,
                           paths.data_root()], cwd=REPO, capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout)
    one, mirrored = runs["one_device"], runs["mirrored"]
    assert (one["replicas"], mirrored["replicas"]) == (1, 2)
    for step, (a, b) in enumerate(zip(one["losses"], mirrored["losses"]), start=1):
        assert sorted(a) == sorted(b)
        for name in a:
            # float32 sums in another order: relative 1e-5; the depth term
            # subtracts depths of about 5000 mm that agree to a few mm, so
            # its rounding is about 1000 times larger (without the whole
            # batch's gating it would be half the one-device value).
            rel = 1e-3 if name == "depth_loss" else 1e-5
            assert b[name] == pytest.approx(a[name], rel=rel, abs=1e-7), (step, name)
    assert one["losses"][0]["total_loss"] != one["losses"][1]["total_loss"]  # it trained
    for name, values in one["weights"].items():
        # Adam divides by sqrt(v): a gradient summed in another order moves a
        # weight by up to about lr (1e-4) times its relative difference.
        np.testing.assert_allclose(mirrored["weights"][name], values, rtol=0, atol=1e-6,
                                   err_msg=name)
