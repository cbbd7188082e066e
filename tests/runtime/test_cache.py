"""The module cache and the kernel store: one module per distinct compilation, found again
by a second compile; kernel sources from the code generator, indexed beside the module."""

from __future__ import annotations

import itertools
import json

import pytest

import cnnc
from cnnc.passes.options import RULES, Fusion
from cnnc.runtime import kernel_store
from conftest import EXAMPLES

MNIST = EXAMPLES / "mnist_cnn.cnn"
ALL = list(RULES)
# every rule alone, every rule left out, all, none, and the four inference rules
RULE_SETS = [[r] for r in ALL] + [[r for r in ALL if r != left] for left in ALL] + \
    [ALL, [], ["epilogue", "pool", "row", "elementwise"]]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _header_rules(source: str) -> str:
    line = next(line for line in source.splitlines() if line.startswith("# Fusion rules: "))
    return line.removeprefix("# Fusion rules: ")


def test_every_rule_set_gets_its_own_module_on_a_warm_cache(cache):
    """The bug this guards against: with "all" cached, any rule set keeping the four
    inference rules got the "all" training module (and a header saying "fusion all")."""
    first = cnnc.compile(MNIST, fuse="all")
    four = cnnc.compile(MNIST, fuse=["epilogue", "pool", "row", "elementwise"])
    assert four.module_path != first.module_path
    assert _header_rules(four.source) == "epilogue,pool,row,elementwise"
    # loss and updates off: cross-entropy and the updates are kernels of their own
    assert "softmax_xent_loss" not in four.source and "_update_all(" not in four.source
    paths = {}
    for rules in RULE_SETS + RULE_SETS:              # the second round hits the cache
        model = cnnc.compile(MNIST, fuse=rules if rules else "none")
        spelled = ",".join(rules) or "none"
        assert _header_rules(model.source) == spelled
        assert model.source == model.module_path.read_text()
        assert Fusion.parse(spelled) == Fusion.parse(rules if rules else "none")
        assert paths.setdefault(spelled, model.module_path) == model.module_path
    assert len(set(paths.values())) == len(paths) == len({",".join(r) for r in RULE_SETS})


def test_rule_order_and_repeats_do_not_make_new_modules(cache):
    a = cnnc.compile(MNIST, fuse="pool,epilogue")
    b = cnnc.compile(MNIST, fuse=["epilogue", "pool", "pool"])
    assert a.module_path == b.module_path
    assert _header_rules(a.source) == "epilogue,pool"


def test_fusion_spelling_round_trips():
    for n in range(len(ALL) + 1):
        for rules in itertools.combinations(ALL, n):
            fusion = Fusion.parse(list(rules) or "none")
            assert Fusion.parse(str(fusion)) == fusion
            assert set(fusion.rules) == set(rules)
    assert str(Fusion.parse("all")) == ",".join(ALL)


def test_the_kernel_store_indexes_the_generators_kernels(cache):
    model = cnnc.compile(MNIST, fuse="none")
    index = json.loads((model.module_path.parent / kernel_store.INDEX).read_text())
    from cnnc.compiler import lower
    generated = lower(MNIST, fuse="none").generate()
    assert set(index) == set(generated.kernels)
    for name, key in index.items():
        shared = (cache / "kernels" / f"k_{key}.py").read_text()
        assert generated.kernels[name] in shared and shared.startswith(generated.preamble)
        assert getattr(model.module, name) is kernel_store._LOADED[key]


def test_a_warm_load_reads_the_index_and_a_missing_one_is_rebuilt(cache):
    model = cnnc.compile(MNIST, fuse="none")
    index_path = model.module_path.parent / kernel_store.INDEX
    from cnnc.runtime.cache import import_module

    def fail():
        raise AssertionError("the code generator ran on a warm load")

    kernel_store.link(import_module(model.module_path, "warm_check"), model.module_path, fail)
    assert (index_path.parent / (kernel_store.INDEX + ".sha256")).exists()
    index_path.write_text("{ not json")
    cnnc.compile(MNIST, fuse="none")                 # regenerates the index
    assert json.loads(index_path.read_text())
    key = next(iter(json.loads(index_path.read_text()).values()))
    (cache / "kernels" / f"k_{key}.py").unlink()     # a kernel file gone: rebuilt too
    cnnc.compile(MNIST, fuse="none")
    assert (cache / "kernels" / f"k_{key}.py").exists()
