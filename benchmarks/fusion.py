"""Fusion study: predict time of each example model under each fusion setting.

    python benchmarks/fusion.py [--models mnist_cnn,resnet_tiny] [--rounds 5]

Settings: `none` (the baseline: every op its own jitted kernel), `all`, each rule alone,
and all rules but one. One process, interleaved rounds, medians; ratios are speedups
over `none`. Kernel counts and intermediate bytes per sample come from `cnnc explain`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCH = {"mnist_cnn": 256, "lenet5": 256, "resnet_tiny": 64, "alexnet": 4}


def settings():
    from cnnc.passes.options import INFERENCE_RULES
    out = ["none", "all"] + list(INFERENCE_RULES)
    out += ["all-" + r for r in INFERENCE_RULES]
    return out


def fuse_arg(setting: str):
    from cnnc.passes.options import INFERENCE_RULES
    if setting.startswith("all-"):
        return [r for r in INFERENCE_RULES if r != setting[4:]]
    return setting


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(BATCH))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import cnnc
    from cnnc.reports.explain import explain
    from common import interleaved, machine

    print(f"machine: {machine()}")
    for name in args.models.split(","):
        path = ROOT / "examples" / f"{name}.cnn"
        model_ir = cnnc.parse(path).model()
        batch = BATCH[name]
        x = np.random.default_rng(0).random((batch,) + tuple(model_ir.input_type.shape),
                                            dtype=np.float32)
        compiled, info = {}, {}
        for setting in settings():
            compiled[setting] = cnnc.compile(path, fuse=fuse_arg(setting))
            exp = explain(model_ir, fuse=fuse_arg(setting))
            info[setting] = (exp.kernels_after, exp.intermediate_after)
        reference = compiled["none"].predict(x)
        for setting, m in compiled.items():
            err = np.abs(m.predict(x) - reference).max()
            assert err <= 1e-5, (name, setting, err)
        medians, _ = interleaved({s: (lambda m=m: m.predict(x)) for s, m in compiled.items()},
                                 rounds=args.rounds, reps=3)
        base = medians["none"]
        print(f"\n{name} (batch {batch})")
        print(f"  {'setting':18s} {'kernels':>7s} {'interm. KiB/sample':>19s} "
              f"{'median ms':>10s} {'speedup vs none':>16s}")
        for setting in compiled:
            kernels, interm = info[setting]
            print(f"  {setting:18s} {kernels:7d} {interm / 1024:19.1f} "
                  f"{medians[setting] * 1e3:10.3f} {base / medians[setting]:15.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
