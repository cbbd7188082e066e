"""Differential testing of random models against PyTorch.

    NUMBA_DISABLE_JIT=1 python tests/tools/differential.py START STOP [--failures DIR]
        [--profile tiny|default]
    NUMBA_DISABLE_JIT=1 python tests/tools/differential.py --files tests/regressions/*.cnn
    NUMBA_ENABLE_CUDASIM=1 python tests/tools/differential.py START STOP --target cuda

For each seed in [START, STOP), random model `seed` (tests/generators/random_models.py)
is compiled by cnnc with fuse="none" and fuse="all" and translated to a torch.nn module
(tests/oracles/torch_module.py, float64). With random parameters (moving statistics
included), inputs and labels drawn from the seed, it checks:

1. forward: predict() with each fusion setting against the module in eval mode;
2. gradients: the loss and every parameter gradient of cnnc's
   `gradients(x, y, dropout=False)` with each fusion setting against torch.autograd
   (training mode: batchnorm on batch statistics). The loss follows what cnnc computes:
   from logits when the `loss` fusion rule absorbs the final softmax/sigmoid (fuse=all),
   from clipped probabilities otherwise (fuse=none), both as tf.keras does;
3. one optimizer step (fusion setting alternating by seed, dropout on, the optimizer
   rotating by seed over sgd with momentum and nesterov, adam, adadelta and rmsprop with
   and without momentum): the gradients with dropout against torch.autograd with the
   same masks (the generated module's `dropout_mask`: a mask is an arbitrary draw, so
   the oracle takes cnnc's rather than its own); batchnorm's moving statistics against
   nn.BatchNorm's (converted to Keras's biased-variance update); and the parameters and
   optimizer state after `train_step` against torch.optim applied to *cnnc's* gradients
   of that step. The update is compared given equal gradients because Adam's and
   RMSprop's first step, about lr * g / |g|, amplifies any difference in a gradient near
   zero without bound; the gradients themselves are compared in the same check. torch's
   Adam places epsilon differently (added to sqrt(v / (1 - beta_2^t)) rather than to
   sqrt(v)); at step 1 Keras's rule is torch's with eps / sqrt(1 - beta_2), which is
   what the check uses. Adadelta's and RMSprop's epsilon sit where torch.optim puts them,
which is cnnc's rule (tests/train/test_optimizers.py checks it against tf.keras's
formulas).

Tolerances: TOL = 1e-4 for forward values, losses, gradients and moving statistics,
|cnnc - torch| <= TOL * max(1, |torch|) (absolute or relative, whichever is larger): cnnc
computes in float32 and torch in float64, and 1e-4 leaves room for float32 rounding
through a dozen layers while any real error (a wrong index, padding, scale or gradient
term) shows up as order 1e-2 or more. STEP_TOL = 1e-5 for parameters and optimizer state
after the step, computed from identical gradients: only the float32 rounding of the
update and of the stored values remains.

A float32 mismatch of forward values, losses or gradients of at most FLOAT32_CAP times
the tolerance is re-examined in float64: the case compiled with dtype="float64" (the
same generated kernels on float64 elements) must agree with torch within TOL64 = 1e-9.
If it does, the difference is float32 rounding in an ill-conditioned model -- batchnorm
over two or three values per channel, where 1 / sqrt(var + epsilon) amplifies rounding
-- and the model passes with those checks listed under "float32_only" in its record; a
logic error cannot pass in float64. One more case float32 cannot resolve: binary
cross-entropy from probabilities (fuse=none; tf.keras's form too) reads log(1 - p + 1e-7)
after clipping p to 1 - 1e-7, and float32 holds 1 - p in steps of 6e-8: when some
1 - p < SATURATED = 1e-5 (a saturated sigmoid), loss and gradient differ from float64's
at any scale, so mismatches of any size are re-examined in float64 ("saturated" in the
record). Otherwise larger differences, NaNs, and any mismatch of the step's moving
statistics, parameters or state always fail.

Prints one JSON line per model: the seed, "ok", the loss and optimizer used, the worst
error of each check as a fraction of its tolerance (<= 1 passes) and the seconds it
took; an exception is reported as a failure with its traceback. A failing model's text
goes to DIR/seed<N>.cnn and its inputs, labels, parameters, loss and optimizer to
DIR/seed<N>.npz, ready to be copied into tests/regressions/. Exit status 1 if any model
failed. With NUMBA_DISABLE_JIT=1 the generated kernels run as Python: about three tiny
models a second on one core, nearly all of it cnnc's compile (code generation, import).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))     # tests/

from generators.random_models import random_model
from oracles import tolerances
from oracles.torch_module import TorchModel, keras_loss

import cnnc
from cnnc.passes.options import Fusion

TOL = tolerances.GRADIENT
STEP_TOL = tolerances.STEP
TOL64 = tolerances.FLOAT64
FLOAT32_CHECKS = ("forward/", "loss/", "grads/", "step/loss", "step/grads")
FLOAT32_CAP = 10.0
SATURATED = 1e-5
FUSES = ("none", "all")
OPTIMIZERS = (
    "sgd(learning_rate=0.1, momentum=0.9)",
    "adam(learning_rate=0.01)",
    "adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-07)",
    "rmsprop(learning_rate=0.01)",
    "sgd(learning_rate=0.05, momentum=0.5, nesterov=true)",
    "adam(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-05)",
    "rmsprop(learning_rate=0.005, rho=0.8, momentum=0.5, epsilon=1e-06)",
    "sgd(learning_rate=0.1)",
)
LOGIT_ACTIVATION = {"categorical_crossentropy": "softmax",
                    "sparse_categorical_crossentropy": "softmax",
                    "binary_crossentropy": "sigmoid"}


# --- the data of one model -----------------------------------------------------------

def random_params(model, rng) -> dict[str, np.ndarray]:
    """Every parameter non-trivial: kernels scaled by fan-in, biases and beta small,
    gamma and moving variance in [0.5, 1.5], moving mean small."""
    out = {}
    for p in model.graph.params:
        if p.name.endswith(("/gamma", "/moving_variance")):
            value = rng.uniform(0.5, 1.5, p.shape)
        elif len(p.shape) > 1:
            value = rng.normal(0.0, 1.0 / math.sqrt(np.prod(p.shape[:-1])), p.shape)
        else:
            value = rng.normal(0.0, 0.2, p.shape)
        out[p.name] = value.astype(np.float32)
    return out


def choose_loss(model, seed: int) -> str:
    """A loss the model's output allows, rotating by seed."""
    last = model.graph.producer(model.graph.outputs[0])
    op = last.op if last is not None else None
    choices = {"softmax": ["categorical_crossentropy", "sparse_categorical_crossentropy",
                           "mse"],
               "sigmoid": ["binary_crossentropy", "mse"]}.get(op, ["mse"])
    return choices[seed % len(choices)]


