"""Each pass, before and after, on small hand-built graphs."""

from __future__ import annotations

import pytest

from cnnc.ir.builder import GraphBuilder
from cnnc.ir.graph import INPUT, TensorType
from cnnc.ir.ops import ParamSpec
from cnnc.passes import (PassContext, fold_batchnorm, fuse, fuse_loss, pack_kernels,
                         simplify_inference, sink_views)
from cnnc.passes.options import Fusion
from cnnc.passes.verify import VerifyError, verify

ALL = ("epilogue", "pool", "row", "elementwise")


def ctx(rules=ALL, pack=True):
    return PassContext(Fusion.parse(list(rules)), pack)


def conv_attrs(k=3, s=1, padding="valid", pads=(0, 0, 0, 0), filters=4):
    return {"filters": filters, "kernel": (k, k), "strides": (s, s), "padding": padding,
            "dilation": (1, 1), "pads": pads}


def pool_attrs(p=2, s=2, pads=(0, 0, 0, 0)):
    return {"pool": (p, p), "strides": (s, s), "padding": "valid", "pads": pads}


def conv(b, x, name, cin=3, filters=4, **kw):
    w = b.param(name, ParamSpec("kernel", (3, 3, cin, filters), "glorot_uniform"))
    y = b.node("conv2d", [x, w], conv_attrs(filters=filters, **kw), layer=name, name=name)
    bias = b.param(name, ParamSpec("bias", (filters,), "zeros"))
    return b.node("bias_add", [y, bias], layer=name, name=f"{name}/bias_add")


def ops_of(graph):
    return [(n.op if not n.body else "+".join(m.op for m in n.body)) for n in graph.nodes
            if graph.type(n.outputs[0]).batched]


def start(shape=(8, 8, 3)):
    b = GraphBuilder()
    return b, b.input("input", TensorType(shape), INPUT)


# --- simplify_inference ---------------------------------------------------------------

def test_simplify_removes_dropout_and_linear_and_keeps_flatten():
    b, x = start()
    d = b.node("dropout", [x], {"rate": 0.5}, layer="dropout")
    lin = b.node("linear", [d], layer="activation")
    f = b.node("flatten", [lin], layer="flatten")
    r = b.node("relu", [f], layer="activation_1")
    graph = b.build([r])
    after = simplify_inference.run(graph, ctx())
    assert [n.op for n in after.nodes] == ["flatten", "relu"]
    assert after.node("flatten").inputs == ("input",)
    verify(after)


def test_simplify_rewires_a_graph_output():
    b, x = start()
    r = b.node("relu", [x], layer="a")
    d = b.node("dropout", [r], {"rate": 0.1}, layer="d")
    after = simplify_inference.run(b.build([d]), ctx())
    assert after.outputs == ("a",)


# --- fold_batchnorm -------------------------------------------------------------------

def bn(b, x, name, c=4):
    specs = [ParamSpec("gamma", (c,), "ones"), ParamSpec("beta", (c,), "zeros"),
             ParamSpec("moving_mean", (c,), "zeros", False),
             ParamSpec("moving_variance", (c,), "ones", False)]
    params = [b.param(name, s) for s in specs]
    return b.node("batchnorm", [x] + params, {"momentum": 0.99, "epsilon": 1e-3}, layer=name,
                  name=name)


def test_fold_batchnorm_into_conv_with_bias():
    b, x = start()
    y = bn(b, conv(b, x, "c"), "bn")
    graph = b.build([b.node("relu", [y], layer="r")])
    after = fold_batchnorm.run(graph, ctx())
    assert [n.op for n in after.nodes] == ["bn_scale", "scale_kernel", "fold_bias", "conv2d",
                                           "bias_add", "relu"]
    conv_node = after.node("c")
    assert conv_node.inputs == ("input", "c/kernel@bn")
    assert after.node("bn").inputs == ("c", "bn/folded_bias")      # the new bias_add
    assert after.values["c/kernel@bn"].role == "derived"
    verify(after)


def test_fold_batchnorm_refuses_when_the_conv_output_is_read_twice():
    b, x = start()
    c = conv(b, x, "c")
    y = bn(b, c, "bn")
    graph = b.build([b.node("add", [y, c], layer="add")])
    context = ctx()
    after = fold_batchnorm.run(graph, context)
    assert [n.op for n in after.nodes] == [n.op for n in graph.nodes]
    assert context.report.refusals[0].reason == "output of 'c' is used twice"


