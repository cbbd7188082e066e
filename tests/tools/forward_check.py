"""The op table's forward cases against PyTorch, one JSON line each.

    NUMBA_DISABLE_JIT=1 python tests/tools/forward_check.py [--only TEXT] [--target cuda]

With the JIT disabled the generated kernels run as Python: their logic on many models in
seconds (tests/ops/test_op_table.py runs the activation positions this way on the CPU,
and compiles every activation once in a stacked model).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))     # tests/

from helpers import compare  # noqa: E402
from oracles.tolerances import BATCHES  # noqa: E402
from ops.table import FORWARD  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="")
    parser.add_argument("--target", default="cpu", choices=tuple(BATCHES))
    args = parser.parse_args()
    failed = 0
    for case in FORWARD:
        if args.only not in case.id:
            continue
        record = {"case": case.id, "fuse": case.fuse}
        try:
            compare(case.text, fuse=case.fuse, batches=BATCHES[args.target], seed=case.seed,
                    target=args.target)
            record["ok"] = True
        except Exception as e:                   # report and go on
            record.update(ok=False, error=f"{type(e).__name__}: {e}",
                          trace=traceback.format_exc()[-2000:], model=case.text)
            failed += 1
        print(json.dumps(record), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