def random_labels(loss: str, batch: int, classes: int, rng) -> np.ndarray:
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, classes, batch).astype(np.int64)
    if loss == "categorical_crossentropy":
        return np.eye(classes, dtype=np.float32)[rng.integers(0, classes, batch)]
    if loss == "binary_crossentropy":
        return (rng.random((batch, classes)) < 0.5).astype(np.float32)
    return rng.normal(size=(batch, classes)).astype(np.float32)


def make_case(text: str, seed: int, batch: int) -> dict:
    """Everything one check needs, drawn from `seed`."""
    model = cnnc.parse(text).model()
    rng = np.random.default_rng(seed)
    loss = choose_loss(model, seed)
    x = rng.normal(size=(batch,) + tuple(model.input_type.shape)).astype(np.float32)
    return {"text": text, "loss": loss, "optimizer": OPTIMIZERS[seed % len(OPTIMIZERS)],
            "x": x, "labels": random_labels(loss, batch, model.output_type.shape[-1], rng),
            "params": random_params(model, rng), "step_fuse": FUSES[seed % 2],
            "dropout_seed": seed}


def seed_case(seed: int, profile: str = "tiny") -> dict:
    """Random model `seed` of `profile` with its data; batches of 2 and 3 alternate."""
    return make_case(random_model(seed, profile), seed, batch=2 + seed % 2)


