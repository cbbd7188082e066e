"""Gradients of every op over its configuration grid against torch.autograd.

    NUMBA_DISABLE_JIT=1 python tests/tools/grad_grid.py [--full] [--only NAME]
    NUMBA_ENABLE_CUDASIM=1 python tests/tools/grad_grid.py --target cuda

Prints one JSON line per case. Each case is a small model around the op under test --
a 1x1 convolution before it (so the gradient flows through the op into a parameter)
and a dense layer after -- compared with tests/helpers.py's compare_gradients
(|g - g_torch| <= 1e-4 * max(1, |g_torch|)). The grid is tests/ops/table.py's: pairwise
by default, the full product with --full; every activation of the op table in every
backward position.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from helpers import compare_gradients, pairwise, product  # noqa: E402
from ops.table import CONV, POOL, conv_allowed, gradient_activation_cases  # noqa: E402


def conv_case(row) -> str:
    return (f"model m {{ input({row['height']}, {row['height'] + 3}, {row['cin']}) "
            f"conv2d({row['cin']}, kernel=1) "
            f"conv2d({row['cout']}, kernel={row['kernel']}, strides={row['stride']}, "
            f"padding={row['padding']}, dilation={row['dilation']}, activation=tanh) "
            f"flatten() dense(3, activation=softmax) }}")


def pool_case(row) -> str:
    return (f"model m {{ input({row['height']}, {row['height'] + 1}, {row['channels']}) "
            f"conv2d({row['channels']}, kernel=1) "
            f"{row['op']}({row['pool']}, strides={row['stride']}, padding={row['padding']}) "
            f"flatten() dense(3, activation=softmax) }}")


LOSS_HEADS = {
    "categorical_crossentropy": "dense(4, activation=softmax)",
    "sparse_categorical_crossentropy": "dense(4, activation=softmax)",
    "binary_crossentropy": "dense(3, activation=sigmoid)",
    "mse": "dense(3)",
}
BODY = "input(5, 6, 2) conv2d(3, kernel=3, padding=same, activation=relu) flatten()"


def cases(full: bool):
    rows = product(CONV, allowed=conv_allowed) if full else pairwise(CONV, 3, conv_allowed)
    for i, row in enumerate(rows):
        yield f"conv2d {row}", conv_case(row), "categorical_crossentropy", {"seed": i}
    for i, row in enumerate(product(POOL) if full else pairwise(POOL, 5)):
        yield f"pool {row}", pool_case(row), "categorical_crossentropy", {"seed": i}
    for op in ("global_avgpool2d", "global_maxpool2d"):
        yield op, (f"model m {{ input(4, 5, 3) conv2d(4, kernel=2, activation=relu) {op}() "
                   f"dense(3, activation=softmax) }}"), "categorical_crossentropy", {}
    yield "softmax inside", (f"model m {{ {BODY} dense(6, activation=relu) activation(softmax) "
                             f"dense(3, activation=softmax) }}"), "categorical_crossentropy", {}
    yield from gradient_activation_cases()
    yield "batchnorm", ("model m { input(5, 5, 3) conv2d(4, kernel=2, use_bias=false) "
                        "batchnorm(epsilon=0.01) activation(relu) flatten() dense(5) "
                        "batchnorm() dense(3, activation=softmax) }"), \
        "categorical_crossentropy", {}
    yield "residual", ("model m { input(5, 5, 3) conv2d(4, kernel=1) residual { conv2d(4, "
                       "kernel=3, padding=same, activation=relu) residual { "
                       "activation(tanh) } } flatten() dense(3, activation=softmax) }"), \
        "categorical_crossentropy", {}
    yield "dropout", (f"model m {{ {BODY} dropout(0.5) dense(6, activation=relu) dropout(0.3)"
                      f" dense(3, activation=softmax) }}"), "categorical_crossentropy", \
        {"dropout": True}
    for loss, head in LOSS_HEADS.items():
        for fuse in ("all", "none"):        # logits form, and probabilities (softmax apart)
            yield f"loss {loss} fuse={fuse}", f"model m {{ {BODY} {head} }}", loss, \
                {"fuse": fuse}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--only")
    parser.add_argument("--target", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    failed = 0
    for name, text, loss, kw in cases(args.full):
        if args.only and args.only not in name:
            continue
        record = {"case": name, "loss": loss, **{k: v for k, v in kw.items()}}
        try:
            compare_gradients(text, loss, batch=3, target=args.target, **kw)
            record["ok"] = True
        except Exception as e:                   # report and go on
            record.update(ok=False, error=f"{type(e).__name__}: {e}",
                          trace=traceback.format_exc()[-2000:], model=text)
            failed += 1
        print(json.dumps(record), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
