"""`cnnc profile --target cuda`: kernel calls timed by CUDA events, roofs from the GPU.

On a GPU when there is one; else in Numba's CUDA simulator (tests/conftest.py), at a tiny
shape, where the events time nothing, the host clock stands in, and the figures mean
nothing: the test checks the bookkeeping only."""

from __future__ import annotations

import pytest

import cnnc
from cnnc.reports.explain import explain
from profile_checks import check_bookkeeping

pytest.importorskip("numba_cuda")

TINY = """
model tiny {
    input(4, 4, 1)
    conv2d(2, kernel=3, activation=relu)
    flatten()
    dense(2, activation=softmax)
}
"""


def test_cuda_profile_times_every_kernel():
    model = cnnc.compile(TINY, target="cuda")
    p = model.profile(batch=2, repeats=2)
    check_bookkeeping(p, explain(model.model, model.options.fusion, False).groups)
    assert p.target == "cuda" and p.timer == "CUDA events"
    from cnnc.runtime.cuda import simulated
    if simulated():
        assert any("simulator" in note for note in p.notes)
        assert "simulator" in p.roofs.device