def save_case(case: dict, directory: Path, stem: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.cnn").write_text(case["text"])
    np.savez(directory / f"{stem}.npz", x=case["x"], labels=case["labels"],
             loss=case["loss"], optimizer=case["optimizer"], step_fuse=case["step_fuse"],
             dropout_seed=case["dropout_seed"],
             **{f"params/{k}": v for k, v in case["params"].items()})


def load_case(cnn: Path, seed: int = 0, batch: int = 3) -> dict:
    """A case from a model file, with its saved inputs (`<stem>.npz`) when present."""
    text = cnn.read_text()
    saved = cnn.with_suffix(".npz")
    if not saved.exists():
        return make_case(text, seed, batch)
    with np.load(saved, allow_pickle=False) as data:
        return {"text": text, "x": data["x"], "labels": data["labels"],
                "loss": str(data["loss"]), "optimizer": str(data["optimizer"]),
                "step_fuse": str(data["step_fuse"]),
                "dropout_seed": int(data["dropout_seed"]),
                "params": {k[len("params/"):]: data[k] for k in data.files
                           if k.startswith("params/")}}


# --- comparing ---------------------------------------------------------------------

def worst(got, ref, tol: float) -> float:
    """max |got - ref| / (tol * max(1, |ref|)): <= 1 passes (NaN counts as failing)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return math.inf
    if got.size == 0:
        return 0.0
    ratio = np.abs(got - ref) / (tol * np.maximum(1.0, np.abs(ref)))
    return math.inf if not np.all(np.isfinite(ratio)) else float(ratio.max())


def worst_of(got: dict, ref: dict, tol: float) -> tuple[float, str]:
    """The worst entry of two dicts of arrays (and its name); missing names fail."""
    if set(got) != set(ref):
        return math.inf, "names differ: " + ", ".join(sorted(set(got) ^ set(ref)))
    errors = {name: worst(got[name], ref[name], tol) for name in ref}
    name = max(errors, key=errors.get, default="")
    return errors.get(name, 0.0), name


def reference(tm: TorchModel, case: dict, fuse: str, masks: dict | None = None):
    """torch's loss and gradients (Keras layouts) in training mode, the loss computed as
    cnnc computes it under `fuse`, with dropout `masks` (None: dropout off), and whether
    float32 cannot resolve that loss (SATURATED, in the module docstring). The
    batchnorm layers' running statistics move by one step from the case's."""
    tm.load_keras(case["params"])
    tm.train()
    tm.set_dropout_masks(masks)
    logits = "loss" in Fusion.parse(fuse) and tm.last_op == LOGIT_ACTIVATION.get(case["loss"])
    y = tm(case["x"], logits=logits)
    loss = keras_loss(case["loss"], y.reshape(y.shape[0], -1), case["labels"], logits)
    if loss.requires_grad:            # a model without trainable parameters has no graph
        loss.backward()
    tm.set_dropout_masks(None)
    unresolved = case["loss"] == "binary_crossentropy" and not logits and \
        float((1 - y.detach()).min()) < SATURATED
    return float(loss.detach()), tm.keras_grads(), unresolved


def dropout_masks(model, key: int, batch: int) -> dict:
    """The generated module's dropout masks for step key `key`, by dropout layer (salts
    count the dropout layers from 1, in graph order)."""
    graph = model.model.graph
    masks, salt = {}, 0
    for node in graph.nodes:
        if node.op == "dropout":
            salt += 1
            shape = (batch,) + graph.type(node.output).shape
            masks[node.layer] = model.module.dropout_mask(key, salt, shape, node.attrs["rate"])
    return masks


# --- the optimizer step ------------------------------------------------------------

def torch_optimizer(config, params: list):
    """torch.optim's optimizer equal to Keras's rule at step 1 (see the docstring)."""
    h = config.hyper
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=h["learning_rate"], momentum=h["momentum"],
                               nesterov=h["nesterov"])
    if config.name == "adam":
        return torch.optim.Adam(params, lr=h["learning_rate"], betas=(h["beta_1"], h["beta_2"]),
                                eps=h["epsilon"] / math.sqrt(1 - h["beta_2"]))
    if config.name == "adadelta":
        return torch.optim.Adadelta(params, lr=h["learning_rate"], rho=h["rho"],
                                    eps=h["epsilon"])
    if config.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=h["learning_rate"], alpha=h["rho"],
                                   eps=h["epsilon"], momentum=h["momentum"])
    raise NotImplementedError(config.name)


def keras_slots(config, state: dict) -> dict:
    """cnnc's optimizer slots (Keras's names and signs) from torch.optim's state of one
    parameter, in torch layout."""
    h = config.hyper
    if config.name == "sgd":
        if h["momentum"] == 0:
            return {}
        return {"velocity": -h["learning_rate"] * state["momentum_buffer"]}
    if config.name == "adam":
        return {"m": state["exp_avg"], "v": state["exp_avg_sq"]}
    if config.name == "adadelta":
        return {"accum_grad": state["square_avg"], "accum_var": state["acc_delta"]}
    slots = {"ms": state["square_avg"]}
    if h["momentum"]:
        slots["mom"] = h["learning_rate"] * state["momentum_buffer"]
    return slots


def slot_views(module, flat: np.ndarray, shapes: dict) -> dict:
    """A flat optimizer-state buffer split by parameter: the trainable parameters in the
    module's FLAT_ORDER (the documented layout of the flat buffers)."""
    out, offset = {}, 0
    for name in module.FLAT_ORDER[:module.TRAINABLE]:
        size = int(np.prod(shapes[name]))
        out[name] = flat[offset:offset + size].reshape(shapes[name])
        offset += size
    return out


