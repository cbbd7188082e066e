"""Bad input to the commands is one clear line and exit 2, and nothing the user had is
overwritten or created by a failure; the machine's own failures are exit 1 and say what
they are. Each case here was an internal error, a wrong success or lost work before."""

from __future__ import annotations

import errno
import json
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from cnnc.cli import main

MODEL = """model m { input(6, 6, 1) flatten() dense(4, activation=softmax) }
train m { loss = sparse_categorical_crossentropy optimizer = sgd batch_size = 4 }
"""


@pytest.fixture
def work(tmp_path):
    (tmp_path / "m.cnn").write_text(MODEL)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.random((16, 6, 6)).astype(np.float32),
             y_train=rng.integers(0, 4, 16))
    return tmp_path


def cnnc(work, *args, timeout=300):
    result = subprocess.run([sys.executable, "-m", "cnnc", *args], cwd=work,
                            capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout, result.stderr


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    return lines[0]


@pytest.mark.parametrize("args", [["compile", "m.cnn", "-o", "m.cnn"],
                                  ["graph", "m.cnn", "-o", "m.cnn"],
                                  ["train", "m.cnn", "--data", "d.npz", "-o", "d.npz"],
                                  ["train", "m.cnn", "--data", "d.npz", "--plot", "m.cnn"]])
def test_no_command_writes_over_its_input(work, args):
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    code, out, err = cnnc(work, *args)
    assert code == 2 and "no command writes over its own input" in one_line(err)
    assert {p.name: p.read_bytes() for p in work.iterdir()} == before


@pytest.mark.parametrize("args, problem", [
    (["compile", "m.cnn", "-o", "."], "is a folder; a file is wanted here"),
    (["compile", "m.cnn", "-o", "m.cnn/out.py"], "is a file, not a folder"),
    (["train", "m.cnn", "--data", "d.npz", "-o", "taken"], "is a file; a folder is wanted"),
    (["train", "m.cnn", "--data", "d.npz", "-o", "taken/run"], "is a file, not a folder"),
])
def test_outputs_of_the_wrong_kind(work, args, problem):
    (work / "taken").write_text("keep me")
    code, out, err = cnnc(work, *args)
    assert code == 2 and problem in one_line(err)
    assert (work / "taken").read_text() == "keep me"


@pytest.mark.parametrize("flag, value, message", [
    ("--epochs", "-1", "expects a positive integer, got -1"),
    ("--epochs", "0", "expects a positive integer, got 0"),
    ("--batch-size", "0", "expects a positive integer, got 0"),
    ("--batch-size", "-5", "expects a positive integer, got -5"),
    ("--epochs", "two", "expects a positive integer, got 'two'"),
])
def test_counts_must_be_positive(work, flag, value, message):
    code, out, err = cnnc(work, "train", "m.cnn", "--data", "d.npz", flag, value)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (work / "runs").exists()


def test_resume_of_nothing_creates_nothing(work):
    code, out, err = cnnc(work, "train", "m.cnn", "--data", "d.npz", "--resume", "nowhere")
    assert code == 2 and "nothing to resume (no such folder)" in one_line(err)
    assert not (work / "nowhere").exists()


def _idx(path, kind, dims, body=b""):
    path.write_bytes(struct.pack(">HBB", 0, kind, len(dims)) +
                     struct.pack(f">{len(dims)}I", *dims) + body)


@pytest.mark.parametrize("name, make, message", [
    ("strings.npz", lambda w: np.savez(w / "strings.npz", x_train=np.zeros((4, 6, 6)),
                                       y_train=np.array(["a", "b", "c", "d"])),
     "train labels must be numbers"),
    ("nolabels.npz", lambda w: np.savez(w / "nolabels.npz", x_train=np.zeros((0, 6, 6)),
                                        y_train=np.zeros(0)), "holds no images"),
    ("nan.npz", lambda w: np.savez(w / "nan.npz", x_train=np.full((4, 6, 6), np.nan),
                                   y_train=np.zeros(4)), "images hold NaN or infinite"),
    ("rows.npz", lambda w: np.savez(w / "rows.npz", x_train=np.zeros((4, 6, 6)),
                                    y_train=np.zeros((4, 3))),
     "must be class indices (N,) for sparse"),
    ("text.npz", lambda w: (w / "text.npz").write_text("a,b\n1,2\n"),
     "not a valid .npz file (not a zip archive)"),
    ("idx", lambda w: (w / "idx").mkdir() or _idx(w / "idx/train-images-idx3-ubyte", 8,
                                                  (2**31, 6, 6)) or
     _idx(w / "idx/train-labels-idx1-ubyte", 8, (2**31,)), "the header promises"),
])
def test_bad_data_files(work, name, make, message):
    make(work)
    code, out, err = cnnc(work, "train", "m.cnn", "--data", name)
    assert code == 2 and message in one_line(err)


def test_a_weights_file_declaring_2_40_elements(work):
    import io
    import zipfile
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (2**20, 2**20)})
    with zipfile.ZipFile(work / "bomb.npz", "w") as z:
        z.writestr("dense/kernel.npy", buffer.getvalue() + b"\0" * 64)
    import cnnc as api
    from cnnc.errors import FileError
    model = api.compile(MODEL)
    with pytest.raises(FileError, match=r"'dense/kernel' declares shape \(1048576, 1048576\)"):
        model.load_weights(work / "bomb.npz")


def test_a_nan_loss_claims_no_checkpoint_that_is_not_there(work):
    (work / "m.cnn").write_text(MODEL.replace("optimizer = sgd",
                                              "optimizer = sgd(learning_rate=1e+30)"))
    np.savez(work / "huge.npz", x_train=np.full((16, 6, 6), 1e19, np.float32),
             y_train=np.arange(16) % 4)
    code, out, err = cnnc(work, "train", "m.cnn", "--data", "huge.npz", "--quiet")
    assert code == 1 and "the loss became" in one_line(err)
    assert "checkpoint" not in err and not (work / "runs/m/checkpoint.npz").exists()


def test_sigterm_writes_a_checkpoint_like_ctrl_c(work):
    rng = np.random.default_rng(1)
    np.savez(work / "big.npz", x_train=rng.random((4000, 6, 6)).astype(np.float32),
             y_train=rng.integers(0, 4, 4000))
    proc = subprocess.Popen([sys.executable, "-m", "cnnc", "train", "m.cnn", "--data",
                             "big.npz", "--epochs", "100000", "--quiet", "-o", "run"],
                            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    start = time.time()
    while not (work / "run/checkpoint.npz").exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() - start < 300
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-2000:]
    assert "terminated: checkpoint written" in out
    with np.load(work / "run/checkpoint.npz") as f:
        meta = json.loads(f["meta"].tobytes())
    assert meta["step"] > 0


@pytest.mark.parametrize("error, message", [
    (MemoryError(), "cnnc: error: out of memory"),
    (OSError(errno.ENOSPC, "No space left on device", "/tmp/x.py"),
     "cnnc: error: No space left on device: /tmp/x.py"),
])
def test_the_machines_failures_are_said_as_they_are(monkeypatch, capsys, error, message):
    import cnnc.cli as cli

    def fail(args):
        raise error
    monkeypatch.setattr(cli, "cmd_check", fail)
    assert main(["check", "x.cnn"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and "internal error" not in err
