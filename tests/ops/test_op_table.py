"""The op table's cases (tests/ops/table.py) on every target against PyTorch (float64).

CPU: compiled kernels (at -O1, see conftest). CUDA: on a GPU when there is one, else in
Numba's CUDA simulator; the same cases at smaller batches (oracles/tolerances.BATCHES),
half the convolution and pooling grid rows in CI and all of them with --long. The long
run adds the full configuration grids on the CPU.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

from cnnc.codegen.host import steps_of
from cnnc.compiler import lower
from cnnc.ir import ops
from helpers import compare, compare_gradients
from oracles.activations import TORCH_ACTIVATIONS
from oracles.tolerances import BATCHES
from ops import table

TARGETS = ("cpu", "cuda")


CASES = [pytest.param(case, target, id=f"{case.id}-{target}",
                      marks=[pytest.mark.long] if target in case.long_on else [])
         for case in table.FORWARD for target in TARGETS if case.jit or target != "cpu"]


@pytest.mark.parametrize("case, target", CASES)
def test_forward(case, target):
    batches = (case.batches or {}).get(target, BATCHES[target])
    compare(case.text, fuse=case.fuse, batches=batches, seed=case.seed, target=target)


def test_forward_without_jit(tmp_path):
    """The CPU cases marked jit=False, their kernels run as Python (tools/forward_check.py)."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", CNNC_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, str(ROOT / "tests/tools/forward_check.py"),
                             "--only", "activation-"], env=env, capture_output=True,
                            text=True, timeout=1200)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert not [r for r in records if not r["ok"]], result.stdout[-3000:]
    assert {r["case"] for r in records} >= {c.id for c in table.FORWARD if not c.jit}, \
        result.stderr[-3000:]


def test_every_activation_has_a_torch_reference_and_a_gradient():
    """An activation of cnnc's table is one row there plus one row in the oracles' table."""
    assert set(ops.activation_ops()) == set(TORCH_ACTIVATIONS)
    for name, op in ops.activation_ops().items():
        assert op.grad is not None, name
        if op.chainable:
            grad = ops.get(f"{name}_grad")
            assert grad.direction == ops.BACKWARD and grad.chainable, name
    assert {"gelu", "silu", "hard_sigmoid"} <= set(ops.activation_ops())


def test_every_activation_in_every_position():
    ids = {c.id for c in table.FORWARD}
    for variant in table.activation_variants():
        assert f"activation-{variant}" in ids
    names = {table.activation_name(v) for v in table.activation_variants()}
    assert names == set(ops.activation_ops())
    gradients = {name for name, *_ in table.gradient_activation_cases()}
    assert all(f"activation {v} fuse={f}" in gradients
               for v in table.activation_variants() for f in ("all", "none"))


@functools.cache
def _cpu_kernels() -> list:
    """The CPU kernels of every forward case (lowered once for the tests below)."""
    kernels = []
    for case in table.FORWARD:
        compiled = lower(case.text, fuse=case.fuse)
        kernels += [s.kernel for s in steps_of(compiled.graph, compiled.options.target)
                    if s.kind == "kernel"]
    return kernels


def test_the_cases_reach_every_inference_template():
    templates = {kernel.template for kernel in _cpu_kernels()}
    assert templates >= {"conv2d", "dense", "pool2d", "global_pool2d", "elementwise",
                         "softmax"}, templates


def test_the_cases_reach_every_cpu_convolution_schedule():
    """Each loop schedule of the CPU's conv2d template (targets/cpu_schedules.py) is
    computed by some forward case, so the torch comparisons cover every one of them."""
    schedules = set()
    for kernel in _cpu_kernels():
        if kernel.template == "conv2d":
            k = kernel.context
            detail = ("in place" if k.in_place else "flat" if k.flat else "rows") \
                if k.schedule == "gemm" else "pooled" if k.pool else ""
            schedules.add((k.schedule, detail))
    assert schedules >= {("gemm", "in place"), ("gemm", "flat"), ("gemm", "rows"),
                         ("window", "pooled"), ("block", ""), ("taps", ""),
                         ("cols", "")}, schedules


def test_conv_grid_is_pairwise_complete():
    assert 12 <= len(table.CONV_ROWS) <= 24
    for a in table.CONV:
        for b in table.CONV:
            if a < b:
                seen = {(r[a], r[b]) for r in table.CONV_ROWS}
                want = {(r[a], r[b]) for r in table.CONV_ALL}
                assert seen == want, (a, b, want - seen)


@pytest.mark.long
@pytest.mark.parametrize("row", table.CONV_ALL, ids=table.row_id)
def test_conv2d_full_grid(row):
    compare(table.conv_text(row, False), fuse="none")


@pytest.mark.long
@pytest.mark.parametrize("row", table.POOL_ALL, ids=table.row_id)
def test_pooling_full_grid(row):
    compare(table.pool_text(row), fuse="none")


def test_every_activation_gradient_compiled():
    """The gradients of every activation, compiled for the CPU (the JIT-free runs check the
    kernels' logic; this one that Numba types each gradient in float32)."""
    compare_gradients(table.stacked_activations("dense(3, activation=softmax)"), batch=3)