def test_fold_batchnorm_refuses_after_pooling():
    b, x = start()
    y = bn(b, b.node("maxpool2d", [x], pool_attrs(), layer="p"), "bn", c=3)
    context = ctx()
    after = fold_batchnorm.run(b.build([y]), context)
    assert [n.op for n in after.nodes] == ["maxpool2d", "batchnorm"]
    assert context.report.refusals[0].reason == "not preceded by conv2d or dense"


# --- pack_kernels ---------------------------------------------------------------------

def test_pack_kernels_layouts():
    b, x = start((6, 6, 1))
    c1 = conv(b, x, "c1", cin=1)                       # one input channel: HWIO stays
    c2 = conv(b, c1, "c2", cin=4)                      # packed in panels of 16 outputs
    f = b.node("flatten", [c2], layer="f")
    w = b.param("d", ParamSpec("kernel", (16 * 4, 5), "glorot_uniform"))
    d = b.node("dense", [f, w], {"units": 5}, layer="d", name="d")
    after = pack_kernels.run(b.build([d]), ctx())
    assert after.node("c1").inputs[1] == "c1/kernel"
    assert "kernel_layout" not in after.node("c1").attrs
    assert after.node("c2").inputs[1] == "c2/kernel:panels"
    assert after.type("c2/kernel:panels").shape == (1, 36, 16)    # 4 outputs padded to 16
    assert after.node("d").attrs["kernel_layout"] == "panels"
    assert after.type("d/kernel:panels").shape == (1, 64, 32)     # 5 outputs padded to 32
    verify(after)
    # a target whose kernels read the Keras layouts (CUDA's tiles): nothing changes
    graph = b.build([d])
    assert pack_kernels.run(graph, ctx(pack=False)) is graph


# --- sink_views -----------------------------------------------------------------------

def _dense_reshape_dropout_grad():
    b, x = start((4, 4, 2))
    f = b.node("flatten", [x], layer="f")
    w = b.param("d", ParamSpec("kernel", (32, 32), "glorot_uniform"))
    d = b.node("dense", [f, w], {"units": 32}, layer="d", name="d")
    r = b.node("reshape", [d], {"shape": (4, 4, 2)}, layer="d", name="r")
    seed = b.input("seed", TensorType((), batched=False, dtype="int64"), INPUT)
    g = b.node("dropout_grad", [r, seed], {"rate": 0.5, "salt": 1}, layer="g", name="g")
    relu = b.node("relu", [g], layer="g", name="relu")
    return b.build([relu])


def test_sink_views_moves_elementwise_ops_above_a_reshape():
    graph = _dense_reshape_dropout_grad()
    after = sink_views.run(graph, ctx())
    verify(after)
    # the dropout gradient (scalar seed) moves up; relu follows it; the reshape comes last
    assert [n.op for n in after.nodes] == ["flatten", "dense", "dropout_grad", "relu",
                                           "reshape"]
    assert after.node("g").inputs[0] == "d"
    assert after.type(after.node("g").output).shape == (32,)
    assert after.outputs == graph.outputs and after.type(after.outputs[0]).shape == (4, 4, 2)
    fused = fuse.run(after, ctx())
    assert ops_of(fused) == ["flatten", "dense+dropout_grad+relu", "reshape"]


def test_sink_views_is_part_of_the_epilogue_rule():
    graph = _dense_reshape_dropout_grad()
    assert sink_views.run(graph, ctx(("pool", "row", "elementwise"))) is graph


def test_sink_views_keeps_broadcast_ops_below_the_reshape():
    b, x = start((4, 4, 2))
    f = b.node("flatten", [x], layer="f")
    r = b.node("reshape", [f], {"shape": (4, 4, 2)}, layer="f", name="r")
    bias = b.param("c", ParamSpec("bias", (2,), "zeros"))
    y = b.node("bias_add", [r, bias], layer="c", name="c")   # per channel: shape-dependent
    graph = b.build([y])
    assert sink_views.run(graph, ctx()) is graph


# --- fuse -----------------------------------------------------------------------------

