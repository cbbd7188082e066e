"""Cached kernels loaded without Numba's compiler registries (runtime/warm_load.py)."""

from __future__ import annotations

import pytest
from helpers import run_json

from cnnc.runtime import warm_load

SOURCE = """
model w {
    input(6, 6, 2)
    conv2d(4, kernel=3, activation=relu)
    maxpool2d(2)
    flatten()
    dense(3, activation=softmax)
}
"""

# Modules that only Numba's registry refresh imports (CPUContext.load_additional_registries):
# a cnnc kernel's cached machine code needs none of them. numba.np.arrayobj among them:
# the kernels reshape and allocate with the preamble's intrinsics, whose code has no
# environment of that module's to load with it (np.empty's and reshape's have).
REFRESH_ONLY = ["numba.np.linalg", "numba.typed.typeddict", "numba.np.npyimpl",
                "numba.experimental.jitclass.base", "numba.np.arrayobj"]

RUN = """
import json, sys
import numpy as np
import numba.core.runtime.nrtdynmod as nrtdynmod
compiles = []          # the NRT library compiled (its LLVM module made) in this process
make_runtime = nrtdynmod.create_nrt_module
nrtdynmod.create_nrt_module = lambda ctx: compiles.append(1) or make_runtime(ctx)
import cnnc
model = cnnc.compile(SOURCE)
x = np.random.default_rng(3).standard_normal((5, 6, 6, 2)).astype(np.float32)
y = model.predict(x)
kernels = [getattr(model.module, name) for name in model.module._cnnc_kernel_files]
called = [k for k in kernels if k.signatures]
hits = sum(sum(k.stats.cache_hits.values()) for k in called)
misses = sum(sum(k.stats.cache_misses.values()) for k in called)
loaded = [name for name in REFRESH_ONLY if name in sys.modules]

# the user's own function, compiled afterwards in the same process, with what the
# registries provide (numpy's ufuncs on arrays, a typed dict)
import numba
from numba import njit
from numba.typed import Dict
@njit
def own(a):
    d = Dict.empty(numba.types.int64, numba.types.float64)
    d[1] = np.sqrt(np.sum(np.multiply(a, a)))
    return d[1]
a = np.arange(4.0)
print(json.dumps({"y": y.tobytes().hex(), "hits": hits, "misses": misses,
                  "called": len(called), "loaded": loaded, "runtime_compiles": len(compiles),
                  "own": own(a), "expected": float(np.sqrt((a * a).sum()))}))
"""


def run(tmp_path, **env):
    code = f"SOURCE = {SOURCE!r}\nREFRESH_ONLY = {REFRESH_ONLY!r}\n" + RUN
    return run_json(code, tmp_path / "cache", **env)


@pytest.mark.skipif(not warm_load.enabled(), reason="warm_load does not apply here")
def test_a_warm_start_loads_the_kernels_without_the_registries(tmp_path):
    """A second process loads every kernel the prediction calls from Numba's cache (no
    compile), predicts the same bits as the process that compiled them, and never
    imports the registries' modules; a function of the user's own compiled afterwards
    gets them, and computes what numpy does. The NRT's library is compiled by the first
    process only; the second loads its machine code from the cache, and the user's
    function links against it. With CNNC_WARM_LOAD=0 the same load imports the
    registries' modules and compiles the NRT (so the checks above can fail)."""
    cold = run(tmp_path)
    assert cold["misses"] >= 1 and cold["loaded"] == REFRESH_ONLY   # compiling loads them
    assert cold["runtime_compiles"] == 1
    assert len(list((tmp_path / "cache" / warm_load.RUNTIME_FOLDER).glob("nrt-*.o"))) == 1
    warm = run(tmp_path)
    assert warm["called"] == cold["called"] and warm["misses"] == 0
    assert warm["hits"] == warm["called"]
    assert warm["y"] == cold["y"]
    assert warm["loaded"] == [] and warm["runtime_compiles"] == 0
    assert warm["own"] == pytest.approx(warm["expected"], rel=1e-12)
    plain = run(tmp_path, CNNC_WARM_LOAD="0")
    assert plain["misses"] == 0 and plain["y"] == cold["y"]
    assert plain["loaded"] == REFRESH_ONLY and plain["runtime_compiles"] == 1


def test_it_leaves_what_it_cannot_change(monkeypatch):
    """A kernel without Numba's cache (NUMBA_DISABLE_JIT's plain function), or any kernel
    where it is switched off, is left as it is."""
    def plain(x):
        return x
    assert not warm_load.load_without_refresh(plain)
    monkeypatch.setenv("CNNC_WARM_LOAD", "0")
    assert not warm_load.enabled()
