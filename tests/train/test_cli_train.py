"""`cnnc train`: run directory, resume after SIGKILL and Ctrl-C, NaN stop, bad data."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cnnc import data

MODEL = """
model small {
    input(28, 28, 1)
    conv2d(4, kernel=3, activation=relu)
    maxpool2d(2)
    dropout(0.2)
    flatten()
    dense(10, activation=softmax)
}
train small {
    data = "digits.npz"
    loss = sparse_categorical_crossentropy
    optimizer = adam(learning_rate=0.002)
    batch_size = 8
    epochs = 6
    seed = 3
}
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    (root / "small.cnn").write_text(MODEL)
    ds = data.embedded_mnist()
    np.savez(root / "digits.npz", x_train=(ds.x_train[:1600] * 255).astype(np.uint8)[..., 0],
             y_train=ds.y_train[:1600], x_test=(ds.x_test[:400] * 255).astype(np.uint8)[..., 0],
             y_test=ds.y_test[:400])
    return root


def cnnc(workdir, *args, **kw):
    return subprocess.Popen([sys.executable, "-m", "cnnc", "train", "small.cnn", "--quiet",
                             *args], cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def finish(proc, timeout=900):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def reference(workdir):
    code, out, err = finish(cnnc(workdir, "-o", "runs/reference"))
    assert code == 0, err[-3000:]
    return workdir / "runs/reference", out


def weights(run_dir):
    with np.load(run_dir / "weights.npz") as f:
        return {k: f[k] for k in f.files}


def test_run_directory_and_output(reference):
    run_dir, out = reference
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("epoch")] == \
        [f"epoch {i}/6" for i in range(1, 7)]
    assert any(line.startswith("test: loss") for line in lines)
    history = json.loads((run_dir / "history.json").read_text())
    assert history["epoch"] == list(range(6))
    assert len(history["history"]["loss"]) == 6 and "test_accuracy" in history["history"]
    assert (run_dir / "checkpoint.npz").exists()
    assert history["history"]["accuracy"][-1] > 0.6


def wait_for(path, proc, timeout=600):
    start = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - start < timeout
        time.sleep(0.05)


def test_resume_after_sigkill_is_exact(workdir, reference):
    run_dir = workdir / "runs/killed"
    proc = cnnc(workdir, "-o", "runs/killed")
    wait_for(run_dir / "checkpoint.npz", proc)          # epoch 1 done: kill in epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "weights.npz").exists()
    code, out, err = finish(cnnc(workdir, "--resume", "runs/killed"))
    assert code == 0, err[-3000:]
    final, ref = weights(run_dir), weights(reference[0])
    assert final.keys() == ref.keys()
    for name in ref:
        assert np.array_equal(final[name], ref[name]), name
    resumed = json.loads((run_dir / "history.json").read_text())["history"]
    expected = json.loads((reference[0] / "history.json").read_text())["history"]
    assert resumed == expected


def checkpoint_epoch(run_dir) -> int:
    """The epoch a checkpoint stands in (0-based)."""
    with np.load(run_dir / "checkpoint.npz") as f:
        return json.loads(f["meta"].tobytes().decode("utf-8"))["epoch"]


def test_ctrl_c_writes_a_checkpoint_and_resume_is_exact(workdir, reference):
    """Deterministic: the interrupted run is given epochs it cannot finish, so the
    interrupt always lands; the resumed run then ends where a reference ends -- the
    six-epoch one, or (should the interrupt come later than that) one as long."""
    run_dir = workdir / "runs/interrupted"
    proc = cnnc(workdir, "-o", "runs/interrupted", "--epochs", "1000000")
    wait_for(run_dir / "checkpoint.npz", proc)
    first = (run_dir / "checkpoint.npz").stat().st_mtime_ns
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc)
    assert code == 130, err[-3000:]
    assert "interrupted: checkpoint written" in out
    assert (run_dir / "checkpoint.npz").stat().st_mtime_ns > first
    assert not (run_dir / "weights.npz").exists()
    epochs = max(6, checkpoint_epoch(run_dir) + 1)
    ref_dir = reference[0]
    if epochs > 6:
        ref_dir = workdir / f"runs/reference_{epochs}"
        assert finish(cnnc(workdir, "-o", str(ref_dir.relative_to(workdir)), "--epochs",
                           str(epochs)))[0] == 0
    code, out, err = finish(cnnc(workdir, "--resume", "runs/interrupted", "--epochs",
                                 str(epochs)))
    assert code == 0, err[-3000:]
    final, ref = weights(run_dir), weights(ref_dir)
    assert final.keys() == ref.keys()
    for name in ref:
        assert np.array_equal(final[name], ref[name]), name
    resumed = json.loads((run_dir / "history.json").read_text())["history"]
    expected = json.loads((ref_dir / "history.json").read_text())["history"]
    assert resumed == expected


def test_nan_loss_stops_with_a_message(workdir):
    (workdir / "unstable.cnn").write_text(MODEL.replace("adam(learning_rate=0.002)",
                                                        "sgd(learning_rate=1e+30)"))
    proc = subprocess.run([sys.executable, "-m", "cnnc", "train", "unstable.cnn", "--quiet",
                           "-o", "runs/unstable"], cwd=workdir, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 1
    assert "cnnc: error: the loss became" in proc.stderr and "Traceback" not in proc.stderr
    assert not (workdir / "runs/unstable/weights.npz").exists()


@pytest.mark.parametrize("defect, message", [
    ("missing", "no such file"),
    ("labels", "1,600 labels for 1,599 images"),
    ("size", "train images are (27, 28, 1), the model expects (28, 28, 1)"),
])
def test_bad_data_is_refused_and_nothing_written(workdir, defect, message):
    with np.load(workdir / "digits.npz") as f:
        arrays = {k: f[k] for k in f.files}
    path = workdir / f"bad_{defect}.npz"
    if defect == "labels":
        arrays["x_train"] = arrays["x_train"][:-1]
    if defect == "size":
        arrays["x_train"] = arrays["x_train"][:, :27]
    if defect != "missing":
        np.savez(path, **arrays)
    proc = subprocess.run([sys.executable, "-m", "cnnc", "train", "small.cnn", "--data",
                           str(path), "-o", f"runs/bad_{defect}"], cwd=workdir,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{path}: error: {message}"
    assert not (workdir / f"runs/bad_{defect}").exists()


def test_plot_curves(workdir, reference, tmp_path):
    from cnnc.runtime.fit import History
    from cnnc.reports.plot import plot_history
    history = json.loads((reference[0] / "history.json").read_text())
    out = tmp_path / "curves.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(cnnc_errors().CnncRuntimeError, match="needs matplotlib"):
            plot_history(History(history["history"], history["epoch"]), out)
        return
    plot_history(History(history["history"], history["epoch"]), out)
    assert out.read_bytes().startswith(b"\x89PNG")


def cnnc_errors():
    import cnnc.errors
    return cnnc.errors
