"""Check random models in bulk: `python tests/tools/random_check.py fusion 0 200`.

Modes:
  fusion   every fusion setting's output equals fuse="none" within 1e-5

Run with NUMBA_DISABLE_JIT=1 the generated kernels execute as plain Python, which checks
the code generator's logic on hundreds of models in a minute (compiled kernels are
checked by the op grid and example tests). Prints one JSON line per model; a failing
model's text and input go to --failures DIR, ready to become a regression test.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cnnc  # noqa: E402
from cnnc.passes.options import INFERENCE_RULES  # noqa: E402
from generators.random_models import random_model  # noqa: E402
from oracles.torch_ref import random_params  # noqa: E402


def check_fusion(seed: int, text: str) -> dict:
    model_ir = cnnc.parse(text).model()
    params = random_params(model_ir, seed)
    x = np.random.default_rng(seed).normal(
        size=(3,) + tuple(model_ir.input_type.shape)).astype(np.float32)
    outputs = {}
    for fuse in ["none", "all"] + list(INFERENCE_RULES):
        model = cnnc.compile(text, fuse=fuse)
        model.set_params(params)
        outputs[fuse] = model.predict(x)
    errors = {f: float(np.abs(y - outputs["none"]).max()) for f, y in outputs.items()}
    return {"ok": max(errors.values()) <= 1e-5, "errors": errors, "input": x}


MODES = {"fusion": check_fusion}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("start", type=int)
    parser.add_argument("stop", type=int)
    parser.add_argument("--failures", type=Path)
    args = parser.parse_args()
    failed = 0
    for seed in range(args.start, args.stop):
        text = random_model(seed)
        try:
            result = MODES[args.mode](seed, text)
        except Exception:
            result = {"ok": False, "error": traceback.format_exc(), "input": None}
        x = result.pop("input", None)
        if not result["ok"]:
            failed += 1
            if args.failures:
                args.failures.mkdir(parents=True, exist_ok=True)
                (args.failures / f"seed{seed}.cnn").write_text(text)
                if x is not None:
                    np.save(args.failures / f"seed{seed}_input.npy", x)
        print(json.dumps({"seed": seed, **result}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
