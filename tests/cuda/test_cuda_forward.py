"""The CUDA target's inference kernels: what the op table's cases (tests/ops, run on
every target) do not show -- pooling in the convolution's registers, split reductions,
folded batchnorm on the device, the same kernel groups as the CPU target.

On a GPU when there is one, else in Numba's CUDA simulator (tests/conftest.py decides):
the same tests either way. Shapes are small because the simulator runs each GPU thread's
code as Python (tests/tools/simulator.py); tests/cuda/test_ptx.py compiles the kernels of
the example models (the large tile shapes) for real.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnc
from conftest import EXAMPLES
from helpers import compare


def cuda_compare(text: str, fuse: str = "all", batches=(1, 3), seed: int = 0):
    return compare(text, fuse=fuse, batches=batches, seed=seed, target="cuda")


@pytest.mark.parametrize("pool", ["maxpool2d(2)", "avgpool2d(2, padding=same)",
                                  "maxpool2d(3, strides=3, padding=same)"])
def test_conv_with_pool_in_the_epilogue(pool):
    """conv2d + bias + relu + pooling as one kernel (the pool rule takes windows that do
    not overlap): the tile is computed once per pool tap and pooled in registers; on a
    7x8 map `same` windows are clipped (an average over fewer positions)."""
    model = cuda_compare(f"model m {{ input(7, 8, 3) conv2d(5, kernel=3, padding=same, "
                         f"activation=relu) {pool} }}")
    assert model.module.forward_device.__code__.co_names.count(
        f"conv2d_bias_relu_{pool[:7]}_fwd") == 1


def test_dense_split_over_slices():
    """A long reduction (600 inputs) at a small batch splits into slices summed by
    separate blocks, then added in order with the epilogue (softmax over 20 units: a
    row reduced across a block of threads)."""
    model = cuda_compare("model m { input(10, 10, 6) flatten() dense(20, "
                         "activation=softmax) }", batches=(2,))
    tiles, k_tiles = 1, 600 // 16               # one 64x32 output tile; 16 inputs a step
    assert model.module.split_k(tiles, k_tiles)[0] > 1


def test_batchnorm_folded_on_the_device():
    """Folded batchnorm: the derived kernel and bias are computed by device kernels."""
    model = cuda_compare("model m { input(6, 6, 3) maxpool2d(2) batchnorm() conv2d(4, "
                         "kernel=3, use_bias=false) batchnorm(epsilon=0.01) flatten() "
                         "dense(5) batchnorm() }", fuse="none")
    assert "bn_scale_prepare[" in model.source and "fold_shift_prepare[" in model.source


def test_softmax_is_stable_for_large_logits():
    model = cnnc.compile("model m { input(1, 1, 2) flatten() dense(3, activation=softmax) }",
                         "cuda")
    model.set_params({"dense/kernel": np.array([[1000, 0, -1000], [0, 0, 0]], np.float32),
                      "dense/bias": np.zeros(3, np.float32)})
    y = model.predict(np.array([[[[1.0, 0.0]]], [[[-1.0, 0.0]]]], np.float32))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [[1, 0, 0], [0, 0, 1]], atol=1e-6)


def test_fused_groups_are_the_cpu_targets():
    """The same kernel groups on both targets: the passes differ only in pack_kernels,
    which fuses nothing."""
    from cnnc.compiler import lower
    pack_ops = ("pack_conv_panels", "pack_ihwo", "pack_panels", "pack_panels_t")
    text = (EXAMPLES / "resnet_tiny.cnn").read_text()
    for fuse in ("all", "none"):
        groups = {t: [[m.name for m in (n.body or (n,))] for n in
                      lower(text, target=t, fuse=fuse).graph.nodes
                      if n.op not in pack_ops]
                  for t in ("cpu", "cuda")}
        assert groups["cpu"] == groups["cuda"]
