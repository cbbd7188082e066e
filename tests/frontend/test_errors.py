"""Bad model files give compiler-style diagnostics: message, line, column, caret, hint.

Each file in errors/ is a broken model; errors/NAME.err holds the exact expected output.
Regenerate after a deliberate change with CNNC_UPDATE_GOLDEN=1 and review the diff.
The table below pins the first diagnostic of each case independently of the golden text.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnc.errors import CnncError
from cnnc.frontend.checker import check, decode

ERRORS = Path(__file__).parent / "errors"
CASES = sorted(p.stem for p in ERRORS.glob("*.cnn"))

# case -> (message fragment, line, col) of its first diagnostic
FIRST = {
    "syntax_missing_paren": ("expected ')'", 3, 24),
    "syntax_missing_comma": ("expected ','", 3, 15),
    "syntax_unexpected_eof": ("unexpected end of file: expected ')'", 4, 13),
    "syntax_bad_character": ("unexpected character \"'\"", 3, 34),
    "unknown_op": ("unknown op 'conv'", 3, 5),
    "unknown_keyword": ("unknown argument 'kernal' for conv2d", 3, 16),
    "duplicate_keyword": ("argument 'strides' given twice", 3, 37),
    "wrong_type": ("'padding' expects one of valid, same, got a string", 3, 34),
    "zero_size": ("'filters' must be positive, got 0", 3, 12),
    "negative_size": ("input sizes must be positive, got -28", 2, 15),
    "window_too_large": ("maxpool2d 'pool2': pool window 3x3 is larger than its input 2x2x8",
                         5, 5),
    "dense_not_flat": ("dense 'dense': expects a flat input but receives (None, 26, 26, 32)",
                       4, 5),
    "residual_shape": ("residual block changes the shape from (None, 16, 16, 8) to "
                       "(None, 16, 16, 16)", 3, 5),
    "softmax_not_last": ("categorical_crossentropy needs a model whose last layer is softmax, "
                         "but 'dense' ends with relu", 8, 12),
    "missing_input": ("model 'm' must start with input(height, width, channels)", 2, 5),
    "duplicate_model": ("duplicate model name 'm'", 5, 7),
    "duplicate_layer": ("duplicate layer name 'features'", 4, 30),
    "unknown_train_model": ("train block names unknown model 'mnist_cn'", 7, 7),
    "empty": ("the file is empty", 1, 1),
    "comments_only": ("the file is empty", 1, 1),
    "many_errors": ("unknown argument 'activaton' for conv2d", 3, 26),
    "train_unknown_key": ("unknown argument 'momentun' for sgd", 9, 40),
    "bad_name": ("invalid layer name", 3, 18),
    "leaky_alpha": ("'alpha' applies only to elu and leaky_relu, not relu", 3, 22),
    "input_not_first": ("input(...) may only be the first statement of a model", 4, 5),
    "not_utf8": ("file is not valid UTF-8 (byte 0xe9)", 2, 25),
}
HINTS = {
    "unknown_op": "did you mean 'conv2d'?",
    "unknown_keyword": "did you mean 'kernel'?",
    "dense_not_flat": "add flatten() or a global pooling layer before it",
    "unknown_train_model": "did you mean 'mnist_cnn'?",
    "syntax_bad_character": "strings use double quotes",
}
COUNTS = {"many_errors": 6, "train_unknown_key": 2, "leaky_alpha": 2}


def diagnose(case: str) -> CnncError:
    name = f"{case}.cnn"
    data = (ERRORS / name).read_bytes()
    with pytest.raises(CnncError) as info:
        check(decode(data, name), name)
    return info.value


def test_every_case_is_pinned():
    assert set(CASES) == set(FIRST)


@pytest.mark.parametrize("case", CASES)
def test_first_diagnostic(case):
    error = diagnose(case)
    first = error.diagnostics[0]
    fragment, line, col = FIRST[case]
    assert fragment in first.message
    assert (first.loc.line, first.loc.col) == (line, col)
    if case in HINTS:
        assert first.hint == HINTS[case]
    errors = [d for d in error.diagnostics if d.severity == "error"]
    assert len(errors) == COUNTS.get(case, 1), error.render()


@pytest.mark.parametrize("case", CASES)
def test_golden_rendering(case):
    rendered = diagnose(case).render() + "\n"
    golden = ERRORS / f"{case}.err"
    if os.environ.get("CNNC_UPDATE_GOLDEN"):
        golden.write_text(rendered, encoding="utf-8")
    assert rendered == golden.read_text(encoding="utf-8")


def test_caret_sits_under_the_column():
    rendered = diagnose("unknown_op").render().splitlines()
    source, caret = rendered[1], rendered[2]
    assert source == "        conv(32, kernel=3)"
    assert caret.index("^") == source.index("conv")
    assert caret.strip() == "^~~~"


@pytest.mark.parametrize("case", ["unknown_op", "syntax_missing_paren", "not_utf8", "empty"])
def test_command_exits_2_without_traceback(case):
    result = subprocess.run([sys.executable, "-m", "cnnc", "check", str(ERRORS / f"{case}.cnn")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{case}.cnn:{FIRST[case][1]}:{FIRST[case][2]}: error: " in result.stderr
    assert result.stdout == ""
