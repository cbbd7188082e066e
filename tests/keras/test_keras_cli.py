"""`cnnc import`: writes OUT.cnn (and OUT.npz with weights) atomically, nothing on error,
never over an input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

import cnnc
from cnnc import cli

from conftest import EXAMPLES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "keras"
CONVNET = EXAMPLES / "keras" / "mnist_convnet.py"


def run(capsys, *args) -> tuple[int, str]:
    status = cli.main(["import", *map(str, args)])
    return status, capsys.readouterr().err


def test_import_then_check(tmp_path):
    out = tmp_path / "m.cnn"
    for args in (["import", CONVNET, "-o", out], ["check", out]):
        result = subprocess.run([sys.executable, "-m", "cnnc", *map(str, args)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    assert "OK: sequential (34,826 params); train: sequential" in result.stdout
    assert not out.with_suffix(".npz").exists()
    text = out.read_text()
    assert text.startswith(f"# Imported by cnnc {cnnc.__version__} from {CONVNET} (Keras code")
    assert "    data             = mnist\n" in text and "epochs           = 15" in text


def test_with_weights_the_npz_beside_it_has_the_models_parameters(tmp_path, capsys):
    out = tmp_path / "m.cnn"
    status, err = run(capsys, CONVNET, "--weights", FIXTURES / "mnist_convnet.weights.h5",
                      "-o", out)
    assert status == 0, err
    assert "m.npz: 6 weights (34,826 parameters)" in err
    shapes = {p.name: p.shape for p in cnnc.parse(out).model().graph.params}
    with np.load(out.with_suffix(".npz")) as npz:
        assert {k: npz[k].shape for k in npz.files} == shapes


def test_the_define_option(tmp_path, capsys):
    classic = EXAMPLES / "keras" / "mnist_cnn_classic.py"
    status, err = run(capsys, classic, "-o", tmp_path / "c.cnn")
    assert status == 2 and err.rstrip().endswith("hint: give its value: --define num_classes=10")
    assert not (tmp_path / "c.cnn").exists()
    status, err = run(capsys, classic, "--define", "num_classes=10", "-o", tmp_path / "c.cnn")
    assert status == 0, err
    cnnc.parse(tmp_path / "c.cnn")
    status, err = run(capsys, classic, "--define", "num_classes=ten", "-o", tmp_path / "d.cnn")
    assert status == 2 and "is not a Python literal" in err


def test_nothing_is_written_on_error(tmp_path, capsys):
    out = tmp_path / "m.cnn"
    status, err = run(capsys, CONVNET, "--weights", FIXTURES / "conv_variants.weights.h5",
                      "-o", out)
    assert status == 2 and "conv_variants.weights.h5" in err
    assert list(tmp_path.iterdir()) == []


def test_an_output_equal_to_an_input_is_refused(tmp_path, capsys):
    code = tmp_path / "m.py"
    code.write_bytes(CONVNET.read_bytes())
    status, err = run(capsys, code, "-o", code)
    assert status == 2 and "no command writes over its own input" in err
    assert code.read_bytes() == CONVNET.read_bytes()
    weights = tmp_path / "w.npz"
    weights.write_bytes(b"x")
    status, err = run(capsys, code, "--weights", weights, "-o", tmp_path / "w.cnn")
    assert status == 2 and weights.read_bytes() == b"x"
    assert not (tmp_path / "w.cnn").exists()


def test_an_unknown_kind_of_file(tmp_path, capsys):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\0")
    status, err = run(capsys, path, "-o", tmp_path / "m.cnn")
    assert status == 2 and "expected Keras code (.py), a .keras file or an .h5 file" in err
