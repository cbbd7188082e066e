"""The language: values, naming, layouts, padding and shape rules."""

from __future__ import annotations

import re

import pytest

import cnnc
from cnnc.errors import CnncError
from cnnc.frontend import ast
from cnnc.frontend.parser import parse_text
from cnnc.errors import Diagnostics


def model_of(body: str, input_shape="28, 28, 1"):
    return cnnc.parse(f"model m {{ input({input_shape})\n{body}\n}}").model()


def test_values_parse_to_their_kinds():
    text = ('model m { input(1, 1, 1) }\n'
            'train m { data = "dir/x.npz" loss = mse optimizer = sgd(learning_rate=1e-2, '
            'nesterov=true, momentum=.5) metrics = [accuracy,] batch_size = 7 seed = 3 }')
    diags = Diagnostics("t", text.splitlines())
    tree = parse_text(text, diags)
    assert not diags
    settings = {s.key: s.value for s in tree.trains[0].settings}
    assert settings["data"] == ast.Str("dir/x.npz", settings["data"].loc)
    opt = settings["optimizer"]
    assert isinstance(opt, ast.Call) and opt.name == "sgd"
    assert [(a.key, type(a.value).__name__, a.value.value) for a in opt.args] == [
        ("learning_rate", "Float", 0.01), ("nesterov", "Bool", True), ("momentum", "Float", 0.5)]
    assert isinstance(settings["metrics"], ast.List)
    assert settings["batch_size"].value == 7


def test_layout_is_free_form_and_comments_are_ignored():
    one_line = cnnc.parse("model m{input(8,8,1)conv2d(4,kernel=3)flatten()dense(2)}").model()
    spread = cnnc.parse("""
        # a comment
        model m
        {   input( 8 , 8 , 1 )   # trailing comment
            conv2d( 4 ,
                    kernel = 3 )
            flatten ( ) dense ( 2 ) }
    """).model()
    assert [n.op for n in one_line.graph.nodes] == [n.op for n in spread.graph.nodes]
    assert one_line.param_count == spread.param_count == 3 * 3 * 4 + 4 + 6 * 6 * 4 * 2 + 2


def test_pairs_and_tuples():
    model = model_of("conv2d(4, kernel=(3, 5), strides=(1, 2)) "
                     "conv2d(2, kernel=(3, 2), dilation=(2, 1))")
    node = model.graph.node("conv2d")
    assert node.attrs["kernel"] == (3, 5)
    assert node.attrs["strides"] == (1, 2)
    # (28 - 3) // 1 + 1 = 26 rows; (28 - 5) // 2 + 1 = 12 columns
    assert model.layers[0].output.shape == (26, 12, 4)
    assert model.graph.type("conv2d/kernel").shape == (3, 5, 1, 4)
    # dilated extent (3 - 1) * 2 + 1 = 5 rows: 26 - 5 + 1 = 22; 12 - 2 + 1 = 11
    assert model.graph.node("conv2d_1").attrs["dilation"] == (2, 1)
    assert model.layers[1].output.shape == (22, 11, 2)
    with pytest.raises(CnncError, match="strides > 1 cannot be combined with dilation > 1"):
        model_of("conv2d(4, kernel=3, strides=2, dilation=2)")


def test_keras_style_names_skip_explicit_ones():
    model = model_of('conv2d(4, kernel=3) conv2d(4, kernel=3, name="conv2d_1") '
                     'conv2d(4, kernel=3) maxpool2d(2) avgpool2d(1) batchnorm() '
                     'activation(relu) flatten() dropout(0.1) dense(3) dense(2)')
    assert [layer.name for layer in model.layers] == [
        "conv2d", "conv2d_1", "conv2d_2", "max_pooling2d", "average_pooling2d",
        "batch_normalization", "activation", "flatten", "dropout", "dense", "dense_1"]
    assert [p.name for p in model.graph.params][:4] == [
        "conv2d/kernel", "conv2d/bias", "conv2d_1/kernel", "conv2d_1/bias"]
    assert [p.name for p in model.graph.params if p.layer == "batch_normalization"] == [
        "batch_normalization/gamma", "batch_normalization/beta",
        "batch_normalization/moving_mean", "batch_normalization/moving_variance"]
    assert [p.trainable for p in model.graph.params if p.layer == "batch_normalization"] == \
        [True, True, False, False]


def test_layers_lower_to_op_bias_and_activation():
    model = model_of("flatten() dense(8, activation=relu) dense(4, use_bias=false) "
                     "activation(leaky_relu, alpha=0.1) dense(2, activation=elu(alpha=0.5))")
    assert [(n.name, n.op) for n in model.graph.nodes] == [
        ("flatten", "flatten"), ("dense", "dense"), ("dense/bias_add", "bias_add"),
        ("dense/relu", "relu"), ("dense_1", "dense"), ("activation", "leaky_relu"),
        ("dense_2", "dense"), ("dense_2/bias_add", "bias_add"), ("dense_2/elu", "elu")]
    assert model.graph.node("activation").attrs["alpha"] == 0.1
    assert model.graph.node("dense_2/elu").attrs["alpha"] == 0.5
    assert "dense_1/bias" not in model.graph.param_by_name