def check_step(model, tm: TorchModel, case: dict, errors: dict) -> bool:
    """One `train_step` of the generated module (dropout on) against torch; returns
    whether float32 cannot resolve the step's loss (see `reference`)."""
    mod = model.module
    x, labels, params = case["x"], case["labels"], case["params"]
    work = mod.init_params(0)                 # the flat buffer fit() trains
    for name, value in params.items():
        work[name][...] = value
    state = mod.init_opt_state(work)
    key = mod.step_seed(case["dropout_seed"], 0)
    loss_c, _, grads_c = mod.compute_gradients(work, x, labels, key)   # what the step uses
    # The CUDA module updates host parameters in place too (copied in and back); its
    # optimizer state stays on the device.
    mod.train_step(work, state, x, labels, 0, seed=case["dropout_seed"])
    state = {slot: getattr(mod, "to_host", np.asarray)(value) for slot, value in state.items()}
    loss_t, grads_t, unresolved = reference(tm, case, case["step_fuse"],
                                            dropout_masks(model, key, len(x)))
    errors["step/loss"] = worst(loss_c, loss_t, TOL)
    errors["step/grads"], errors["step/grads:at"] = worst_of(grads_c, grads_t, TOL)
    errors["step/moving"], errors["step/moving:at"] = worst_of(
        *moving_statistics(model, tm, params, work, len(x)), TOL)
    check_update(model, tm, grads_c, work, state, errors)
    return unresolved


def moving_statistics(model, tm: TorchModel, before: dict, after: dict, batch: int):
    """({name: cnnc's moving statistic after the step}, {name: Keras's, from torch's})."""
    graph = model.model.graph
    moved = tm.keras_values()
    got, ref = {}, {}
    for node in graph.nodes:
        if node.op == "batchnorm":
            mean, var = node.inputs[3], node.inputs[4]
            count = batch * int(np.prod(graph.type(node.inputs[0]).shape[:-1]))
            got[mean], ref[mean] = after[mean], moved[mean]
            got[var], ref[var] = after[var], tm.keras_moving_variance(var, before[var], count)
    return got, ref


def check_update(model, tm: TorchModel, grads: dict, work: dict, state: dict,
                 errors: dict) -> None:
    """Parameters and optimizer slots after the step against torch.optim's step from
    the same gradients `grads` (cnnc's)."""
    config = model.config.optimizer
    tensors = tm.named_trainables()
    if not tensors:                            # torch.optim refuses an empty list
        errors["step/params"] = errors["step/state"] = 0.0
        return
    opt = torch_optimizer(config, list(tensors.values()))
    for name, tensor in tensors.items():
        tensor.grad = torch.from_numpy(np.ascontiguousarray(
            tm.bindings[name].to_torch(grads[name].astype(np.float64))))
    opt.step()
    updated = tm.keras_values()
    errors["step/params"], errors["step/params:at"] = worst_of(
        {k: work[k] for k in tensors}, {k: updated[k] for k in tensors}, STEP_TOL)
    got, ref = {}, {}
    for slot in model.module.OPT_SLOTS:
        views = slot_views(model.module, state[slot], model.param_shapes())
        for name, tensor in tensors.items():
            expected = keras_slots(config, opt.state[tensor])[slot]
            got[f"{name}:{slot}"] = views[name]
            ref[f"{name}:{slot}"] = tm.bindings[name].to_keras(expected.detach().numpy())
    errors["step/state"], errors["step/state:at"] = worst_of(got, ref, STEP_TOL)


# --- one model ---------------------------------------------------------------------

def check_case(case: dict, fuses=FUSES, target: str = "cpu") -> dict:
    """Run every check on one case with each fusion setting in `fuses` (the step with
    the case's `step_fuse` if it is one of them, else the first); returns
    {"ok", "errors": {check: worst ratio, check:at: where}}, and "float32_only" and
    "float64" when a float32 mismatch was re-examined (see recheck_in_float64)."""
    errors: dict = {}
    saturated = False
    models = {fuse: cnnc.compile(case["text"], target, fuse=fuse, loss=case["loss"],
                                 optimizer=case["optimizer"]) for fuse in fuses}
    tm = TorchModel(models[fuses[0]].model)
    expected = inference(tm, case)
    for fuse, model in models.items():
        model.set_params(case["params"])
        errors[f"forward/{fuse}"] = worst(model.predict(case["x"]), expected, TOL)
        loss_c, grads_c = model.gradients(case["x"], case["labels"], dropout=False)
        loss_t, grads_t, unresolved = reference(tm, case, fuse)
        saturated |= unresolved
        errors[f"loss/{fuse}"] = worst(loss_c, loss_t, TOL)
        errors[f"grads/{fuse}"], errors[f"grads/{fuse}:at"] = worst_of(grads_c, grads_t, TOL)
    case = dict(case, step_fuse=case["step_fuse"] if case["step_fuse"] in models else fuses[0])
    saturated |= check_step(models[case["step_fuse"]], tm, case, errors)
    failed = [k for k, v in errors.items() if not k.endswith(":at") and v > 1.0]
    record = {"ok": not failed, "errors": errors}
    cap = math.inf if saturated else FLOAT32_CAP
    if failed and all(k.startswith(FLOAT32_CHECKS) and errors[k] < cap for k in failed):
        record["float32_only"] = failed
        if saturated:
            record["saturated"] = True
        record["float64"] = recheck_in_float64(case, fuses, tm, expected, target)
        record["ok"] = record["float64"] <= 1.0
    return record


