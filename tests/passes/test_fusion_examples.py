"""Fusion on the example models: same outputs under every setting, expected kernel counts,
and the savings `cnnc explain` reports."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import cnnc
from cnnc.reports.explain import explain
from cnnc.passes import run_inference
from cnnc.passes.options import INFERENCE_RULES, Fusion
from conftest import EXAMPLES
from oracles.torch_ref import random_params

SETTINGS = ["none", "all"] + list(INFERENCE_RULES)
BATCH = {"mnist_cnn": 5, "lenet5": 5, "resnet_tiny": 3, "alexnet": 1}

# (fuse="all", fuse="none") kernel counts: a fusion that silently stops firing fails here.
KERNELS = {"mnist_cnn": (3, 10), "lenet5": (5, 2 * 3 + 2 + 3 * 3), "resnet_tiny": (11, 34),
           "alexnet": (11, 5 * 3 + 3 + 3 * 3)}


@pytest.mark.parametrize("name", sorted(BATCH))
def test_every_setting_matches_unfused(name):
    path = EXAMPLES / f"{name}.cnn"
    model_ir = cnnc.parse(path).model()
    params = random_params(model_ir, seed=2)
    x = np.random.default_rng(3).normal(size=(BATCH[name],) + tuple(
        model_ir.input_type.shape)).astype(np.float32)
    outputs = {}
    for setting in SETTINGS:
        model = cnnc.compile(path, fuse=setting)
        model.set_params(params)
        outputs[setting] = model.predict(x)
    for setting, y in outputs.items():
        err = float(np.abs(y - outputs["none"]).max())
        assert err <= 1e-5, f"{name} fuse={setting}: max abs difference {err:.3g}"


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_counts(name):
    model = cnnc.parse(EXAMPLES / f"{name}.cnn").model()
    fused, unfused = KERNELS[name]
    assert explain(model, "all").kernels_after == fused
    assert explain(model, "none").kernels_after == unfused


def test_mnist_groups_and_savings():
    exp = explain(cnnc.parse(EXAMPLES / "mnist_cnn.cnn").model())
    assert [(g.ops, g.rule) for g in exp.groups] == [
        (["conv2d", "bias_add", "relu", "maxpool2d"], "epilogue+pool"),
        (["dense", "bias_add", "relu"], "epilogue"),
        (["dense", "bias_add", "softmax"], "epilogue+row")]
    conv = exp.groups[0]
    # conv, bias and relu outputs (26*26*32 floats each) are never written
    assert conv.bytes_saved == 3 * 26 * 26 * 32 * 4
    assert conv.bytes_written == 13 * 13 * 32 * 4
    assert conv.lines == [4, 5]
    # unfused: every op writes; views (dropout, flatten) and the final softmax excluded
    before = 3 * 26 * 26 * 32 * 4 + 13 * 13 * 32 * 4 + 3 * 128 * 4 + 2 * 10 * 4
    assert exp.intermediate_before == before
    assert exp.intermediate_after == 13 * 13 * 32 * 4 + 128 * 4
    assert exp.reduction >= 0.80


def test_resnet_residual_add_in_the_conv_epilogue():
    exp = explain(cnnc.parse(EXAMPLES / "resnet_tiny.cnn").model())
    ends = [g for g in exp.groups if "add" in g.ops]
    assert len(ends) == 3
    for g in ends:
        assert g.ops == ["conv2d", "bias_add", "add", "relu"]
    assert {r["node"] for r in exp.refusals} == {"add", "add_1", "add_2"}
    assert all("output used twice" in r["reason"] for r in exp.refusals)


def test_alexnet_refuses_overlapping_pools():
    exp = explain(cnnc.parse(EXAMPLES / "alexnet.cnn").model())
    pools = [r for r in exp.refusals if r["rule"] == "pool"]
    assert len(pools) == 3
    assert all(r["reason"].startswith("pool windows overlap") for r in pools)


def test_switched_off_rules_are_reported():
    exp = explain(cnnc.parse(EXAMPLES / "mnist_cnn.cnn").model(), fuse="epilogue,row")
    assert {"rule": "pool", "node": "max_pooling2d", "group": "conv2d",
            "reason": "rule 'pool' is switched off"} in exp.refusals
    assert exp.kernels_after == 4


def test_explain_command_text_and_json():
    result = subprocess.run([sys.executable, "-m", "cnnc", "explain",
                             str(EXAMPLES / "mnist_cnn.cnn")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "[1] conv2d + bias_add + relu + maxpool2d   rule: epilogue+pool" in result.stdout
    assert "line 5: maxpool2d(2)" in result.stdout
    assert "kernels: 10 -> 3; intermediate bytes written per sample: 276.2 KiB -> " \
           "21.6 KiB (92.2% less)" in result.stdout
    result = subprocess.run([sys.executable, "-m", "cnnc", "explain", "--json", "--fuse",
                             "none", str(EXAMPLES / "resnet_tiny.cnn")],
                            capture_output=True, text=True)
    data = json.loads(result.stdout)
    assert data["kernels_after"] == data["kernels_before"] == 34
    assert data["intermediate_reduction"] == 0
    assert data["groups"][0]["ops"] == ["conv2d"]
    assert data["fuse"] == "none" and data["graphs"] == []
    result = subprocess.run([sys.executable, "-m", "cnnc", "explain", "--dump-ir", "--fuse",
                             "epilogue,pool", str(EXAMPLES / "mnist_cnn.cnn")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    passes = [line.split()[-1] for line in result.stdout.splitlines()
              if line.startswith("--- IR after ")]
    assert passes == ["simplify_inference", "fold_batchnorm", "fuse_loss", "pack_kernels",
                      "sink_views", "fuse"]
    assert "model mnist_cnn: fusion epilogue,pool; " in result.stdout
    assert "fused[epilogue+pool]: conv2d + bias_add + relu + maxpool2d" in result.stdout


def test_graph_fused_has_one_cluster_per_kernel():
    result = subprocess.run([sys.executable, "-m", "cnnc", "graph", "--fused",
                             str(EXAMPLES / "resnet_tiny.cnn")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("subgraph cluster_") == 11
    assert "kernel 3 [epilogue]" in result.stdout


def test_pipeline_order_is_printable():
    from cnnc.passes import describe_pipeline
    text = describe_pipeline()
    assert [line.split(":")[0] for line in text.splitlines()] == [
        "1. simplify_inference", "2. fold_batchnorm", "3. fuse_loss", "4. pack_kernels",
        "5. sink_views", "6. fuse"]


def test_verifier_runs_after_every_pass():
    for path in EXAMPLES.glob("*.cnn"):
        graph = cnnc.parse(path).model().graph
        for fuse in ("none", "all"):
            run_inference(graph, Fusion.parse(fuse), verify_each=True)


def test_verifier_runs_after_every_training_pass(monkeypatch):
    """The training pipeline, verified after each pass as --debug does: the shape rules
    of ops reading a packed kernel (dense_grad_input's panels) see the kernel it packs."""
    from cnnc.compiler import lower
    monkeypatch.setenv("CNNC_VERIFY", "1")
    for path in EXAMPLES.glob("*.cnn"):
        for fuse in ("none", "all"):
            lower(path, fuse=fuse).generate()


def test_explain_training_step():
    program = cnnc.parse(EXAMPLES / "mnist_cnn.cnn")
    from cnnc.reports.explain import explain_training
    exp = explain_training(program.model(), program.trains["mnist_cnn"])
    ops_rules = [(" + ".join(g.ops), g.rule) for g in exp.groups]
    # the ReLU masks fold into the gradient kernels that produce their input: an epilogue
    # of the dense input gradient; before max pooling, into the pooling gradient, which
    # reads the codes of the maxima (pool_codes)
    assert ("dense_grad_input + dropout_grad + relu_grad", "epilogue") in ops_rules
    assert ("maxpool2d_grad_code", "") in ops_rules
    # ... so the pooling, which writes the codes, joins the convolution's kernel: the
    # convolution's output is never written
    assert ("conv2d + bias_add + relu + maxpool2d_code + dropout_train",
            "epilogue+pool") in ops_rules
    # the dropout gradient behind flatten moves above the reshape (sink_views) into the
    # kernel of the dense layer's input gradient
    assert ("dense_grad_input + dropout_grad", "epilogue") in ops_rules
    # softmax + cross-entropy is one loss kernel; every update of the step is one kernel
    assert ("loss", "") in ops_rules
    assert ops_rules[-1] == (" + ".join(["update"] * 6), "updates")
    # each bias gradient is computed in its layer's weight-gradient kernel
    assert ("conv2d_grad_weight + bias_grad", "siblings") in ops_rules
    assert ops_rules.count(("dense_grad_weight + bias_grad", "siblings")) == 2
    assert (exp.kernels_before, exp.kernels_after) == (32, 12)
    unfused = explain_training(program.model(), program.trains["mnist_cnn"], fuse="none")
    assert unfused.kernels_after == 32
    # without `siblings`, each bias gradient is a kernel of its own, and the report says why
    rules = [r for r in Fusion.parse("all").rules if r != "siblings"]
    apart = explain_training(program.model(), program.trains["mnist_cnn"], fuse=rules)
    assert apart.kernels_after == 15
    assert [(r["rule"], r["node"], r["reason"]) for r in apart.refusals
            if r["rule"] == "siblings"] == [
        ("siblings", f"d/{layer}/bias_grad", "rule 'siblings' is switched off")
        for layer in ("dense_1", "dense", "conv2d")]
    result = subprocess.run([sys.executable, "-m", "cnnc", "explain", "--train",
                             str(EXAMPLES / "mnist_cnn.cnn")], capture_output=True, text=True)
    assert result.returncode == 0 and "rule: updates" in result.stdout