def test_keras_defaults():
    model = model_of("conv2d(4, kernel=3) maxpool2d(2) activation(leaky_relu) "
                     "activation(elu) batchnorm()")
    graph = model.graph
    conv = graph.node("conv2d")
    assert (conv.attrs["strides"], conv.attrs["padding"], conv.attrs["dilation"]) == \
        ((1, 1), "valid", (1, 1))
    assert graph.node("conv2d/bias_add").op == "bias_add"
    assert graph.node("max_pooling2d").attrs["strides"] == (2, 2)
    assert graph.node("activation").attrs["alpha"] == 0.3
    assert graph.node("activation_1").attrs["alpha"] == 1.0
    bn = graph.node("batch_normalization")
    assert (bn.attrs["momentum"], bn.attrs["epsilon"]) == (0.99, 0.001)


@pytest.mark.parametrize("n, k, s, d, expected", [
    # TF 'same': out = ceil(n / s), total pad = max((out-1)*s + (k-1)*d + 1 - n, 0),
    # extra at the bottom/right. Values from the formula by hand.
    (28, 3, 1, 1, (28, 1, 1)),
    (28, 2, 1, 1, (28, 0, 1)),      # odd total: bottom gets the extra row
    (28, 3, 2, 1, (14, 0, 1)),      # (13*2 + 3 - 28) = 1
    (27, 3, 2, 1, (14, 1, 1)),
    (7, 5, 3, 1, (3, 2, 2)),        # (2*3 + 5 - 7) = 4
    (10, 3, 1, 2, (10, 2, 2)),      # dilated extent 5
    (5, 1, 3, 1, (2, 0, 0)),
    (227, 11, 4, 1, (57, 4, 5)),   # (56*4 + 11 - 227) = 8 ... -> 4, 4? see below
])
def test_same_padding_follows_tf(n, k, s, d, expected):
    from cnnc.ir.shapes import window_out
    out, before, after = window_out(n, k, s, "same", d)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    assert out == -(-n // s)
    assert (before, after) == (total // 2, total - total // 2)
    if expected[0] != 57:
        assert (out, before, after) == expected


def test_same_padding_shapes_agree_with_torch():
    torch = pytest.importorskip("torch")
    from cnnc.ir.shapes import window_2d
    for n in (5, 6, 7, 28, 31):
        for k in (1, 2, 3, 5):
            for s in (1, 2, 3):
                for d in (1, 2):
                    (oh, ow), (pt, pb, pl, pr) = window_2d((n, n + 1), (k, k), (s, s),
                                                           "same", (d, d))
                    x = torch.zeros(1, 1, n, n + 1)
                    x = torch.nn.functional.pad(x, (pl, pr, pt, pb))
                    y = torch.nn.functional.conv2d(x, torch.zeros(1, 1, k, k), stride=s,
                                                   dilation=d)
                    assert y.shape[2:] == (oh, ow) == (-(-n // s), -(-(n + 1) // s))


def test_valid_padding_and_strides():
    model = model_of("conv2d(4, kernel=5, strides=3) maxpool2d(3, strides=2, padding=same)",
                     input_shape="31, 30, 3")
    # conv: (31-5)//3+1 = 9, (30-5)//3+1 = 9; pool same: ceil(9/2) = 5
    assert [layer.output.shape for layer in model.layers] == [(9, 9, 4), (5, 5, 4)]
    assert model.graph.node("max_pooling2d").attrs["pads"] == (1, 1, 1, 1)


def test_residual_blocks_nest():
    model = model_of("""
        conv2d(8, kernel=3, padding=same)
        residual {
            conv2d(8, kernel=3, padding=same)
            residual { activation(relu) conv2d(8, kernel=1) }
        }
        global_avgpool2d()
        dense(2)
    """)
    graph = model.graph
    # Keras creates the inner block's Add first, so it is "add" and the outer "add_1".
    assert [n.name for n in graph.nodes if n.op == "add"] == ["add", "add_1"]
    inner, outer = (graph.node("add"), graph.node("add_1"))
    assert inner.inputs[1] == "conv2d_1/bias_add"
    assert outer.inputs == ("add", "conv2d/bias_add")
    assert [layer.depth for layer in model.layers] == [0, 1, 2, 2, 1, 0, 0, 0]


def test_parse_accepts_paths_and_text(tmp_path):
    path = tmp_path / "net.cnn"
    path.write_text("model net { input(4, 4, 1) flatten() dense(2) }\n")
    assert cnnc.parse(path).model().name == "net"
    assert cnnc.parse(str(path)).file == str(path)
    assert cnnc.parse(path.read_text()).file == "<string>"
    with pytest.raises(CnncError, match="no such file"):
        cnnc.parse(tmp_path / "missing.cnn")


def test_several_models_and_train_blocks():
    program = cnnc.parse("""
        model a { input(4, 4, 1) flatten() dense(2, activation=softmax) }
        model b { input(4, 4, 1) flatten() dense(1, activation=sigmoid) }
        train b { loss = binary_crossentropy optimizer = rmsprop(momentum=0.5) }
        train a { loss = sparse_categorical_crossentropy optimizer = adam validation_split = 0.1 }
    """)
    assert list(program.models) == ["a", "b"]
    assert program.trains["b"].optimizer.hyper == {
        "learning_rate": 0.001, "rho": 0.9, "momentum": 0.5, "epsilon": 1e-7}
    assert program.trains["a"].optimizer.hyper == {
        "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    assert program.trains["a"].validation_split == 0.1
    assert program.trains["a"].batch_size == 32 and program.trains["a"].epochs == 1


def test_strings_unescape():
    model = model_of(r'conv2d(2, kernel=1, name="a.b-c_1")')
    assert model.layers[0].name == "a.b-c_1"


def test_positional_arguments_in_declaration_order():
    model = model_of("conv2d(4, 3) maxpool2d((2, 3), (1, 1))")
    assert model.graph.node("conv2d").attrs["kernel"] == (3, 3)
    assert model.graph.node("max_pooling2d").attrs["pool"] == (2, 3)
    with pytest.raises(CnncError, match="positional argument after a keyword"):
        model_of("conv2d(filters=4, 3)")
    with pytest.raises(CnncError, match="dropout takes one positional argument"):
        model_of("dropout(0.1, 0.2)")


def test_dropout_rate_range():
    with pytest.raises(CnncError, match=r"must satisfy 0.0 <= value < 1.0, got 1"):
        model_of("dropout(1)")
    assert model_of("dropout(0)").layers[0].op == "dropout"


def test_oversized_models_are_refused_with_an_estimate(monkeypatch):
    with pytest.raises(CnncError, match=r"tensor 'dense/kernel' of shape \(784, 2147483647\) "
                       r"has 1,683,627,179,248 elements, more than cnnc supports"):
        model_of("flatten() dense(2147483647)")
    monkeypatch.setenv("CNNC_MEMORY_LIMIT", str(2**30))
    # (784 + 1) * 200,000 floats = 598.9 MiB of parameters > half of 1 GiB
    with pytest.raises(CnncError, match=r"needs 598.9 MiB for its parameters alone; this "
                       r"machine has 1.0 GiB"):
        model_of("flatten() dense(200000)")
    # 1000 * 1000 * 128 floats = 488 MiB for one sample's conv output > a quarter of 1 GiB
    with pytest.raises(CnncError, match="of activations for a single sample"):
        model_of("conv2d(128, kernel=1)", input_shape="1000, 1000, 1")
    assert model_of("flatten() dense(1000)").param_count == 785_000


@pytest.mark.parametrize("body, message", [
    ('dense(2, name="a", name="b")', "argument 'name' given twice"),
    ('dense(2, name="input")', "the layer name 'input' is reserved"),
    ("activation(relu(0.1))", "activation 'relu' takes no arguments"),
    ("activation(leaky_relu(0.1, alpha=0.2))", "takes one argument, alpha"),
    ("conv2d(2, kernel=(3,))", "'kernel' expects an integer or a pair of integers, "
                               "got a tuple of 1"),
])
def test_argument_mistakes(body, message):
    with pytest.raises(CnncError, match=re.escape(message)):
        model_of(f"flatten() {body}" if "dense" in body else body)


def test_input_forms():
    assert cnnc.parse("model m { input(shape=(4, 5, 2)) }").model().input_type.shape == (4, 5, 2)
    with pytest.raises(CnncError, match="unexpected 'shape' here for input"):
        cnnc.parse("model m { input(shape=(28, 28), 1) }")


@pytest.mark.parametrize("optimizer, message", [
    ("adam(beta_1=0.8, 0.01)", "positional argument after a keyword argument"),
    ("adam(beta_1=2)", "adam: 'beta_1' must satisfy 0.0 <= value < 1.0, got 2"),
    ("sgd(lr=0.1)", "unknown argument 'lr' for sgd"),
])
def test_optimizer_messages(optimizer, message):
    with pytest.raises(CnncError) as info:
        cnnc.parse("model m { input(1, 1, 1) flatten() dense(1) }\n"
                   f"train m {{ loss = mse optimizer = {optimizer} }}")
    assert info.value.diagnostics[0].message == message


def test_loss_check_on_a_model_without_layers():
    with pytest.raises(CnncError, match="'m' has no layers"):
        cnnc.parse("model m { input(1, 1, 1) }\n"
                   "train m { loss = categorical_crossentropy optimizer = adam }")
