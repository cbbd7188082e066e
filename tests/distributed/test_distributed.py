"""Data-parallel training on MPI, with 2 ranks (mpiexec from the `mpi` extra).

The oracle is cnnc itself at one process: N ranks at batch B take exactly the samples,
and draw exactly the dropout masks, of one process at batch N * B, so their parameters
agree up to the order of the gradient sums (1e-5), and their histories agree.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="the mpi extra (mpi4py, mpich) is not installed")
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent) + os.pathsep +
                       os.environ.get("PATH", ""))
if MPIEXEC is None:
    pytest.skip("no mpiexec (the mpich package of the mpi extra)", allow_module_level=True)

WORKER = Path(__file__).with_name("worker.py")
ROOT = Path(__file__).resolve().parents[2]

DENSE = """
model d {
    input(6, 6, 1)
    flatten()
    dense(12, activation=relu)
    dropout(0.5)
    dense(4, activation=softmax)
}
train d {
    loss = categorical_crossentropy
    optimizer = %s
    seed = 5
}
"""

CONV = """
model c {
    input(8, 8, 1)
    conv2d(4, kernel=3, activation=relu)
    maxpool2d(2)
    dropout(0.25)
    flatten()
    dense(8, activation=relu)
    dropout(0.5)
    dense(4, activation=softmax)
}
train c {
    loss = categorical_crossentropy
    optimizer = %s
    seed = 11
}
"""

BATCHNORM = """
model b {
    input(6, 6, 2)
    conv2d(3, kernel=3, use_bias=false)
    batchnorm()
    activation(relu)
    flatten()
    dense(4, activation=softmax)
}
train b {
    loss = categorical_crossentropy
    optimizer = sgd(learning_rate=0.1)
}
"""


def env(**extra):
    out = dict(os.environ, **{"PYTHONPATH": str(ROOT), **extra})
    out.pop("NUMBA_NUM_THREADS", None)
    return out


def mpirun(ranks: int, *args, timeout=600):
    cmd = [MPIEXEC, "-n", str(ranks), sys.executable, *map(str, args)] if ranks > 1 else \
        [sys.executable, *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.parametrize("source, optimizer", [
    (DENSE, "sgd(learning_rate=0.1)"),
    (DENSE, "adam(learning_rate=0.01)"),
    (CONV, "adadelta(learning_rate=1.0)"),
])
def test_two_ranks_train_as_one_process_at_twice_the_batch(tmp_path, source, optimizer):
    """70 samples at a global batch of 16: 4 full steps and a last one of 6, split 3 + 3;
    two epochs, dropout on."""
    path = tmp_path / "m.cnn"
    path.write_text(source % optimizer)
    mpirun(1, WORKER, "fit", path, tmp_path / "one.npz", 16, 2)
    mpirun(2, WORKER, "fit", path, tmp_path / "two.npz", 8, 2)
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert sorted(one.files) == sorted(two.files)
    for key in one.files:
        if key.startswith("param/"):
            np.testing.assert_allclose(two[key], one[key], rtol=0, atol=1e-5, err_msg=key)
    np.testing.assert_allclose(two["history/loss"], one["history/loss"], rtol=1e-6)
    np.testing.assert_array_equal(two["history/accuracy"], one["history/accuracy"])
    # the parameters moved: the comparison is not of two untouched initializations
    assert not np.allclose(one["param/dense/kernel"], 0)


def test_cuda_ranks_use_a_gpu_each_and_train_as_one_process(tmp_path):
    """The CUDA target (in Numba's simulator without a GPU, at a tiny shape): rank r uses
    GPU r mod the GPUs visible; 2 ranks at 3 agree with one process at 6."""
    pytest.importorskip("numba.cuda")
    path = tmp_path / "m.cnn"
    path.write_text((DENSE % "sgd(learning_rate=0.1)").replace("input(6, 6, 1)",
                                                                "input(2, 2, 1)"))
    mpirun(1, WORKER, "fit", path, tmp_path / "one.npz", 6, 1, "cuda", 10)
    mpirun(2, WORKER, "fit", path, tmp_path / "two.npz", 3, 1, "cuda", 10)
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    for key in one.files:
        np.testing.assert_allclose(two[key], one[key], rtol=0, atol=1e-5, err_msg=key)


def test_without_dropout_masks_of_the_global_batch_the_ranks_would_differ(tmp_path):
    """The masks matter: keyed by the index within each rank's own batch (first = 0),
    two ranks draw other masks than one process at the global batch does."""
    import cnnc
    path = tmp_path / "m.cnn"
    path.write_text(DENSE % "sgd(learning_rate=0.1)")
    module = cnnc.compile(path).module
    whole = module.dropout_mask(123, 1, (16, 12), 0.5)
    np.testing.assert_array_equal(module.dropout_mask(123, 1, (8, 12), 0.5, first=8),
                                  whole[8:])
    assert not np.array_equal(module.dropout_mask(123, 1, (8, 12), 0.5), whole[8:])


def test_batchnorm_ranks_stay_identical_and_average_moving_statistics(tmp_path):
    path = tmp_path / "b.cnn"
    path.write_text(BATCHNORM)
    mpirun(2, WORKER, "batchnorm", path, tmp_path / "bn.npz", 5, 4)
    result = np.load(tmp_path / "bn.npz")
    assert int(result["steps"]) == 4
    assert float(result["worst"]) < 1e-6


# --- cnnc train --workers ---

def write_data(folder: Path, count: int) -> Path:
    rng = np.random.default_rng(3)
    x = rng.random((count + 40, 6, 6, 1), dtype=np.float32)
    y = (x[:, :3, :3, 0].mean(axis=(1, 2)) * 8).astype(np.int64) % 4
    path = folder / "data.npz"
    np.savez(path, x_train=x[:count], y_train=y[:count], x_test=x[count:], y_test=y[count:])
    return path


def train(folder: Path, *args, wait=True, **kw):
    cmd = [sys.executable, "-m", "cnnc", "train", "d.cnn", "--data", "data.npz", "--quiet",
           *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env(**kw))
    if not wait:
        return proc
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def weights(folder: Path) -> dict:
    with np.load(folder / "weights.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture
def run_folder(tmp_path):
    (tmp_path / "d.cnn").write_text(DENSE % "adam(learning_rate=0.01)")
    write_data(tmp_path, 6000)
    return tmp_path


def test_cli_workers_says_the_global_batch_and_writes_one_run(run_folder):
    code, out, err = train(run_folder, "--workers", 2, "--batch-size", 32, "--epochs", 1,
                           "-o", "run")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("data-parallel: 2 ranks x batch 32 = global batch 64")
    assert sum(line.startswith("epoch 1/1") for line in lines) == 1      # rank 0 alone
    assert "allreduce: 94 steps" in out and "MB per step" in out
    history = json.loads((run_folder / "run" / "history.json").read_text())
    assert len(history["timing"]["allreduce_seconds"]) == 1
    # the same run in one process at the global batch
    code, _, err = train(run_folder, "--batch-size", 64, "--epochs", 1, "-o", "one")
    assert code == 0, err
    one, two = weights(run_folder / "one"), weights(run_folder / "run")
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=0, atol=1e-5, err_msg=key)


def rank_pid(folder: Path, rank: int) -> int | None:
    """The pid of the `cnnc train` rank `rank` running in `folder`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if f"PMI_RANK={rank}".encode() in environ and cwd == str(folder) and \
                cmdline[1:4] == [b"-m", b"cnnc", b"train"]:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_killed_rank_stops_the_run_clearly_and_resume_finishes_it(run_folder):
    args = ("--workers", 2, "--batch-size", 4, "--epochs", 3)
    code, _, err = train(run_folder, *args, "-o", "whole")
    assert code == 0, err
    proc = train(run_folder, *args, "-o", "broken", wait=False)
    checkpoint = run_folder / "broken" / "checkpoint.npz"
    deadline = time.monotonic() + 300
    while not checkpoint.exists():                 # the end of epoch 1
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.2)                                # into epoch 2 (750 steps of 4 ms here)
    pid = rank_pid(run_folder, 1)
    assert pid is not None
    before = checkpoint.read_bytes()
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    out, err = proc.communicate(timeout=120)
    stopped = time.monotonic() - killed
    assert proc.returncode == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("cnnc: error: rank 1 of 2 died (killed by signal 9, SIGKILL)")
    assert "checkpoint.npz (epoch 2, batch 0), is intact" in lines[-1]
    assert "--resume" in lines[-1]
    assert "Traceback" not in err and "BAD TERMINATION" not in out + err
    assert stopped < 30, f"the run took {stopped:.1f} s to stop"
    assert checkpoint.read_bytes() == before       # intact
    assert "epoch 3/3" not in out
    code, out, err = train(run_folder, *args, "--resume", "broken")
    assert code == 0, err
    whole, resumed = weights(run_folder / "whole"), weights(run_folder / "broken")
    for key in whole:
        np.testing.assert_array_equal(resumed[key], whole[key], err_msg=key)


