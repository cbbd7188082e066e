"""Backward kernels against central finite differences in float64 (conv2d, pools, dense,
batchnorm, every loss, every activation); see tests/tools/finite_diff.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT


def test_finite_differences_float64(tmp_path):
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", CNNC_CACHE_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, str(ROOT / "tests/tools/finite_diff.py")],
                            env=env, capture_output=True, text=True, timeout=1200)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 16, result.stderr[-2000:]
    bad = [r for r in records if not r["ok"]]
    assert not bad, json.dumps(bad, indent=1)
    # float64 all the way: the agreement is far inside the 1e-6 bound
    assert max(r["worst"] for r in records) < 1e-7
