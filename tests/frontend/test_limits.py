"""What `cnnc check` accepts, compile and train can build: the limits live in one place
(cnnc/frontend/limits.py) and check refuses past them. And files are read as editors show
them: any line endings, any file name."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cnnc
from cnnc.errors import CnncError
from cnnc.frontend import limits


def check(text: str) -> CnncError:
    with pytest.raises(CnncError) as e:
        cnnc.parse(text)
    return e.value


@pytest.mark.parametrize("layer", ["conv2d(2, kernel=1, strides=10000000000000000000000)",
                                   "maxpool2d((1, 2147483648))", "dense(4294967297)"])
def test_integers_past_the_kernels_limit_are_refused(layer):
    flat = "flatten() " if layer.startswith("dense") else ""
    error = check(f"model m {{ input(4, 4, 1) {flat}{layer} }}")
    assert f"must be at most {limits.MAX_INT}" in error.render()


def test_input_sizes_past_the_limit_are_refused():
    assert "input sizes must be at most" in check(
        "model m { input(4, 10000000000000000000000, 1) }").render()


def test_long_model_names_are_refused_and_64_compiles():
    error = check("model " + "m" * 304 + " { input(2, 2, 1) flatten() dense(2) }")
    assert "model name of 304 characters: at most 64" in error.render()
    name = "m" * limits.MAX_NAME
    model = cnnc.compile(f"model {name} {{ input(2, 2, 1) flatten() dense(2) }}")
    assert model.name == name and model.module_path.exists()


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_any_line_endings(tmp_path, newline):
    text = newline.join(["# a comment first", "model m {", "    input(4, 4, 1)",
                         "    flatten()", "    dense(2, strides=1)", "}", ""])
    path = tmp_path / "m.cnn"
    path.write_bytes(text.encode())
    result = subprocess.run([sys.executable, "-m", "cnnc", "check", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}:5:14: error: unknown argument 'strides'")


def test_a_file_whose_name_has_braces_is_a_file(tmp_path):
    path = tmp_path / "{x}.cnn"
    path.write_text("model braces { input(4, 4, 1) flatten() dense(2) }")
    assert cnnc.parse(str(path)).model().name == "braces"
    assert cnnc.parse("model inline { input(4, 4, 1) }").file == "<string>"
