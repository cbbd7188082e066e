"""Property: on random valid models, every fusion setting computes what `fuse="none"`
computes (within 1e-5), and the verifier accepts the graph after every pass.

Two levels: 100 seeded models with the JIT disabled, every rule alone as well as none
and all (the generated kernels run as Python: the code generator's logic, in under a
minute), and compiled ones. The differential tests (tests/differential) run 200 more
random models, fuse none and all, against PyTorch. `--long` runs more of both here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import cnnc
from cnnc.passes import run_inference
from cnnc.passes.options import INFERENCE_RULES, Fusion
from conftest import ROOT
from generators.random_models import random_model
from oracles.torch_ref import random_params


def test_generator_is_deterministic_and_valid():
    for seed in range(300):
        text = random_model(seed)
        assert text == random_model(seed)
        graph = cnnc.parse(text).model().graph
        for fuse in ["none", "all"] + list(INFERENCE_RULES):
            run_inference(graph, Fusion.parse(fuse), verify_each=True)


def run_without_jit(start: int, stop: int, tmp_path) -> list[dict]:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", CNNC_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, str(ROOT / "tests/tools/random_check.py"),
                             "fusion", str(start), str(stop), "--failures",
                             str(tmp_path / "failures")],
                            env=env, capture_output=True, text=True, timeout=1800)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(records) == stop - start, result.stderr[-3000:]
    bad = [r for r in records if not r["ok"]]
    assert not bad, json.dumps(bad[:3], indent=1)
    return records


def test_fusion_preserves_outputs_100_models_without_jit(tmp_path):
    records = run_without_jit(0, 100, tmp_path)
    assert all(set(r["errors"]) == {"none", "all", *INFERENCE_RULES} for r in records)


@pytest.mark.long
def test_fusion_preserves_outputs_2000_models_without_jit(tmp_path):
    run_without_jit(1000, 3000, tmp_path)


@pytest.mark.parametrize("seed", [0, pytest.param(9, marks=pytest.mark.long)])
def test_fusion_preserves_outputs_compiled(seed):
    text = random_model(seed)
    model_ir = cnnc.parse(text).model()
    params = random_params(model_ir, seed)
    x = np.random.default_rng(seed).normal(size=(3,) + tuple(model_ir.input_type.shape))
    outputs = {}
    for fuse in ("none", "all"):
        model = cnnc.compile(text, fuse=fuse)
        model.set_params(params)
        outputs[fuse] = model.predict(x.astype(np.float32))
    assert np.abs(outputs["all"] - outputs["none"]).max() <= 1e-5, text
