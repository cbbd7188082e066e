"""One step of each optimizer against tf.keras's update formulas (written out here in
float64 numpy) within 1e-6, and against torch.optim where the two agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnc

MODEL = "model m { input(2, 2, 3) flatten() dense(4) dense(3, activation=softmax) }"


def keras_step(name: str, hyper: dict, p, g, state: dict, t: int):
    """tf.keras's update rules; `state` updated in place; returns the new parameter."""
    lr = hyper["learning_rate"]
    if name == "sgd":
        m = hyper["momentum"]
        if m == 0:
            return p - lr * g
        v = state.setdefault("v", np.zeros_like(p))
        v[...] = m * v - lr * g
        return p + m * v - lr * g if hyper["nesterov"] else p + v
    if name == "adam":
        m = state.setdefault("m", np.zeros_like(p))
        v = state.setdefault("v", np.zeros_like(p))
        b1, b2, eps = hyper["beta_1"], hyper["beta_2"], hyper["epsilon"]
        m[...] = m + (g - m) * (1 - b1)
        v[...] = v + (g * g - v) * (1 - b2)
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return p - alpha * m / (np.sqrt(v) + eps)
    if name == "adadelta":
        ag = state.setdefault("ag", np.zeros_like(p))
        av = state.setdefault("av", np.zeros_like(p))
        rho, eps = hyper["rho"], hyper["epsilon"]
        ag[...] = rho * ag + (1 - rho) * g * g
        delta = np.sqrt(av + eps) / np.sqrt(ag + eps) * g
        av[...] = rho * av + (1 - rho) * delta * delta
        return p - lr * delta
    if name == "rmsprop":
        ms = state.setdefault("ms", np.zeros_like(p))
        rho, eps, mom = hyper["rho"], hyper["epsilon"], hyper["momentum"]
        ms[...] = rho * ms + (1 - rho) * g * g
        if mom == 0:
            return p - lr * g / (np.sqrt(ms) + eps)
        buf = state.setdefault("mom", np.zeros_like(p))
        buf[...] = mom * buf + lr * g / (np.sqrt(ms) + eps)
        return p - buf
    raise AssertionError(name)


OPTIMIZERS = [
    "sgd(learning_rate=0.1)",
    "sgd(learning_rate=0.1, momentum=0.9)",
    "sgd(learning_rate=0.1, momentum=0.9, nesterov=true)",
    "adam(learning_rate=0.01)",
    "adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-7)",
    "rmsprop(learning_rate=0.01)",
    "rmsprop(learning_rate=0.01, momentum=0.5)",
]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_three_steps_follow_the_keras_formula(optimizer):
    model = cnnc.compile(MODEL, loss="categorical_crossentropy", optimizer=optimizer)
    config = model.config.optimizer
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 2, 2, 3)).astype(np.float32)
    y = rng.integers(0, 3, 5)
    mod = model.module
    params = mod.init_params(1)
    state = mod.init_opt_state(params)
    expected = {k: v.astype(np.float64) for k, v in params.items()}
    keras_state = {k: {} for k in params}
    for step in range(3):
        _, _, grads = mod.compute_gradients(params, x, y)
        mod.train_step(params, state, x, y, step)
        for name, g in grads.items():
            expected[name] = keras_step(config.name, config.hyper, expected[name],
                                        g.astype(np.float64), keras_state[name], step + 1)
        for name in params:
            # the update itself is float32: compare with the float64 formula at 1e-6
            np.testing.assert_allclose(params[name], expected[name], rtol=0, atol=1e-6,
                                       err_msg=f"{optimizer} step {step} {name}")
            expected[name] = params[name].astype(np.float64)   # continue from cnnc's state


TORCH = {
    "sgd(learning_rate=0.1)": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd(learning_rate=0.1, momentum=0.9)": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    "sgd(learning_rate=0.1, momentum=0.9, nesterov=true)":
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    "adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-7)":
        lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.95, eps=1e-7),
    "rmsprop(learning_rate=0.01)": lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9,
                                                                   eps=1e-7),
    "rmsprop(learning_rate=0.01, momentum=0.5)":
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-7, momentum=0.5),
}


@pytest.mark.parametrize("optimizer", sorted(TORCH))
def test_steps_match_torch_optim(optimizer):
    """Where torch.optim's rule is algebraically Keras's (all but Adam's epsilon)."""
    model = cnnc.compile(MODEL, loss="categorical_crossentropy", optimizer=optimizer)
    mod = model.module
    params = mod.init_params(2)
    state = mod.init_opt_state(params)
    tparams = {k: torch.tensor(v.astype(np.float64)) for k, v in params.items()}
    opt = TORCH[optimizer](list(tparams.values()))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 2, 2, 3)).astype(np.float32)
    y = rng.integers(0, 3, 4)
    for step in range(3):
        _, _, grads = mod.compute_gradients(params, x, y)
        for name, t in tparams.items():
            t.grad = torch.tensor(grads[name].astype(np.float64))
        opt.step()
        mod.train_step(params, state, x, y, step)
        for name, t in tparams.items():
            np.testing.assert_allclose(params[name], t.numpy(), rtol=0, atol=2e-6)
            t.data = torch.tensor(params[name].astype(np.float64))   # no drift apart
