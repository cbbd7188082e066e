"""Keras code read with ast and never run: what is understood, errors at file:line:col with
a caret, hostile code refused before anything could run, the train block's defaults."""

from __future__ import annotations

import textwrap

import pytest

import cnnc
from cnnc import CnncError, cli
from cnnc.frontend.keras import parse_defines

from conftest import EXAMPLES

HEAD = "import keras\nfrom keras import layers\n"
D = textwrap.dedent
MODEL = ("model = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Flatten(), "
         "layers.Dense(3, activation='softmax')])\n")


def imp(tmp_path, code: str, name="model.py", **kwargs):
    path = tmp_path / name
    path.write_text(code)
    return cnnc.import_keras(path, **kwargs)


def error(tmp_path, code: str, **kwargs) -> str:
    with pytest.raises(CnncError) as info:
        imp(tmp_path, code, **kwargs)
    return info.value.render()


def test_both_styles_and_every_way_of_naming_a_layer(tmp_path):
    a = imp(tmp_path, HEAD + MODEL).text
    b = imp(tmp_path, D("""\
        import tensorflow as tf
        from keras.models import Sequential
        from keras.layers import Flatten as F
        from tensorflow.keras import layers as L
        model = Sequential()
        model.add(F(input_shape=(8, 8, 1)))
        model.add(tf.keras.layers.Dense(3, activation=tf.keras.activations.softmax))
        """)).text
    body = lambda t: t.split("\n", 1)[1]                          # noqa: E731
    assert body(a) == body(b)
    assert 'flatten(name="flatten")' in a and 'dense(3, activation=softmax, name="dense")' in a


def test_names_are_keras_names_in_a_fresh_process(tmp_path):
    text = imp(tmp_path, HEAD + D("""\
        model = keras.Sequential([
            keras.Input(shape=(8, 8, 1)),
            layers.Conv2D(2, 3), layers.MaxPool2D(), layers.Conv2D(2, 1, name="conv2d_7"),
            layers.Conv2D(2, 1), layers.ReLU(), layers.LeakyReLU(), layers.Flatten(),
            layers.Dense(4), layers.Dense(2)])
        """)).text
    for name in ("conv2d", "max_pooling2d", "conv2d_7", "conv2d_2", "re_lu", "leaky_re_lu",
                 "flatten", "dense", "dense_1"):
        assert f'name="{name}")' in text


def test_constants_tuples_negatives_and_arithmetic(tmp_path):
    text = imp(tmp_path, HEAD + D("""\
        rows, cols = 8, 4 * 2
        shape = (rows, cols, 1)
        classes = 20 // 2 - 7
        slope = -(-0.5) / 5
        model = keras.Sequential([keras.Input(shape=shape), layers.Flatten(),
                                  layers.Dense(classes), layers.LeakyReLU(slope)])
        """)).text
    assert "input(8, 8, 1)" in text and "dense(3," in text and "alpha=0.1" in text


def test_the_train_block_has_keras_3_semantics_written_out(tmp_path):
    text = imp(tmp_path, HEAD + MODEL + D("""\
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
        x_train = x_train.astype("float32") / 255
        y_train = keras.utils.to_categorical(y_train, 3)
        print("x_train shape:", x_train.shape, x_train.shape[0])
        model.summary()
        model.compile(loss=keras.losses.CategoricalCrossentropy(),
                      optimizer=keras.optimizers.Adadelta(), metrics=["acc"])
        model.fit(x_train, y_train, batch_size=64, epochs=2, validation_split=0.25, verbose=2)
        score = model.evaluate(x_test, y_test, verbose=0)
        print("Test loss:", score[0])
        """)).text
    assert text.endswith(textwrap.dedent("""\
        train sequential {
            data             = fashion_mnist
            loss             = categorical_crossentropy
            optimizer        = adadelta(learning_rate=0.001, rho=0.95, epsilon=1e-7)
            metrics          = [accuracy]
            batch_size       = 64
            epochs           = 2
            validation_split = 0.25
        }
        """))


