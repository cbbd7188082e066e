"""The IR package on its own: graphs and the builder, attribute kinds, windows, and the op
table's own consistency (what every entry must declare for the rest of cnnc to work)."""

from __future__ import annotations

import ast

import pytest

import cnnc
from cnnc.ir import ops
from cnnc.ir.attrs import AttrError, Enum, Float, Int, Pair
from cnnc.ir.builder import GraphBuilder
from cnnc.ir.graph import INPUT, TensorType, format_graph
from cnnc.ir.ops import ParamSpec, ShapeError
from cnnc.ir.shapes import window_2d
from cnnc.resources import templates_dir
from cnnc.targets import TARGETS
from cnnc.train.autodiff import build_training_graph
from conftest import EXAMPLES


def small_graph():
    b = GraphBuilder()
    x = b.input("input", TensorType((6, 6, 2)), INPUT)
    w = b.param("c", ParamSpec("kernel", (3, 3, 2, 4), "glorot_uniform"))
    y = b.node("conv2d", [x, w], {"filters": 4, "kernel": (3, 3), "strides": (1, 1),
                                  "padding": "valid", "dilation": (1, 1),
                                  "pads": (0, 0, 0, 0)}, layer="c", name="c")
    r = b.node("relu", [y], layer="c", name="c/relu")
    s = b.node("add", [r, r], layer="a")
    return b.build([s])


def test_builder_infers_shapes_and_names_values_uniquely():
    graph = small_graph()
    assert graph.type("c") == TensorType((4, 4, 4))
    assert graph.producer("c/relu").op == "relu"
    assert graph.uses("c/relu") == 2 and graph.uses("a") == 1        # the output counts
    assert [n.op for n in graph.consumers["c"]] == ["relu"]
    b = GraphBuilder()
    x = b.input("input", TensorType((3,)), INPUT)
    assert b.node("relu", [x], layer="r") == "r" and b.node("relu", [x], layer="r") == "r_1"
    text = format_graph(graph)
    assert "%c: (None, 4, 4, 4) = conv2d(%input, %c/kernel" in text and "return %a" in text


def test_shape_rules_refuse_with_a_message():
    b = GraphBuilder()
    x = b.input("input", TensorType((5,)), INPUT)
    with pytest.raises(ShapeError, match="expects an input of shape"):
        b.node("maxpool2d", [x], {"pool": (2, 2), "strides": (2, 2), "padding": "valid"},
               layer="p")


def test_attribute_kinds_check_values():
    assert Int().check(3) == 3
    with pytest.raises(AttrError, match="must be positive, got 0"):
        Int().check(0)
    with pytest.raises(AttrError, match="must be at most 5"):
        Int(min=0, max=5).check(6)
    assert Pair().check(3) == (3, 3) and Pair().check((2, 1)) == (2, 1)
    with pytest.raises(AttrError):
        Pair().check((2, 0))
    assert Float(0.0, 1.0, max_open=True).check(0) == 0.0
    with pytest.raises(AttrError, match="0.0 <= value < 1.0, got 1"):
        Float(0.0, 1.0, max_open=True).check(1)
    with pytest.raises(AttrError, match="finite"):
        Float().check(float("nan"))
    with pytest.raises(AttrError) as e:
        Enum(("valid", "same")).check("vaild")
    assert e.value.hint == "did you mean 'valid'?"


@pytest.mark.parametrize("size, window, stride, padding", [
    (7, 3, 2, "same"), (8, 3, 2, "same"), (6, 2, 2, "valid"), (5, 1, 1, "same")])
def test_windows_pad_as_tensorflow(size, window, stride, padding):
    attrs = {"pool": (window, window), "strides": (stride, stride), "padding": padding}
    pads = ops.get("maxpool2d").window.pads(attrs, TensorType((size, size, 1)))
    assert pads == window_2d((size, size), (window, window), (stride, stride), padding)[1]
    if padding == "same":              # TF: the odd row or column of padding goes last
        total = pads[0] + pads[1]
        assert pads[1] - pads[0] == total % 2


def test_windows_know_when_they_overlap_and_tile():
    w = ops.get("maxpool2d").window
    assert w.overlaps({"pool": (3, 3), "strides": (2, 2)})
    assert not w.overlaps({"pool": (2, 2), "strides": (2, 3)})
    assert w.tiles({"pool": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0)})
    assert not w.tiles({"pool": (2, 2), "strides": (2, 2), "pads": (0, 1, 0, 1)})
    conv = ops.get("conv2d").window
    attrs = {"kernel": (3, 3), "strides": (1, 1), "dilation": (2, 2), "padding": "same"}
    assert conv.extent(attrs) == (5, 5) and conv.describe(attrs) == "3x3/1x1 same dilation 2x2"


def test_every_op_declares_what_the_compiler_reads():
    for name, op in ops.OPS.items():
        assert op.category in ops.CATEGORIES, name
        assert op.direction in (ops.FORWARD, ops.BACKWARD, ops.LOSS, ops.UPDATE), name
        for expr in (op.expr,) if isinstance(op.expr, str) else op.expr or ():
            ast.parse(expr, mode="eval")
        if op.chainable and op.template is not None:   # (parameter-only ops have none)
            assert op.template == "elementwise", name
        if op.reduction == ops.WINDOW:
            assert op.window is not None, name
        assert set(op.takes) <= {ops.WINDOW, ops.ROW}, name
        if op.packed is not None:
            assert op.packed.op in ops.OPS and ops.get(op.packed.op).template is None, name
        for loss, logits in op.logits_losses.items():
            assert op.activation, name


def test_every_template_exists_for_every_target():
    templates = {op.template for op in ops.OPS.values() if op.template}
    for target in TARGETS.values():
        folder = templates_dir() / target.templates
        for template in templates:
            assert (folder / f"{template}.j2").is_file(), (target.name, template)
        assert (folder / "module.py.j2").is_file() and (folder / "preamble.j2").is_file()


def test_dsl_ops_examples_are_valid_layers():
    """The example each op shows in 'needs ...' errors is a layer that checks."""
    for name, op in ops.dsl_ops().items():
        if any(a.required for a in op.attrs):
            flat = op.name == "dense"
            text = (f"model m {{ input(8, 8, 3) {'flatten() ' if flat else ''}"
                    f"{name}({op.example}) }}")
            cnnc.parse(text)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.cnn")))
def test_gradient_rules_emit_ops_of_the_table(example):
    program = cnnc.parse(EXAMPLES / example)
    model = program.model()
    config = program.trains[model.name]
    tg = build_training_graph(model, config.loss, config.optimizer)
    assert {n.op for n in tg.graph.nodes} <= set(ops.OPS)
    assert set(tg.param_grads) == {p.name for p in model.graph.params if p.trainable}
    # every forward op of a training graph has a gradient rule or needs none
    for node in tg.graph.nodes:
        op = ops.get(node.op)
        if op.direction == ops.FORWARD and op.category != ops.OPAQUE:
            assert op.grad is not None or op.view, node.op
