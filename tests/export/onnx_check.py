"""Exported ONNX models in onnxruntime against cnnc's predict, one JSON line per model.

    NUMBA_DISABLE_JIT=1 python tests/export/onnx_check.py ops [--only TEXT]
    NUMBA_DISABLE_JIT=1 python tests/export/onnx_check.py random START STOP [--profile P]

`ops`: every case of the op table (tests/ops/table.FORWARD) and the export tests' own
models (onnx_compare.EXTRA); `random`: random models
START..STOP-1 of the differential generator (tests/generators/random_models.py). With the
JIT disabled cnnc's generated kernels run as Python: the same code paths as compiled,
without Numba compiling each model (seconds per model), so many models fit CI's budget.
The comparison itself (both layouts, batches 1 and 3, the tolerance) is compare_onnx.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))     # tests/
sys.path.insert(0, str(HERE))

from onnx_compare import compare_onnx  # noqa: E402


def cases(args):
    if args.what == "ops":
        from onnx_compare import EXTRA
        from ops.table import FORWARD
        for case in FORWARD:
            if args.only in case.id:
                yield case.id, case.text, case.fuse, case.seed
        for i, (name, text) in enumerate(EXTRA.items()):
            if args.only in name:
                yield name, text, ("none", "all")[i % 2], i
    else:
        from generators.random_models import random_model
        for seed in range(args.start, args.stop):
            yield f"random-{args.profile}-{seed}", random_model(seed, args.profile), \
                ("all", "none")[seed % 2], seed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("ops", "random"))
    parser.add_argument("start", type=int, nargs="?", default=0)
    parser.add_argument("stop", type=int, nargs="?", default=20)
    parser.add_argument("--only", default="")
    parser.add_argument("--profile", default="tiny")
    args = parser.parse_args()
    failed = 0
    for name, text, fuse, seed in cases(args):
        record = {"case": name}
        try:
            record["err"] = compare_onnx(text, fuse=fuse, seed=seed)
            record["ok"] = True
        except Exception as e:                   # report and go on
            record.update(ok=False, error=f"{type(e).__name__}: {e}"[:2000],
                          trace=traceback.format_exc()[-2000:], model=text)
            failed += 1
        print(json.dumps(record), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
