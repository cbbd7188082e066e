"""What every profile must satisfy, whatever the machine's speed."""

from __future__ import annotations

import pytest


def check_bookkeeping(p, groups):
    """Every kernel of explain's, in its order, timed once a step; shares add up."""
    assert [k.kernel for k in p.kernels] == [g.kernel for g in groups]
    assert [k.nodes for k in p.kernels] == [g.nodes for g in groups]
    for k, g in zip(p.kernels, groups):
        assert k.median_ms > 0 and k.q1_ms <= k.median_ms <= k.q3_ms
        assert k.calls == 1
        assert k.lines == g.lines and k.ops == g.ops
        assert k.bound in ("compute", "memory") and k.roofline >= 0
        assert k.bytes > 0
    assert sum(k.share for k in p.kernels) + p.host.share == pytest.approx(1, abs=1e-3)
    assert p.kernel_ms == pytest.approx(sum(k.median_ms for k in p.kernels), abs=1e-5)
    assert p.roofs.peak_gflops > 0 and p.roofs.bandwidth_gbs > 0
    assert len(p.trace()) == p.repeats * len(p.kernels)
