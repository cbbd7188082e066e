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