def inference(tm: TorchModel, case: dict) -> np.ndarray:
    """torch's output in eval mode (moving statistics, no dropout), Keras layout."""
    tm.load_keras(case["params"])
    tm.eval()
    with torch.no_grad():
        return tm(case["x"]).numpy()


def recheck_in_float64(case: dict, fuses, tm: TorchModel, expected: np.ndarray,
                       target: str = "cpu") -> float:
    """The worst error, as a fraction of TOL64, of cnnc's modules compiled with
    dtype="float64" (the same generated code on float64 elements): forward and
    gradients with each fusion setting, and the dropout gradients of the step."""
    params = {k: v.astype(np.float64) for k, v in case["params"].items()}
    x = case["x"].astype(np.float64)
    ratios = []
    for fuse in fuses:
        model = cnnc.compile(case["text"], target, fuse=fuse, loss=case["loss"],
                             optimizer=case["optimizer"], dtype="float64")
        mod = model.module
        ratios.append(worst(mod.forward(params, x), expected, TOL64))
        keys = [-1] + ([mod.step_seed(case["dropout_seed"], 0)]
                       if fuse == case["step_fuse"] else [])
        for key in keys:
            loss_c, _, grads_c = mod.compute_gradients(params, x, case["labels"], key)
            masks = dropout_masks(model, key, len(x)) if key >= 0 else None
            loss_t, grads_t, _ = reference(tm, case, fuse, masks)
            ratios += [worst(loss_c, loss_t, TOL64), worst_of(grads_c, grads_t, TOL64)[0]]
    return max(ratios)


def run_case(case: dict, label: dict, fuses=FUSES, target: str = "cpu") -> dict:
    """check_case, with exceptions reported as failures; one JSON-ready record."""
    start = time.perf_counter()
    record = {**label, "loss": case["loss"], "optimizer": case["optimizer"],
              "batch": len(case["x"])}
    try:
        record.update(check_case(case, fuses, target))
    except Exception:                  # noqa: BLE001 -- any crash is a finding: report it
        record.update(ok=False, error=traceback.format_exc()[-3000:])
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("start", type=int, nargs="?", help="first seed")
    parser.add_argument("stop", type=int, nargs="?", help="one past the last seed")
    parser.add_argument("--files", type=Path, nargs="+", metavar="CNN",
                        help="check these model files (with <stem>.npz inputs when "
                             "present) instead of random models")
    parser.add_argument("--failures", type=Path, metavar="DIR", help="write failing cases here")
    parser.add_argument("--profile", default="tiny", choices=("tiny", "default"),
                        help="random model profile (tests/generators/random_models.py)")
    parser.add_argument("--target", default="cpu", choices=("cpu", "cuda"),
                        help="the target compiled (cuda: on a GPU, or in Numba's simulator "
                             "with NUMBA_ENABLE_CUDASIM=1)")
    args = parser.parse_args()
    if (args.files is None) == (args.start is None or args.stop is None):
        parser.error("give START STOP or --files")
    torch.set_num_threads(1)
    if args.files:
        jobs = [({"file": str(path)}, partial(load_case, path)) for path in args.files]
    else:
        jobs = [({"seed": seed}, partial(seed_case, seed, args.profile))
                for seed in range(args.start, args.stop)]
    failed = 0
    for label, make in jobs:
        try:
            case = make()
        except Exception:              # noqa: BLE001 -- as in run_case
            case, record = None, {**label, "ok": False, "error": traceback.format_exc()[-3000:]}
        else:
            record = run_case(case, label, target=args.target)
        if not record["ok"]:
            failed += 1
            if args.failures and case is not None and "seed" in label:
                save_case(case, args.failures, f"seed{label['seed']}")
        print(json.dumps(record), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
