"""Checking labels against a model: the one set of rules the data loader (`cnnc train`'s
files) and the Python API (`fit`, `evaluate`, `gradients`) apply, with the same words.

Labels are class indices, shape (N,), or rows, shape (N, outputs). Class indices --
what a sparse categorical cross-entropy reads, and what becomes one-hot rows for a model
with several outputs -- must be whole numbers in 0..outputs-1; rows must be as wide as
the model's output. No label may be NaN or infinite, or anything but a number.
"""

from __future__ import annotations

import numpy as np


class LabelError(ValueError):
    """Labels that do not fit the model; the message says how (without saying where)."""


def check_labels(y, outputs: int, sparse: bool = False) -> np.ndarray:
    """`y` as an array, checked against a model with `outputs` outputs (`sparse`: the loss
    reads class indices). Raises LabelError."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise LabelError(f"must be numbers, found {y.dtype} values")
    if sparse and y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)                  # (N, 1) class indices, as Keras takes them
    if y.ndim not in (1, 2):
        raise LabelError(f"must be (N,) or (N, classes), found {y.shape}")
    if y.size and not np.all(np.isfinite(y)):
        raise LabelError("hold NaN or infinite values")
    if y.ndim == 2:
        if sparse:
            raise LabelError(f"must be class indices (N,) for sparse categorical "
                             f"cross-entropy, found rows {y.shape}")
        if y.shape[1] != outputs:
            raise LabelError(f"are rows of {y.shape[1]} values, the model has {outputs} "
                             f"outputs")
        return y
    if sparse or outputs > 1:              # class indices (to one-hot rows when not sparse)
        if y.size and y.dtype.kind == "f" and not np.all(y == np.floor(y)):
            bad = y[y != np.floor(y)][0]
            raise LabelError(f"are class indices and must be whole numbers, found {_num(bad)}")
        if y.size and (y.min() < 0 or y.max() >= outputs):
            raise LabelError(f"range over {_num(y.min())}..{_num(y.max())}, the model has "
                             f"{outputs} outputs")
    return y


def _num(v) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))
