"""A parallel kernel's loop body compiled once (runtime/link_once.py), checked against
Numba compiling the same functions as it always does."""

from __future__ import annotations

import ctypes

import numba
import numpy as np
import pytest
from numba import njit, prange
from numba.core import codegen

from cnnc.runtime import link_once as L
from cnnc.runtime.build import build, signatures

needs_support = pytest.mark.skipif(not L.supported(), reason=(
    f"link_once applies to Numba {L.SUPPORTED}, not {numba.__version__}"))

SOURCE = """
model small {
    input(8, 8, 2)
    conv2d(4, kernel=3, activation=relu)
    flatten()
    dense(3, activation=softmax)
}
train small {
    loss = categorical_crossentropy
    optimizer = adam
}
"""


def _row_sums(a, out):
    for i in prange(a.shape[0]):
        total = np.float32(0.0)
        for j in range(a.shape[1]):
            total += a[i, j] * a[i, j]
        out[i] = total


def _emitted(monkeypatch) -> list[str]:
    """The names of the libraries turned into machine code from now on."""
    names = []
    finalize_specific = codegen.JITCodeLibrary._finalize_specific

    def recording(self):
        names.append(self.name)
        return finalize_specific(self)
    monkeypatch.setattr(codegen.JITCodeLibrary, "_finalize_specific", recording)
    return names


@needs_support
def test_the_loop_body_becomes_machine_code_once(monkeypatch):
    """Numba emits a prange loop's gufunc, its two wrappers and the function: four
    libraries, each holding the loop body. Inside link_once() the function's library
    alone holds and emits it, and the function computes the same."""
    a = np.random.default_rng(0).random((37, 19), dtype=np.float32)
    emitted = _emitted(monkeypatch)
    plain = njit(parallel=True)(_row_sums)
    expected = np.empty(37, np.float32)
    plain(a, expected)
    parfor_libraries = [n for n in emitted if "parfor_gufunc" in n or "Gufunc" in n
                        or n == "parallelgufuncwrapper"]
    assert len(parfor_libraries) == 3, emitted
    emitted.clear()
    with L.link_once() as on:
        assert on
        once = njit(parallel=True)(_row_sums)
        got = np.empty(37, np.float32)
        once(a, got)
    assert [n for n in emitted if "parfor_gufunc" in n or "Gufunc" in n
            or n == "parallelgufuncwrapper"] == [], emitted
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(got, (a.astype(np.float64) ** 2).sum(axis=1), rtol=1e-6)


@needs_support
def test_a_linked_library_asked_for_machine_code_later_gets_it():
    """A library only linked inside link_once() is neither optimized nor emitted; asked
    for a function's address afterwards, it is both, and the function runs."""
    from llvmlite import ir
    context = numba.core.registry.cpu_target.target_context
    cg = context.codegen()
    module = ir.Module(name="cnnc_test_linked")
    i64 = ir.IntType(64)
    function = ir.Function(module, ir.FunctionType(i64, [i64]), name="cnnc_test_triple")
    builder = ir.IRBuilder(function.append_basic_block())
    builder.ret(builder.mul(function.args[0], i64(3)))
    linked = cg.create_library("cnnc_test_linked")
    linked.add_ir_module(module)
    user = cg.create_library("cnnc_test_user")
    with L.link_once():
        user.add_linking_library(linked)
    assert linked._finalized and getattr(linked, "_cnnc_deferred", False)
    address = linked.get_pointer_to_function("cnnc_test_triple")
    assert address and not linked._cnnc_deferred
    triple = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(address)
    assert triple(14) == 42


def test_outside_the_supported_versions_it_changes_nothing(monkeypatch):
    monkeypatch.setattr(numba, "__version__", "0.99.0")
    assert not L.supported()
    monkeypatch.setattr(L, "_installed", None)
    with L.link_once() as on:
        assert not on and L._depth == 0
    monkeypatch.undo()
    monkeypatch.setenv("CNNC_LINK_ONCE", "0")
    assert not L.supported()


@needs_support
def test_cnnc_kernels_compute_what_numba_compiles_them_to(tmp_path, monkeypatch):
    """A model's forward pass, its kernels compiled by cnnc (inside link_once()) and
    then by Numba as it always does, in this process: the same predictions, to 1e-6
    relative (the two compiles may vectorize a sum differently; mnist_cnn's, resnet_tiny's
    and alexnet's predictions were bit-identical, its training step differed in the last
    bit). Every oracle test of the suite runs kernels that cnnc compiled this way."""
    import cnnc
    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path))
    model = cnnc.compile(SOURCE)
    x = np.random.default_rng(1).standard_normal((6, 8, 8, 2)).astype(np.float32)
    assert build(model, jobs=1, train=False) >= 2     # the forward kernels, cnnc's way
    built = model.predict(x)
    module = model.module
    sigs = signatures(module, train=False)
    assert len(sigs) >= 2, sigs
    for name in sigs:
        kernel = getattr(module, name)
        assert kernel.stats.cache_misses        # compiled here, not loaded from a cache
        options = {k: v for k, v in kernel.targetoptions.items()
                   if k not in ("cache", "nopython")}
        plain = njit(**options)(kernel.py_func)
        for sig in sigs[name]:
            plain.compile(sig)
        monkeypatch.setattr(module, name, plain)
    model._changed()                          # prepare the parameters again
    np.testing.assert_allclose(model.predict(x), built, rtol=1e-6, atol=1e-7)
