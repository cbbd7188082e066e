"""The machine code of the CPU micro-kernel: what its form in the preamble promises."""

from __future__ import annotations

import re

import numpy as np
import pytest

import cnnc
from cnnc.runtime.cpu_features import vector_bits

pytestmark = pytest.mark.skipif(vector_bits() != 512,
                                reason="the tiles' form is chosen for AVX-512 vectors")

# 16 channels in and out: in-place convolutions with register tiles of one vector of 16
# channels: 12 columns over a 3x3 kernel's rows (fma_tile_taps), 6 over a 1x1 kernel's
# taps (fma_tile_strided)
SOURCE = "model t {\n    input(12, 12, 16)\n    conv2d(16, kernel=3, padding=same)\n}\n"
POINTWISE = "model t {\n    input(12, 12, 16)\n    conv2d(16, kernel=1)\n}\n"


def _kernel_asm(source, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path))
    model = cnnc.compile(source)
    model.predict(np.zeros((2, 12, 12, 16), dtype=np.float32))
    return "\n".join(model.module.conv2d_bias_fwd.inspect_asm().values())


def _loops(asm: str) -> list[list[str]]:
    """The asm's basic blocks that branch back to themselves (innermost loops)."""
    blocks, label, body = [], None, []
    for line in asm.splitlines():
        found = re.match(r"^(\.LBB\w+):", line)
        if found:
            label, body = found.group(1), []
            continue
        body.append(line.strip())
        if label and re.match(rf"j\w+\s+{re.escape(label)}$", body[-1]):
            blocks.append(body)
    return blocks


def test_one_vector_tiles_broadcast_from_one_pointer(tmp_path, monkeypatch):
    """Each FMA of a one-vector tile reads its broadcast operand at one register plus a
    displacement, never base + index (two issue slots per FMA on Intel cores)."""
    asm = _kernel_asm(POINTWISE, tmp_path, monkeypatch)
    operands = re.findall(r"vfmadd231ps\s+([^{\s]*)\{1to16\}", asm)
    assert len(operands) >= 6, asm[-2000:]           # a row of the tile each, at least
    assert all(re.fullmatch(r"-?\d*\(%\w+\)", op) for op in operands), operands


def test_tap_tiles_broadcast_each_column_once(tmp_path, monkeypatch):
    """A 3x3 convolution's tile of 12 columns takes a kernel row's 3 taps at once: per
    input channel, 36 FMAs on 512-bit registers, the 3 taps' rows of the panel loaded
    once and the 14 input columns under the tile broadcast once each (one pointer plus a
    displacement), nothing stored."""
    loops = _loops(_kernel_asm(SOURCE, tmp_path, monkeypatch))
    body = max(loops, key=lambda lines: sum(x.startswith("vfmadd") for x in lines))
    fmas = [x for x in body if x.startswith("vfmadd")]
    assert len(fmas) == 36 and all("zmm" in x for x in fmas), body
    broadcasts = [x for x in body if x.startswith("vbroadcastss")] + \
        [x for x in fmas if "{1to16}" in x]
    assert len(broadcasts) == 14, body
    assert all(re.search(r"\s-?\d*\(%\w+\)", x) for x in broadcasts), broadcasts
    loads = [x for x in body if re.match(r"vmovups\s+-?\d*\(", x)]
    assert len(loads) == 3, body
    assert not [x for x in body if re.match(r"vmov\w+\s+%\w+,\s*-?\d*\(", x)], body


def test_tap_tile_sums_match_float64(tmp_path, monkeypatch):
    """fma_tile_taps over two kernel rows of 3 taps, rows 2 columns apart (a stride of 2),
    on a tile one element into a heap array: the sums numpy computes in float64, and the
    differential tests run the interpreter's stand-in."""
    from numba import njit

    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path))
    module = cnnc.compile(SOURCE).module
    fma_tile_taps = module.fma_tile_taps
    cin, nr, rows, taps = 4, 32, 5, 3
    # a: two input rows of 16 columns x cin; b: the panel (2 * taps * cin, nr)
    rng = np.random.default_rng(0)
    a = rng.standard_normal(2 * 16 * cin, dtype=np.float32)
    b = rng.standard_normal((2 * taps * cin, nr), dtype=np.float32)

    @njit
    def tile(acc, a, b, first, second):
        # rows, row_step (2 * cin), taps and tap_step (cin) literal
        fma_tile_taps(acc[1:6], 32, a, (first, second), 5, 8, 3, 4, 1,
                      b, 0, nr, cin * nr, taps * cin * nr, cin, 0)

    heap = np.zeros(1 + 6 * nr, dtype=np.float32)
    acc = heap[1:].reshape(6, nr)
    tile(acc, a, b, 0, 16 * cin)
    image = a.reshape(2, 16, cin).astype(np.float64)
    kernel = b.reshape(2, taps, cin, nr).astype(np.float64)
    want = np.zeros((6, nr))
    for r in range(rows):
        want[1 + r] = np.einsum("ksc,kscj->j", image[:, 2 * r:2 * r + taps], kernel)
    np.testing.assert_allclose(acc, want, rtol=1e-5, atol=1e-5)


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


def test_a_tap_tile_fits_the_registers(tmp_path, monkeypatch):
    """A 1x17 kernel's tap tile over 32 columns takes 8 rows, not the 16 a one-vector tap
    tile may take: 16 sums, 17 taps' rows and a broadcast would need 34 of the 32 vector
    registers, and the inner loop would spill them to the stack."""
    source = "model t {\n    input(4, 32, 16)\n    conv2d(16, kernel=(1, 17), padding=same)\n}\n"
    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path))
    model = cnnc.compile(source)
    model.predict(np.zeros((2, 4, 32, 16), dtype=np.float32))
    loops = _loops("\n".join(model.module.conv2d_bias_fwd.inspect_asm().values()))
    body = max(loops, key=lambda lines: sum(x.startswith("vfmadd") for x in lines))
    assert sum(x.startswith("vfmadd") for x in body) == 8 * 17, body
    assert not [x for x in body if "(%rsp)" in x], body
