"""Run a model exported to ONNX in onnxruntime and compare it with cnnc's predict.

Tolerance: TOL = 1e-5, absolute, on float32 outputs of order 1 (random_params keeps
activations O(1): weights of scale 0.5 / sqrt(fan_in)). Both sides compute in float32
from the *same* float32 weights -- folded batchnorm included, computed by the op table's
own numpy expressions -- so they differ only by the order of the sums: a dot product of
K terms of size ~1 rounds differently by about sqrt(K) * 2^-24 ~ 1e-6 for K in the
hundreds to thousands (these models' reductions), and a few layers do not add an order
of magnitude. Any real export error -- a permuted flatten, a pad on the wrong side, a
count including padding, a wrong alpha -- is of order 1e-2 or more.
"""

from __future__ import annotations

import numpy as np

import cnnc
from oracles import torch_ref

TOL = 1e-5
BATCHES = (1, 3)          # 1 and 3: the batch dimension is dynamic


def session(proto):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def run_onnx(proto, x: np.ndarray, layout: str) -> np.ndarray:
    """The ONNX model on NHWC `x` (transposed to NCHW for layout nchw), its output back in
    NHWC."""
    s = session(proto)
    feed = x if layout == "nhwc" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    (y,) = s.run(None, {s.get_inputs()[0].name: feed})
    if layout == "nchw" and y.ndim == 4:
        y = y.transpose(0, 2, 3, 1)
    return y


def compare_onnx(text: str, *, fuse="all", seed: int = 0, compiled=None,
                 layouts=("nhwc", "nchw"), batches=BATCHES, tol=TOL) -> float:
    """Compile `text`, set random non-trivial parameters (moving statistics included),
    export in each layout and compare onnxruntime with predict at each batch size.
    Returns the largest error; AssertionError when one exceeds `tol`."""
    from cnnc.export.onnx import to_onnx
    model = compiled or cnnc.compile(text, fuse=fuse)
    params = torch_ref.random_params(model.model, seed)
    model.set_params(params)
    rng = np.random.default_rng(seed + 1)
    worst = 0.0
    xs = [rng.normal(size=(b,) + model.input_shape).astype(np.float32) for b in batches]
    expected = [model.predict(x) for x in xs]
    for layout in layouts:
        proto = to_onnx(model.model, model.params, layout)
        for x, want in zip(xs, expected):
            got = run_onnx(proto, x, layout)
            assert got.shape == want.shape, (layout, got.shape, want.shape)
            err = float(np.max(np.abs(got - want)))
            assert err <= tol, f"{layout}, batch {len(x)}: max abs error {err:.3g} > " \
                               f"{tol}\n{text}"
            worst = max(worst, err)
    return worst


# Models the export tests name (tests/export/test_onnx.py checks their ONNX graphs); the
# check tool runs them against predict with the op table's cases.
FLATTEN = """model f {
    input(4, 5, 3)
    conv2d(6, kernel=(2, 3), padding=same)
    flatten()
    dense(7)
}"""
# TF's `same`: a 6x7 input, a 3x3 window and strides 2 pad 0 top, 1 bottom, 1 left and
# 1 right (docs/language.md's example); then padded average and max pooling
PADS = ("model p { input(6, 7, 2) conv2d(2, kernel=3, strides=2, padding=same) "
        "avgpool2d(2, strides=1, padding=same) maxpool2d(3, strides=2, padding=same) }")
# batchnorm after pooling (not folded: BatchNormalization), after a bias-free conv2d
# (folded, its shift becomes the Conv's bias), after flatten (not folded, on a flat
# tensor), after dense (folded)
BATCHNORM = ("model b { input(6, 6, 3) maxpool2d(2) batchnorm(epsilon=0.25) "
             "conv2d(4, kernel=3, use_bias=false) batchnorm(epsilon=0.01) flatten() "
             "batchnorm(epsilon=0.5) dense(2) batchnorm() }")
EXTRA = {"flatten-order": FLATTEN, "same-pads": PADS, "batchnorm": BATCHNORM,
         # no node left at inference: the output is the input (an Identity, or the two
         # transposes of the NHWC layout)
         "input-only": "model m { input(4, 4, 2) dropout(0.5) }",
         # residual blocks reading the graph's input, a batchnorm after a conv whose
         # output is read by the add as well (not folded), global max pooling
         "residual-first": "model m { input(4, 4, 2) residual { activation(relu) } "
                           "residual { conv2d(2, kernel=3, padding=same) batchnorm() } "
                           "global_maxpool2d() }"}
