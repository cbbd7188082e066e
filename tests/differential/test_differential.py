"""Differential testing against PyTorch: random models run through cnnc and through an
independent torch.nn translation (tests/tools/differential.py states the checks --
forward with fuse none and all, every gradient, one optimizer step -- and tolerances).

* 120 seeded tiny models with the JIT disabled, in a subprocess: the generated kernels
  run as Python, which checks the code generator's logic (about 35 seconds; the first 31
  seeds already use every entry of the catalogue below, its rarest entries occur in 2 or
  more of the 120);
* one of them compiled by Numba with fuse="all", the kernels as users run them,
  parallel loops included (about 35 seconds, nearly all of it Numba compiling the
  kernels: more compiled models would not fit the CI budget; the op grids and the
  example models run compiled elsewhere);
* with --long, 3000 more tiny models and 1000 of the default profile (larger inputs and
  channel counts), JIT disabled.

A failing model's text and inputs are written under the test's tmp_path/failures, ready
to be copied into tests/regressions/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT
from generators.random_models import random_model
from tools import differential

import cnnc

CI_MODELS = 120
# Compiled with the JIT: a small model on the common path (dilated conv2d with same
# padding, dropout after flatten, dense, softmax absorbed by the sparse cross-entropy,
# sgd with momentum).
JIT_SEED = 40


def run_without_jit(tmp_path, start: int, stop: int, *extra: str) -> list[dict]:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", CNNC_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, str(ROOT / "tests/tools/differential.py"),
                             str(start), str(stop), "--failures", str(tmp_path / "failures"),
                             *extra], env=env, capture_output=True, text=True, timeout=7200,
                            check=False)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(records) == stop - start, result.stderr[-3000:]
    bad = [r for r in records if not r["ok"]]
    assert not bad, f"{len(bad)} of {len(records)} models differ from PyTorch (cases in " \
                    f"{tmp_path / 'failures'}):\n" + json.dumps(bad[:3], indent=1)
    return records


def features(seed: int) -> set[str]:
    """What random CI model `seed` exercises: ops, attribute variants, structure, and
    the loss and optimizer its check uses."""
    model = cnnc.parse(random_model(seed, "tiny")).model()
    graph = model.graph
    loss = differential.choose_loss(model, seed)
    out = {f"loss {loss}", f"optimizer {seed % len(differential.OPTIMIZERS)}"}
    last = graph.producer(graph.outputs[0])
    for node in graph.nodes:
        out.add(node.op)
        attrs = node.attrs
        rank = len(graph.type(node.inputs[0]).shape)
        if node.op in ("conv2d", "maxpool2d", "avgpool2d"):
            window = attrs["kernel"] if node.op == "conv2d" else attrs["pool"]
            out.update(f"{node.op} {what}" for what, present in (
                ("same", attrs["padding"] == "same"), ("strided", attrs["strides"] != (1, 1)),
                ("non-square", window[0] != window[1]),
                ("dilated", attrs.get("dilation", (1, 1)) != (1, 1))) if present)
        if node.op == "conv2d" and graph.consumers[node.output][0].op != "bias_add":
            out.add("conv2d without bias")
        if node.op in ("batchnorm", "dropout", "softmax", "add"):
            out.add(f"{node.op} on {'maps' if rank == 3 else 'flat'}")
        if node.op == "softmax" and node is not last:
            out.add("softmax inside")
    out.update(f"residual depth {layer.depth + 1}" for layer in model.layers
               if layer.op == "residual")
    if last.op == differential.LOGIT_ACTIVATION.get(loss):
        out.add("loss from logits")
    return out


def test_ci_set_covers_the_catalogue():
    seen = set().union(*(features(seed) for seed in range(CI_MODELS)))
    wanted = {
        "conv2d", "maxpool2d", "avgpool2d", "global_avgpool2d", "global_maxpool2d", "dense",
        "flatten", "relu", "sigmoid", "tanh", "softmax", "linear", "elu", "leaky_relu",
        "conv2d same", "conv2d strided", "conv2d non-square", "conv2d dilated",
        "conv2d without bias", "maxpool2d same", "maxpool2d strided", "avgpool2d same",
        "avgpool2d non-square", "batchnorm on maps", "batchnorm on flat", "dropout on maps",
        "dropout on flat", "softmax on maps", "softmax inside", "add on maps", "add on flat",
        "residual depth 1", "residual depth 2", "loss from logits",
        "loss categorical_crossentropy", "loss sparse_categorical_crossentropy",
        "loss binary_crossentropy", "loss mse",
    } | {f"optimizer {i}" for i in range(len(differential.OPTIMIZERS))}
    assert wanted <= seen, sorted(wanted - seen)


def test_120_models_without_jit(tmp_path):
    records = run_without_jit(tmp_path, 0, CI_MODELS)
    assert {r["loss"] for r in records} == {"categorical_crossentropy", "mse",
                                            "sparse_categorical_crossentropy",
                                            "binary_crossentropy"}


def test_one_model_compiled():
    case = differential.make_case(random_model(JIT_SEED, "tiny"), JIT_SEED, batch=3)
    record = differential.run_case(case, {"seed": JIT_SEED}, fuses=("all",))
    assert record["ok"], json.dumps(record, indent=1) + "\n" + case["text"]


@pytest.mark.long
def test_3000_tiny_models_without_jit(tmp_path):
    run_without_jit(tmp_path, 10_000, 13_000)


@pytest.mark.long
def test_1000_default_profile_models_without_jit(tmp_path):
    run_without_jit(tmp_path, 0, 1000, "--profile", "default")
