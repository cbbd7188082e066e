"""The CPU preamble's array intrinsics (reshaped, aligned_empty, aligned_zeros) and the
host's aligned arrays: numpy's semantics, the promised alignment, and no leak."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_json
from numba import njit
from numba.core.errors import TypingError

import cnnc

SOURCE = "model t {\n    input(6, 6, 16)\n    conv2d(16, kernel=3, padding=same)\n}\n"
DENSE = ("model d {\n    input(4, 4, 3)\n    flatten()\n    dense(20, activation=relu)\n"
         "    dense(3)\n}\n")


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return cnnc.compile(SOURCE).module


def test_reshaped_is_numpys_reshape(module):
    """A view of the same memory in the new shape; a size that differs raises numpy's
    ValueError; an array that is not C-contiguous does not compile."""
    reshaped = module.reshaped

    @njit
    def views(a, rows):
        b = reshaped(a, (rows, 3, 4))
        b[1, 2, 3] = -1.0
        return b, reshaped(b, (rows * 12,))

    a = np.arange(24, dtype=np.float32)
    b, flat = views(a, 2)
    want = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    want[1, 2, 3] = -1.0
    np.testing.assert_array_equal(b, want)
    np.testing.assert_array_equal(flat, want.reshape(-1))
    assert a[23] == -1.0 and np.shares_memory(b, a) and np.shares_memory(flat, a)
    with pytest.raises(ValueError, match="total size of new array must be unchanged"):
        views(a, 3)
    with pytest.raises(TypingError):
        views(a[::2], 1)


@pytest.mark.parametrize("dtype", [np.float32, np.uint64, np.uint8])
def test_aligned_buffers_start_on_a_cache_line(module, dtype):
    """aligned_empty and aligned_zeros: np.empty's and np.zeros's arrays (shape, dtype,
    zeros), their data 64-byte aligned for every size; a negative size raises numpy's
    ValueError."""
    aligned_empty, aligned_zeros = module.aligned_empty, module.aligned_zeros

    @njit
    def make(n, m, dt):
        return aligned_empty((n, m), dt), aligned_zeros(n * m + 1, dt)

    for n, m in [(1, 1), (3, 5), (17, 33), (250, 129)]:
        empty, zeros = make(n, m, dtype)
        assert empty.shape == (n, m) and empty.dtype == dtype and empty.flags.c_contiguous
        assert zeros.shape == (n * m + 1,) and zeros.dtype == dtype
        assert not zeros.any()
        assert empty.ctypes.data % 64 == 0 and zeros.ctypes.data % 64 == 0
        empty[...] = 7                       # writable, and its own memory
        assert not np.shares_memory(empty, zeros)
    with pytest.raises(ValueError, match="negative dimensions are not allowed"):
        make(-2, 3, dtype)


LEAK = """
import json
import numpy as np
import cnnc
from numba import njit
from numba.core.runtime import rtsys
module = cnnc.compile(SOURCE).module
aligned_empty, aligned_zeros, reshaped = (module.aligned_empty, module.aligned_zeros,
                                          module.reshaped)

@njit
def churn(k):
    total = 0.0
    for i in range(k):
        a = aligned_zeros((i % 7 + 1, 16), np.float32)
        b = reshaped(aligned_empty(32, np.float32), (2, 16))
        b[...] = 1.0
        total += a.sum() + b.sum()
    return total, aligned_empty(3, np.float32)

churn(1)
before = rtsys.get_allocation_stats()
total, kept = churn(1000)
del kept
after = rtsys.get_allocation_stats()
print(json.dumps({"total": total, "alloc": after.alloc - before.alloc,
                  "free": after.free - before.free,
                  "mi_alloc": after.mi_alloc - before.mi_alloc,
                  "mi_free": after.mi_free - before.mi_free}))
"""


def test_the_buffers_are_freed(tmp_path):
    """2,001 arrays made and dropped (one returned to Python, then deleted): as many
    frees as allocations in Numba's runtime statistics."""
    out = run_json(f"SOURCE = {SOURCE!r}\n" + LEAK, tmp_path / "cache", NUMBA_NRT_STATS="1")
    assert out["total"] == 1000 * 32.0
    assert out["alloc"] == out["free"] == 2001
    assert out["mi_alloc"] == out["mi_free"] == 2001


def test_workspaces_and_packed_kernels_start_on_a_cache_line(tmp_path, monkeypatch):
    """The host's buffers the kernels read at full vector width: every workspace slot
    and every packed kernel of a prepared parameter set; host_aligned copies only an
    array that is not."""
    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path))
    module = cnnc.compile(DENSE).module
    for n in (1, 3, 256):
        slots = module._workspace_forward(n)
        assert slots and all(s.ctypes.data % 64 == 0 for s in slots)
    prepared = module.prepare(module.init_params(0))
    packed = [v for k, v in prepared.items() if k.endswith(":panels")]
    assert len(packed) == 2 and all(v.ctypes.data % 64 == 0 for v in packed)
    aligned = module.host_empty((5, 7))
    assert module.host_aligned(aligned) is aligned and aligned.ctypes.data % 64 == 0
    offset = module.host_empty(20)[1:]
    copy = module.host_aligned(offset)
    assert copy is not offset and copy.ctypes.data % 64 == 0
    np.testing.assert_array_equal(copy, offset)