def test_epilogue_pool_row_rules():
    b, x = start()
    r = b.node("relu", [conv(b, x, "c")], layer="c")
    p = b.node("maxpool2d", [r], pool_attrs(), layer="p")
    f = b.node("flatten", [p], layer="f")
    w = b.param("d", ParamSpec("kernel", (27 * 4 // 3 * 0 + 9 * 4, 3), "glorot_uniform"))
    d = b.node("dense", [f, w], {"units": 3}, layer="d", name="d")
    s = b.node("softmax", [d], layer="d")
    graph = b.build([s])
    after = fuse.run(graph, ctx())
    assert ops_of(after) == ["conv2d+bias_add+relu+maxpool2d", "flatten", "dense+softmax"]
    rules = [n.rule for n in after.nodes if n.body]
    assert rules == ["epilogue+pool", "row"]
    verify(after)


@pytest.mark.parametrize("rules, expected", [
    ((), ["conv2d", "bias_add", "relu", "maxpool2d"]),
    (("epilogue",), ["conv2d+bias_add+relu", "maxpool2d"]),
    (("pool",), ["conv2d", "bias_add", "relu", "maxpool2d"]),
    (("elementwise",), ["conv2d", "bias_add+relu", "maxpool2d"]),
    (("epilogue", "pool"), ["conv2d+bias_add+relu+maxpool2d"]),
])
def test_each_rule_switches_on_its_own(rules, expected):
    b, x = start()
    r = b.node("relu", [conv(b, x, "c")], layer="c")
    p = b.node("maxpool2d", [r], pool_attrs(), layer="p")
    assert ops_of(fuse.run(b.build([p]), ctx(rules))) == expected


def test_overlapping_pool_windows_are_not_fused():
    b, x = start()
    r = b.node("relu", [conv(b, x, "c")], layer="c")
    p = b.node("maxpool2d", [r], pool_attrs(p=3, s=2), layer="p")
    context = ctx()
    after = fuse.run(b.build([p]), context)
    assert ops_of(after) == ["conv2d+bias_add+relu", "maxpool2d"]
    (decision,) = context.report.refusals
    assert (decision.rule, decision.node) == ("pool", "p")
    assert decision.reason.startswith("pool windows overlap")


def test_output_used_twice_stops_the_group():
    b, x = start()
    c = conv(b, x, "c", padding="same", pads=(1, 1, 1, 1), filters=3)
    r = b.node("relu", [c], layer="c")
    c2 = conv(b, r, "c2", padding="same", pads=(1, 1, 1, 1), filters=3)
    a = b.node("add", [c2, r], layer="add")
    context = ctx()
    after = fuse.run(b.build([b.node("relu", [a], layer="act")]), context)
    assert ops_of(after) == ["conv2d+bias_add+relu", "conv2d+bias_add+add+relu"]
    assert any("output used twice" in d.reason for d in context.report.refusals)


def test_diamond_joins_at_its_post_dominator():
    """relu(v) and v both feed add: v's readers rejoin at add, all elementwise."""
    b, x = start()
    c = conv(b, x, "c")
    t = b.node("tanh", [c], layer="t")
    s = b.node("sigmoid", [c], layer="s")
    a = b.node("add", [t, s], layer="add")
    graph = b.build([b.node("relu", [a], layer="r")])
    after = fuse.run(graph, ctx())
    assert ops_of(after) == ["conv2d+bias_add+tanh+sigmoid+add+relu"]
    verify(after)


def test_diamond_joins_at_the_true_post_dominator():
    """tanh's output also feeds `extra`, so the paths rejoin only at add2."""
    b, x = start()
    c = conv(b, x, "c")
    t = b.node("tanh", [c], layer="t")
    s = b.node("sigmoid", [c], layer="s")
    a = b.node("add", [t, s], layer="add")
    extra = b.node("relu", [t], layer="extra")
    out = b.node("add", [a, extra], layer="add2")
    after = fuse.run(b.build([out]), ctx())
    assert ops_of(after) == ["conv2d+bias_add+tanh+sigmoid+add+relu+add"]
    verify(after)


def test_diamond_through_a_complex_op_is_refused():
    b, x = start()
    c = conv(b, x, "c", filters=3)
    t = b.node("tanh", [c], layer="t")
    c2 = conv(b, t, "c2", padding="same", pads=(1, 1, 1, 1), filters=3)
    a = b.node("add", [c2, t], layer="add")
    context = ctx()
    after = fuse.run(b.build([a]), context)
    assert ops_of(after) == ["conv2d+bias_add+tanh", "conv2d+bias_add+add"]
    (refusal,) = context.report.refusals
    assert refusal.node == "add" and refusal.reason.startswith("output used twice (by add, c2)")


def test_elementwise_chain_without_anchor():
    b, x = start()
    y = bn(b, b.node("maxpool2d", [x], pool_attrs(), layer="p"), "bn", c=3)
    graph = b.build([b.node("relu", [y], layer="r")])
    after = fuse.run(graph, ctx())
    assert ops_of(after) == ["maxpool2d+batchnorm+relu"]
    after = fuse.run(graph, ctx(("elementwise",)))
    assert ops_of(after) == ["maxpool2d", "batchnorm+relu"]


def test_verifier_catches_broken_graphs():
    b, x = start()
    r = b.node("relu", [x], layer="r")
    graph = b.build([r])
    broken = graph.replace(nodes=(graph.nodes[0].with_(inputs=("nope",)),))
    with pytest.raises(VerifyError, match="reads nope before it is defined"):
        verify(broken)
    twice = graph.replace(nodes=graph.nodes * 2)
    with pytest.raises(VerifyError, match="assigned twice"):
        verify(twice)


# --- fuse_loss ------------------------------------------------------------------------

def _training_graph(last="softmax", loss="categorical_crossentropy"):
    import cnnc
    from cnnc.frontend.program import OptimizerConfig
    from cnnc.train.autodiff import build_training_graph
    model = cnnc.parse(f"model m {{ input(2, 2, 1) flatten() dense(3, activation={last}) }}")
    return build_training_graph(model.model(), loss, OptimizerConfig("sgd", {
        "learning_rate": 0.01, "momentum": 0.0, "nesterov": False})).graph


def test_fuse_loss_turns_softmax_and_cross_entropy_into_the_logits_form():
    graph = _training_graph()
    assert graph.node("loss").attrs["kind"] == "cce"
    assert "softmax_grad" in [n.op for n in graph.nodes]
    context = ctx(ALL + ("loss",))
    after = fuse_loss.run(graph, context)
    ops = [n.op for n in after.nodes]
    assert "softmax" not in ops and "softmax_grad" not in ops
    loss = after.node("loss")
    assert loss.attrs["kind"] == "softmax_xent" and loss.inputs == ("dense/bias_add", "labels")
    # the bias gradient reads the loss's gradient (dz = p - y) directly
    assert after.node("d/dense/bias_grad").inputs == ("loss:dz",)
    assert context.report.notes == [("fuse_loss", "'dense/softmax' joined 'loss': "
                                                  "softmax_xent from logits")]
    verify(after)


def test_fuse_loss_binary_and_switched_off():
    graph = _training_graph("sigmoid", "binary_crossentropy")
    assert fuse_loss.run(graph, ctx(("loss",))).node("loss").attrs["kind"] == "sigmoid_bce"
    context = ctx(ALL)
    assert fuse_loss.run(graph, context) is graph
    (refusal,) = context.report.refusals
    assert (refusal.rule, refusal.node, refusal.reason) == (
        "loss", "dense/sigmoid", "rule 'loss' is switched off")
    # mse has no logits form: nothing to join, nothing refused
    context = ctx(("loss",))
    assert fuse_loss.run(_training_graph("sigmoid", "mse"), context).node(
        "loss").attrs["kind"] == "mse" and not context.report.refusals


def test_fuse_loss_refuses_when_the_probabilities_are_read_elsewhere():
    from cnnc.ir.graph import Node
    graph = _training_graph()
    extra = Node("peek", "relu", ("dense/softmax",), ("peek",), layer="peek")
    values = dict(graph.values, peek=graph.values["dense/softmax"].__class__(
        "peek", graph.type("dense/softmax")))
    graph = graph.replace(nodes=graph.nodes + (extra,), values=values,
                          outputs=graph.outputs + ("peek",))
    context = ctx(("loss",))
    assert fuse_loss.run(graph, context) is graph
    assert context.report.refusals[0].reason == "'dense/softmax' is read by more than its loss"
