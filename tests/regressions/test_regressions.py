"""Every model file in tests/regressions/ through the differential checks against PyTorch
(tests/tools/differential.py, JIT disabled, in one subprocess): cases that once failed
stay fixed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

HERE = Path(__file__).resolve().parent
CASES = sorted(HERE.glob("*.cnn"))


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, dict]:
    cache = tmp_path_factory.mktemp("cache")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", CNNC_CACHE_DIR=str(cache))
    result = subprocess.run([sys.executable, str(ROOT / "tests/tools/differential.py"),
                             "--files", *map(str, CASES)], env=env, capture_output=True,
                            text=True, timeout=1800, check=False)
    out = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            out[Path(record["file"]).stem] = record
    assert len(out) == len(CASES), result.stderr[-3000:]
    return out


def test_there_are_cases():
    assert CASES


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.stem)
def test_regression(case, records):
    record = records[case.stem]
    assert record["ok"], json.dumps(record, indent=1) + "\n" + case.read_text()
