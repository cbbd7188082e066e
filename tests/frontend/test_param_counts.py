"""The example models check, and their parameter counts match Keras / hand counts."""

from __future__ import annotations

import pytest

import cnnc
from conftest import EXAMPLES

# mnist_cnn: Keras's published summary of the classic MNIST CNN (keras.io examples).
# The others are counted by hand below, layer by layer: kernel + bias (+ batchnorm 4*C).
HAND_COUNTS = {
    "mnist_cnn": {"conv2d": 3 * 3 * 1 * 32 + 32, "dense": 5408 * 128 + 128,
                  "dense_1": 128 * 10 + 10},
    "lenet5": {"c1": 5 * 5 * 1 * 6 + 6, "c3": 5 * 5 * 6 * 16 + 16, "c5": 400 * 120 + 120,
               "f6": 120 * 84 + 84, "output": 84 * 10 + 10},
    "alexnet": {"conv2d": 11 * 11 * 3 * 96 + 96, "conv2d_1": 5 * 5 * 96 * 256 + 256,
                "conv2d_2": 3 * 3 * 256 * 384 + 384, "conv2d_3": 3 * 3 * 384 * 384 + 384,
                "conv2d_4": 3 * 3 * 384 * 256 + 256, "dense": 6 * 6 * 256 * 4096 + 4096,
                "dense_1": 4096 * 4096 + 4096, "dense_2": 4096 * 1000 + 1000},
    "resnet_tiny": {
        # stem, then per stage: (downsampling conv,) two convs in the residual block
        "conv2d": 3 * 3 * 3 * 16, "conv2d_1": 3 * 3 * 16 * 16, "conv2d_2": 3 * 3 * 16 * 16,
        "conv2d_3": 3 * 3 * 16 * 32, "conv2d_4": 3 * 3 * 32 * 32, "conv2d_5": 3 * 3 * 32 * 32,
        "conv2d_6": 3 * 3 * 32 * 64, "conv2d_7": 3 * 3 * 64 * 64, "conv2d_8": 3 * 3 * 64 * 64,
        **{f"batch_normalization{s}": 4 * c for s, c in
           [("", 16), ("_1", 16), ("_2", 16), ("_3", 32), ("_4", 32), ("_5", 32),
            ("_6", 64), ("_7", 64), ("_8", 64)]},
        "dense": 64 * 10 + 10},
}
TOTALS = {"mnist_cnn": 693_962, "lenet5": 61_706, "alexnet": 62_378_344,
          "resnet_tiny": 122_234}


@pytest.mark.parametrize("name", sorted(TOTALS))
def test_example_param_counts(name):
    model = cnnc.parse(EXAMPLES / f"{name}.cnn").model(name)
    assert model.param_count == TOTALS[name] == sum(HAND_COUNTS[name].values())
    counts = {layer.name: layer.param_count for layer in model.layers if layer.param_count}
    assert counts == HAND_COUNTS[name]


def test_mnist_cnn_is_kerass_network():
    program = cnnc.parse(EXAMPLES / "mnist_cnn.cnn")
    model = program.model()
    assert [(layer.name, layer.output.shape) for layer in model.layers] == [
        ("conv2d", (26, 26, 32)), ("max_pooling2d", (13, 13, 32)), ("dropout", (13, 13, 32)),
        ("flatten", (5408,)), ("dense", (128,)), ("dropout_1", (128,)), ("dense_1", (10,))]
    assert model.trainable_count == 693_962
    config = program.trains["mnist_cnn"]
    assert config.loss == "categorical_crossentropy"
    assert config.optimizer.name == "adadelta"
    assert config.optimizer.hyper == {"learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-7}
    assert (config.batch_size, config.epochs, config.seed, config.metrics) == \
        (128, 12, 0, ("accuracy",))
    assert config.data == "mnist"


def test_alexnet_shapes():
    model = cnnc.parse(EXAMPLES / "alexnet.cnn").model()
    shapes = [layer.output.shape for layer in model.layers if layer.op != "dropout"]
    assert shapes == [(55, 55, 96), (27, 27, 96), (27, 27, 256), (13, 13, 256),
                      (13, 13, 384), (13, 13, 384), (13, 13, 256), (6, 6, 256), (9216,),
                      (4096,), (4096,), (1000,)]


def test_resnet_tiny_is_a_graph_with_residual_adds():
    graph = cnnc.parse(EXAMPLES / "resnet_tiny.cnn").model().graph
    adds = [n for n in graph.nodes if n.op == "add"]
    assert [n.name for n in adds] == ["add", "add_1", "add_2"]
    for add in adds:
        # One input comes from the block, the other is the block's input: a diamond.
        block_out, shortcut = add.inputs
        assert graph.producer(shortcut).op == "relu"
        assert graph.producer(block_out).op == "batchnorm"
        assert graph.uses(shortcut) == 2
