"""Shared helpers for oracle tests: compile a model, run it, compare with PyTorch."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys

import numpy as np

import cnnc
from oracles import tolerances, torch_ref


def compare(text: str, *, fuse="all", batches=(1, 7), seed=0, tol=None, compiled=None,
            target="cpu"):
    """Compile `text`, set random parameters, and compare predict() with the oracle.

    Returns the compiled model. Raises AssertionError with the worst error.
    """
    model = compiled or cnnc.compile(text, target, fuse=fuse)
    params = torch_ref.random_params(model.model, seed)
    model.set_params(params)
    rng = np.random.default_rng(seed + 1)
    tol = tol or tolerances.FORWARD
    for batch in batches:
        x = rng.normal(size=(batch,) + model.input_shape).astype(np.float32)
        y = model.predict(x)
        ref = torch_ref.forward(model.model, params, x)
        assert y.shape == ref.shape, (y.shape, ref.shape)
        assert y.dtype == np.float32
        err = float(np.max(np.abs(y - ref)))
        assert err <= tol, f"max abs error {err:.3g} > {tol} (batch {batch})\n{text}"
    return model


def pairwise(factors: dict[str, list], seed: int = 0, allowed=lambda row: True) -> list[dict]:
    """A covering array: every pair of values of two factors appears in some row.

    Greedy: each new row is the best of 50 random allowed candidates by the number of
    still-uncovered pairs it covers. Seeded, so the selection is the same every run.
    """
    rng = random.Random(seed)
    names = list(factors)
    uncovered = set()
    for a, b in itertools.combinations(names, 2):
        for va in factors[a]:
            for vb in factors[b]:
                if any(allowed(dict(row, **{a: va, b: vb})) for row in _samples(factors, rng)):
                    uncovered.add((a, repr(va), b, repr(vb)))
    rows = []
    while uncovered:
        best, best_gain = None, -1
        for _ in range(50):
            row = {n: rng.choice(factors[n]) for n in names}
            # Seed the candidate with one uncovered pair so progress is guaranteed.
            a, va, b, vb = next(iter(sorted(uncovered)))
            row[a] = _value(factors[a], va)
            row[b] = _value(factors[b], vb)
            if not allowed(row):
                continue
            gain = sum((x, repr(row[x]), y, repr(row[y])) in uncovered
                       for x, y in itertools.combinations(names, 2))
            if gain > best_gain:
                best, best_gain = row, gain
        if best is None:                      # the first uncovered pair is not allowed
            uncovered.remove(next(iter(sorted(uncovered))))
            continue
        rows.append(best)
        for x, y in itertools.combinations(names, 2):
            uncovered.discard((x, repr(best[x]), y, repr(best[y])))
    return rows


def _samples(factors, rng, n=30):
    return [{k: rng.choice(v) for k, v in factors.items()} for _ in range(n)]


def _value(values, text):
    return next(v for v in values if repr(v) == text)


def product(factors: dict[str, list], allowed=lambda row: True) -> list[dict]:
    names = list(factors)
    rows = [dict(zip(names, combo)) for combo in itertools.product(*factors.values())]
    return [row for row in rows if allowed(row)]


def labels_for(loss: str, batch: int, classes: int, rng) -> np.ndarray:
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, classes, batch)
    if loss == "categorical_crossentropy":
        return np.eye(classes, dtype=np.float32)[rng.integers(0, classes, batch)]
    if loss == "binary_crossentropy":
        return (rng.random((batch, classes)) > 0.5).astype(np.float32)
    return rng.normal(size=(batch, classes)).astype(np.float32)


def compare_gradients(text: str, loss: str = "categorical_crossentropy", *, batch=3, seed=0,
                      fuse="all", dropout=False, tol=tolerances.GRADIENT, compiled=None,
                      target="cpu"):
    """Gradients of every parameter (and the loss) against torch.autograd in float64:
    |g - g_torch| <= tol * max(1, |g_torch|). Returns the compiled model."""
    from oracles import torch_ref
    model = compiled or cnnc.compile(text, target, fuse=fuse, loss=loss, optimizer="sgd")
    params = torch_ref.random_params(model.model, seed)
    model.set_params(params)
    rng = np.random.default_rng(seed + 7)
    x = rng.normal(size=(batch,) + model.input_shape).astype(np.float32)
    classes = model.output_shape[-1]
    y = labels_for(loss, batch, classes, rng)
    masks = None
    if dropout:
        masks = {}
        key = model.module.step_seed(seed, 0)
        salt = 0
        for node in model.model.graph.nodes:
            if node.op == "dropout":
                salt += 1
                shape = (batch,) + model.model.graph.type(node.output).shape
                masks[node.layer] = model.module.dropout_mask(key, salt, shape,
                                                              node.attrs["rate"])
    value, grads = model.gradients(x, y, dropout=dropout, seed=seed)
    ref_value, ref = torch_ref.gradients(model.model, params, x, y, loss, masks)
    assert abs(value - ref_value) <= tol * max(1, abs(ref_value)), (value, ref_value, text)
    assert set(grads) == set(ref), (sorted(grads), sorted(ref))
    for name, g in grads.items():
        err = np.abs(g - ref[name])
        bound = tol * np.maximum(1.0, np.abs(ref[name]))
        worst = float((err / bound).max())
        assert worst <= 1, f"{name}: max error {float(err.max()):.3g} ({worst:.2f} of the " \
                           f"tolerance)\n{text}"
    return model


def run_json(code: str, cache, *args: str, **env: str) -> dict:
    """Run `code` in a new Python process with CNNC_CACHE_DIR=`cache`, `args` as its
    sys.argv[1:] and `env` added; the JSON object its last line prints."""
    env = dict(os.environ, CNNC_CACHE_DIR=str(cache), **env)
    proc = subprocess.run([sys.executable, "-c", code, *args], check=False,
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])
