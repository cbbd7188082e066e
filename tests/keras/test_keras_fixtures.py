"""Every Keras fixture (made by real Keras, tests/fixtures/keras/) imported from each of its
sources -- .keras, Keras 3 .h5, tf.keras 2 .h5, code + .weights.h5 (Keras 3 and tf.keras 2)
and code + a tf.keras 2 weights-only .h5 -- predicts what Keras predicted within 1e-5."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnc
from cnnc import cli

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "keras"
TOL = 1e-5


def run_predictions(out: Path, jit: bool) -> dict[str, float]:
    env = dict(os.environ, **({} if jit else {"NUMBA_DISABLE_JIT": "1"}))
    result = subprocess.run([sys.executable, str(HERE / "_predict.py"), str(out)],
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    """All fixtures and sources at once, with the kernels run as Python (NUMBA_DISABLE_JIT)."""
    return run_predictions(tmp_path_factory.mktemp("weights"), jit=False)


@pytest.mark.long
def test_every_source_predicts_what_keras_predicted_compiled(tmp_path):
    """The same, with every imported model compiled (about a minute on 2 cores)."""
    errors = run_predictions(tmp_path, jit=True)
    assert len(errors) >= 20
    assert all(err <= TOL for err in errors.values()), errors


def _names():
    return sorted(p.name[:-len(".predictions.npz")] for p in FIXTURES.glob("*.predictions.npz"))


def test_there_are_fixtures():
    assert {"mnist_convnet", "conv_variants", "batchnorm", "pooling"} <= set(_names())


@pytest.mark.parametrize("name", _names())
def test_every_source_of_a_fixture_predicts_what_keras_predicted(predictions, name):
    cases = {case: err for case, err in predictions.items() if case.split(".")[0] == name}
    assert f"{name}.keras" in cases and f"{name}.h5" in cases
    assert f"{name}.py+{name}.weights.h5" in cases
    for case, err in cases.items():
        assert err <= TOL, (case, err)


def test_tf_keras_2_sources_are_covered(predictions):
    assert "mnist_convnet.tfkeras2.h5" in predictions
    assert "conv_variants.py+conv_variants.tfkeras2.weights.h5" in predictions
    assert "conv_variants.py+conv_variants.tfkeras2.legacy_weights.h5" in predictions


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """conv_variants.keras through `cnnc import`, compiled (JIT) once for this module."""
    out = tmp_path_factory.mktemp("cli") / "cv.cnn"
    assert cli.main(["import", str(FIXTURES / "conv_variants.keras"), "-o", str(out)]) == 0
    return out, cnnc.compile(out)


def test_the_command_writes_weights_that_load_weights_reads(imported):
    path, model = imported
    model.load_weights(path.with_suffix(".npz"))
    data = np.load(FIXTURES / "conv_variants.predictions.npz")
    np.testing.assert_allclose(model.predict(data["x"]), data["y"], atol=TOL, rtol=0)


def test_the_text_reads_like_a_hand_written_model(imported):
    text = imported[0].read_text()
    assert text.startswith("# Imported by cnnc")
    assert "(Keras 3.15.1)" in text.splitlines()[0] or "(Keras 3." in text.splitlines()[0]
    assert '    conv2d(6, kernel=(3, 1), dilation=2, use_bias=false, name="conv2d_1")' in text
    assert '    activation(leaky_relu, alpha=0.1, name="leaky_re_lu")' in text
    assert cnnc.parse(imported[0]).model().param_count == sum(
        a.size for a in np.load(imported[0].with_suffix(".npz")).values())