def test_resume_with_another_number_of_workers(run_folder):
    """The checkpoint holds global state: 2 ranks x 4 for an epoch, then 1 x 8."""
    code, _, err = train(run_folder, "--workers", 2, "--batch-size", 4, "--epochs", 1,
                         "-o", "run")
    assert code == 0, err
    code, _, err = train(run_folder, "--batch-size", 8, "--epochs", 2, "--resume", "run")
    assert code == 0, err
    code, _, err = train(run_folder, "--batch-size", 8, "--epochs", 2, "-o", "one")
    assert code == 0, err
    one, run = weights(run_folder / "one"), weights(run_folder / "run")
    for key in one:
        np.testing.assert_allclose(run[key], one[key], rtol=0, atol=1e-5, err_msg=key)


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    return lines[-1]


def test_bad_setups_get_one_clear_line(run_folder, tmp_path):
    code, _, err = train(run_folder, "--workers", 0)
    assert code == 2 and "--workers: expects a positive integer, got 0" in err
    write_data(run_folder, 1)                      # one sample for two workers
    code, _, err = train(run_folder, "--workers", 2, "-o", "few")
    assert code == 2
    assert one_error_line(err).endswith("2 workers for 1 training samples: each worker "
                                        "needs at least one")
    # MPI missing: an mpi4py that cannot load
    fake = tmp_path / "fake"
    (fake / "mpi4py").mkdir(parents=True)
    (fake / "mpi4py" / "__init__.py").write_text("raise ImportError('no MPI here')\n")
    proc = subprocess.run([sys.executable, "-m", "cnnc", "train", "d.cnn", "--data",
                           "data.npz", "--workers", "2"],
                          cwd=run_folder, capture_output=True, text=True,
                          env=env(PYTHONPATH=f"{fake}{os.pathsep}{ROOT}"))
    assert proc.returncode == 1
    assert "pip install 'cnnc[mpi]'" in one_error_line(proc.stderr)