@pytest.mark.parametrize("optimizer, expected", [
    ("'sgd'", "sgd(learning_rate=0.01, momentum=0.0, nesterov=false)"),
    ("'rmsprop'", "rmsprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7)"),
    ("keras.optimizers.Adam(0.01, beta_2=0.99)",
     "adam(learning_rate=0.01, beta_1=0.9, beta_2=0.99, epsilon=1e-7)"),
    ("keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)",
     "sgd(learning_rate=0.1, momentum=0.9, nesterov=true)"),
])
def test_optimizers(tmp_path, optimizer, expected):
    text = imp(tmp_path, HEAD + MODEL + f"model.compile(loss='mse', optimizer={optimizer})\n"
               ).text
    assert f"optimizer  = {expected}" in text
    cnnc.parse(text)


def test_defaults_of_fit_are_keras_defaults(tmp_path):
    text = imp(tmp_path, HEAD + MODEL + "model.compile(loss='mse', optimizer='adam')\n").text
    assert "batch_size = 32" in text and "epochs     = 1" in text


@pytest.mark.parametrize("code, message, hint", [
    ("model.compile(loss='mse', optimizer=keras.optimizers.Adam(lr=0.1))",
     "Adam: the argument 'lr' was removed", "hint: write learning_rate="),
    ("model.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=True), "
     "optimizer='adam')", "from_logits=True is not supported", "probabilities"),
    ("model.compile(loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1), "
     "optimizer='adam')", "label_smoothing=0.1", ""),
    ("model.compile(loss='mse', optimizer=keras.optimizers.Adam(amsgrad=True))",
     "amsgrad=True", ""),
    ("model.compile(loss='hinge', optimizer='adam')", "loss 'hinge' is not supported", ""),
    ("model.compile(loss='mse', optimizer='nadam')", "optimizer 'nadam'", ""),
    ("model.compile(loss='mse', optimizer='adam', metrics=['mae'])", "metric 'mae'", ""),
])
def test_train_block_errors_name_the_argument(tmp_path, code, message, hint):
    out = error(tmp_path, HEAD + MODEL + code + "\n")
    assert message in out and hint in out
    assert out.startswith(f"{tmp_path / 'model.py'}:4:")


def test_undefined_name_in_the_classic_snippet_hints_define(tmp_path):
    with pytest.raises(CnncError) as info:
        cnnc.import_keras(EXAMPLES / "keras" / "mnist_cnn_classic.py")
    out = info.value.render()
    assert "mnist_cnn_classic.py:28:17: error: name 'num_classes' is not defined" in out
    assert "    model.add(Dense(num_classes, activation='softmax'))\n" \
           "                    ^~~~~~~~~~~\n" in out
    assert out.endswith("hint: give its value: --define num_classes=10")
    text = cnnc.import_keras(EXAMPLES / "keras" / "mnist_cnn_classic.py",
                             defines={"num_classes": 10}).text
    assert 'dense(10, activation=softmax, name="dense_1")' in text
    assert "optimizer  = adadelta(learning_rate=0.001" in text


def test_defines_are_literals_never_code():
    assert parse_defines(["n=10", "s=(28, 28, 1)", "p='same'", "f=-1e-3", "b=True"]) == {
        "n": 10, "s": (28, 28, 1), "p": "same", "f": -1e-3, "b": True}
    for bad in ("n=__import__('os')", "n=1+", "=3", "n", "n={'a': 1}", "n=same"):
        with pytest.raises(CnncError):
            parse_defines([bad])


