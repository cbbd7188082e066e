"""Import every Keras fixture from every source it has and predict its inputs with cnnc;
prints one JSON object {case: largest absolute difference from Keras's predictions}.

Run by test_keras_fixtures.py in a subprocess with NUMBA_DISABLE_JIT=1 (the generated kernels
run as Python: every fixture and source in seconds, without a JIT compile each)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import cnnc

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "keras"


def cases():
    """(case name, model source, weights file or None, predictions file)."""
    for predictions in sorted(FIXTURES.glob("*.predictions.npz")):
        name = predictions.name[:-len(".predictions.npz")]
        for suffix in (".keras", ".h5", ".tfkeras2.h5"):
            if (FIXTURES / f"{name}{suffix}").is_file():
                yield f"{name}{suffix}", FIXTURES / f"{name}{suffix}", None, predictions
        for weights in (".weights.h5", ".tfkeras2.weights.h5", ".tfkeras2.legacy_weights.h5"):
            if (FIXTURES / f"{name}{weights}").is_file():
                yield (f"{name}.py+{name}{weights}", FIXTURES / f"{name}.py",
                       FIXTURES / f"{name}{weights}", predictions)


def predict(source, weights, predictions) -> float:
    result = cnnc.import_keras(source, weights=weights)
    model = cnnc.compile(result.text.split("\ntrain ")[0])      # the model block alone
    npz = Path(sys.argv[1]) / (result.model_name + "_" + Path(source).name + ".npz")
    np.savez(npz, **result.params)
    model.load_weights(npz)
    data = np.load(predictions)
    return float(np.abs(model.predict(data["x"]) - data["y"]).max())


if __name__ == "__main__":
    print(json.dumps({case: predict(*rest) for case, *rest in cases()}))
