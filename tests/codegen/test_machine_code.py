"""The machine code of the CPU micro-kernel: what its form in the preamble promises."""

from __future__ import annotations

import re

import numpy as np
import pytest

import cnnc
from cnnc.runtime.cpu_features import vector_bits

pytestmark = pytest.mark.skipif(vector_bits() != 512,
                                reason="the tiles' form is chosen for AVX-512 vectors")

# 16 channels in and out: an in-place convolution with register tiles of 6 columns x one
# vector of 16 channels
SOURCE = "model t {\n    input(12, 12, 16)\n    conv2d(16, kernel=3, padding=same)\n}\n"


def test_one_vector_tiles_broadcast_from_one_pointer(tmp_path, monkeypatch):
    """Each FMA of a one-vector tile reads its broadcast operand at one register plus a
    displacement, never base + index (two issue slots per FMA on Intel cores)."""
    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path))
    model = cnnc.compile(SOURCE)
    model.predict(np.zeros((2, 12, 12, 16), dtype=np.float32))
    asm = "\n".join(model.module.conv2d_bias_fwd.inspect_asm().values())
    operands = re.findall(r"vfmadd231ps\s+([^{\s]*)\{1to16\}", asm)
    assert len(operands) >= 6, asm[-2000:]           # a row of the tile each, at least
    assert all(re.fullmatch(r"-?\d*\(%\w+\)", op) for op in operands), operands


def test_a_tile_may_be_any_view_of_a_heap_array(tmp_path, monkeypatch):
    """fma_tile reads and writes a tile that is not 64-byte aligned (a view one element
    into a heap array): the same sums as numpy's, where aligned vector moves would fault."""
    from numba import njit

    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path))
    module = cnnc.compile(SOURCE).module
    fma_tile, fma_tile_strided = module.fma_tile, module.fma_tile_strided

    @njit
    def tiles(acc, a, b, first, second):
        fma_tile(acc[1:3], 32, a, (first, second), 1, b, 0, 32, 4, 0)
        fma_tile_strided(acc[3:5], 32, a, first + 1, 2, 5, 1, b, 0, 32, 4, 0)

    rng = np.random.default_rng(0)
    a = rng.standard_normal(10, dtype=np.float32)
    b = rng.standard_normal(4 * 32, dtype=np.float32).reshape(4, 32)
    heap = np.zeros(1 + 6 * 32, dtype=np.float32)
    acc = heap[1:].reshape(6, 32)                      # 4 bytes past an allocation
    assert acc.ctypes.data % 64 != 0
    tiles(acc, a, b, 0, 5)
    rows = np.stack([a[0:4], a[5:9], a[1:5], a[6:10]]).astype(np.float64)
    want = np.zeros((6, 32))
    want[1:3] = rows[:2] @ b
    want[3:5] = rows[2:] @ b
    np.testing.assert_allclose(acc, want, rtol=1e-6, atol=1e-6)