HOSTILE = {
    "system": "layers.Dense(__import__('os').system('touch {marker}'))",
    "os_import": "layers.Dense(os.system('touch {marker}'))",
    "lambda": "layers.Dense((lambda: open('{marker}', 'w'))())",
    "getattr": "layers.Dense(getattr(keras, 'x')('{marker}'))",
    "dunder": "layers.Dense(keras.__builtins__['open']('{marker}', 'w'))",
    "comprehension": "layers.Dense([open('{marker}', 'w') for _ in range(1)][0])",
    "subscript": "layers.Dense(keras.layers.__dict__['x'])",
    "fstring": "layers.Dense(f\"{{open('{marker}', 'w')}}\")",
    "Lambda": "layers.Lambda(lambda x: open('{marker}', 'w'))",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_code_is_refused_and_nothing_runs(tmp_path, case, capsys):
    marker = tmp_path / "ran"
    layer = HOSTILE[case].format(marker=marker)
    extra = "import os\n" if case == "os_import" else ""
    path = tmp_path / "evil.py"
    path.write_text(extra + HEAD + "model = keras.Sequential([keras.Input(shape=(8, 8, 1)), "
                    f"layers.Flatten(), {layer}])\n")
    assert cli.main(["import", str(path), "-o", str(tmp_path / "out.cnn")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:") and "\n    " in err and "^" in err
    assert not marker.exists() and not (tmp_path / "out.cnn").exists()


@pytest.mark.parametrize("code, where, message", [
    ("for i in range(3):\n    pass\n", "3:1", "a loop is not allowed"),
    ("if True:\n    pass\n", "3:1", "an if statement is not allowed"),
    ("def f():\n    pass\n", "3:1", "a function definition is not allowed"),
    ("import subprocess\n", "3:1", "import of 'subprocess' is not allowed"),
    ("x = keras.backend.eval(1)\n", "3:5", "'keras.backend' is not something cnnc knows"),
    ("x = open('f')\n", "3:5", "'open' is not allowed"),
    ("x = 2 ** 1000\n", "3:5", "only +, -, *, / and // are allowed"),
    ("model = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Conv1D(3, 3)])\n", "3:57",
     "layer class 'Conv1D' is not supported"),
])
def test_statements_outside_the_allow_list_are_errors_at_their_position(tmp_path, code, where,
                                                                         message):
    out = error(tmp_path, HEAD + code)
    assert out.startswith(f"{tmp_path / 'model.py'}:{where}: error: ") and message in out, out
    assert "\n    " in out and "^" in out


@pytest.mark.parametrize("layer, message", [
    ("layers.Dense(3, kernel_regularizer=keras.regularizers.l2(0.01))",
     "kernel_regularizer is not supported"),
    ("layers.Dense(3, kernel_initializer='he_normal')",
     "kernel_initializer=he_normal differs from cnnc's glorot_uniform"),
    ("layers.Dense(3, kernel_constraint=keras.constraints.MaxNorm(2))",
     "kernel_constraint is not supported"),
    ("layers.Conv2D(3, 3)", "needs an image tensor"),
    ("layers.Reshape((8, 8, 1)), layers.Conv2D(3, 3, padding='causal')",
     "layer class 'Reshape' is not supported"),
    ("layers.Dropout(0.5, noise_shape=(1, 3))", "noise_shape=(1, 3) is not supported"),
    ("layers.ReLU(max_value=6)", "max_value=6 is not supported"),
    ("layers.Softmax(axis=1)", "axis=1 is not supported"),
    ("layers.Dense(3, activation='gelu', bias_constraint=None, foo=1)",
     "argument foo=1 cannot be expressed"),
    ("layers.Dense(3, activation='selu')", "activation='selu' is not an activation"),
])
def test_layer_arguments_cnnc_cannot_express_are_errors_at_the_argument(tmp_path, layer,
                                                                        message):
    out = error(tmp_path, HEAD + "model = keras.Sequential([keras.Input(shape=(8, 8, 1)),\n"
                f"    layers.Flatten(), {layer}])\n")
    assert out.startswith(f"{tmp_path / 'model.py'}:4:") and message in out, out


def test_an_initializer_is_irrelevant_when_weights_are_imported(tmp_path):
    from conftest import ROOT
    fixtures = ROOT / "tests" / "fixtures" / "keras"
    code = (fixtures / "mnist_convnet.py").read_text().replace(
        'activation="softmax"', 'activation="softmax", kernel_initializer="he_normal"')
    path = tmp_path / "m.py"
    path.write_text(code)
    with pytest.raises(CnncError):
        cnnc.import_keras(path)
    result = cnnc.import_keras(path, weights=fixtures / "mnist_convnet.weights.h5")
    assert result.params["dense/kernel"].shape == (1600, 10)


def test_a_padding_cnnc_lacks_is_an_error_at_the_argument(tmp_path):
    out = error(tmp_path, HEAD + "model = keras.Sequential([keras.Input(shape=(8, 8, 1)),\n"
                "    layers.Conv2D(3, 3, padding='causal')])\n")
    assert ":4:33: error: Conv2D: padding='causal' is not supported" in out


def test_dense_on_an_image_tensor_is_an_error(tmp_path):
    out = error(tmp_path, HEAD + "model = keras.Sequential([keras.Input(shape=(8, 8, 1)),\n"
                "    layers.Dense(3)])\n")
    assert "4:5: error: Dense on an image tensor (H, W, C): Keras applies it to the last " \
           "axis" in out
    assert out.endswith("hint: add Flatten() or a global pooling layer before it")


def test_a_flat_input_is_refused_at_the_input(tmp_path):
    out = error(tmp_path, HEAD + "model = keras.Sequential([keras.Input(shape=(784,)), "
                "layers.Dense(3)])\n")
    assert ":3:27: error: input shape (784,)" in out


def test_a_cnnc_check_error_points_at_the_keras_layer(tmp_path):
    out = error(tmp_path, HEAD + "model = keras.Sequential([keras.Input(shape=(4, 4, 1)),\n"
                "    layers.Conv2D(2, 5)])\n")
    assert out.startswith(f"{tmp_path / 'model.py'}:4:5: error: ") and "larger" in out


@pytest.mark.parametrize("statement", [
    "print(__import__('os').system('touch {marker}'))",
    "model.summary(print_fn=exec)",
    "x_train = x_train.__class__.__init__.__globals__",
    "x_train = np.fromfile('{marker}')",
    "model.fit(x_train, y_train, callbacks=[open('{marker}', 'w')])",
    "model.compile(loss='mse', optimizer=keras.optimizers.Adam(learning_rate=eval('1')))",
    "(lambda: open('{marker}', 'w'))()",
    "with open('{marker}', 'w'):\n    pass",
])
def test_hostile_statements_are_refused_and_nothing_runs(tmp_path, statement, capsys):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.py"
    path.write_text(HEAD + "import numpy as np\n" + MODEL +
                    "(x_train, y_train), _ = keras.datasets.mnist.load_data()\n" +
                    statement.format(marker=marker) + "\n")
    assert cli.main(["import", str(path), "-o", str(tmp_path / "out.cnn")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:") and "^" in err, err
    assert not marker.exists() and not (tmp_path / "out.cnn").exists()


def test_the_define_hint_is_ready_for_the_shell(tmp_path):
    out = error(tmp_path, HEAD + "model = keras.Sequential([keras.Input(shape=input_shape)])\n")
    assert out.endswith("hint: give its value: --define 'input_shape=(28, 28, 1)'")
    out = error(tmp_path, HEAD + "model = keras.Sequential([keras.Input(shape=shape)])\n")
    assert out.endswith("hint: give its value: --define shape=VALUE")


def test_defaults_that_matter_are_written_out(tmp_path):
    text = imp(tmp_path, HEAD + "model = keras.Sequential([keras.Input(shape=(8, 8, 1)),\n"
               "    layers.BatchNormalization(), layers.Activation('leaky_relu'),\n"
               "    layers.LeakyReLU(), layers.ELU(), layers.Flatten(), layers.Dropout(.5)])\n"
               ).text
    assert '    batchnorm(momentum=0.99, epsilon=0.001, name="batch_normalization")\n' in text
    assert '    activation(leaky_relu(alpha=0.2), name="activation")\n' in text
    assert '    activation(leaky_relu, alpha=0.3, name="leaky_re_lu")\n' in text
    assert '    activation(elu, alpha=1.0, name="elu")\n' in text
    assert '    dropout(0.5, name="dropout")\n' in text