def test_ranks_that_read_different_model_files_refuse_to_train(run_folder):
    (run_folder / "other.cnn").write_text((DENSE % "sgd").replace("dense(12", "dense(13"))
    rank = [sys.executable, "-m", "cnnc", "train", "--data", "data.npz", "--quiet"]
    proc = subprocess.run([MPIEXEC, "-n", "1", *rank, "d.cnn", ":", "-n", "1", *rank,
                           "other.cnn"], cwd=run_folder, capture_output=True, text=True,
                          env=env(), timeout=300)
    assert proc.returncode == 2
    assert one_error_line(proc.stderr).startswith(
        "cnnc: error: rank 1 of 2 has a different model file, model or data than rank 0")


def test_a_rank_that_stops_answering_is_noticed_within_the_timeout(run_folder):
    """A rank that hangs (stopped here with SIGSTOP: alive, so the MPI runtime sees
    nothing wrong) is noticed by the others: a rank waits at most --comm-timeout seconds
    in a collective, then stops with one line, exit 1."""
    rank = [sys.executable, "-m", "cnnc", "train", "d.cnn", "--data", "data.npz", "--quiet",
            "--batch-size", "4", "--epochs", "3", "--comm-timeout", "3", "-o", "run"]
    proc = subprocess.Popen([MPIEXEC, "-n", "2", *rank], cwd=run_folder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env())
    checkpoint = run_folder / "run" / "checkpoint.npz"
    deadline = time.monotonic() + 300
    while not checkpoint.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    pid = rank_pid(run_folder, 1)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    waited = time.monotonic() - stopped
    assert "cnnc: error: rank 0 of 2: no word from the other ranks for 3 s in step " \
        in one_error_line(err)
    assert 3 <= waited < 30
    assert "epoch 3/3" not in out
