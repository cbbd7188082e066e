"""Hostile model files: nothing from a model file reaches generated code unescaped.

A layer's `name` is the only free string of a model: names with quotes, backslashes,
newlines, template syntax, code, non-ASCII letters or more than 64 characters are refused
with a clear error (tests/frontend/errors/bad_name.cnn pins one rendering). Comments, the
file name and the train block's strings do reach the generated module -- its header
quotes the source -- and must stay inert there: the module parses, the hostile text is
only ever inside comments, and loading the module runs none of it.
"""

from __future__ import annotations

import ast
import io
import os
import tokenize

import pytest

import cnnc
from cnnc.compiler import lower
from cnnc.errors import CnncError

HOSTILE_NAMES = {                       # as written inside the .cnn string literal
    "double quote": r"a\"b",
    "single quote": "a'b",
    "backslash": r"a\\b",
    "newline": r"a\nb",
    "carriage return": r"a\rb",
    "template": "{{ 7 * 7 }}",
    "template block": "{% if true %}x{% endif %}",
    "code": "__import__('os').system('touch pwned')",
    "non-ascii": "café",
    "too long": "a" * 65,
    "empty": "",
    "leading digit": "1a",
}


@pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_hostile_layer_names_are_refused(name):
    text = f'model m {{ input(4, 4, 1) flatten() dense(2, name="{name}") }}'
    with pytest.raises(CnncError) as info:
        cnnc.parse(text)
    rendered = info.value.render()
    assert "error: invalid layer name" in rendered
    assert "hint: names are 1 to 64 letters, digits, '_', '.' or '-'" in rendered


def test_the_longest_name_is_accepted():
    name = "_" + "a.b-c" * 12 + "x" * 3
    assert len(name) == 64
    source = lower(f'model m {{ input(4, 4, 1) flatten() dense(2, name="{name}") }}').source()
    assert repr(f"{name}/kernel") in source


def code_without_comments(source: str) -> str:
    """The module's tokens other than comments (strings and docstrings included); the
    module must tokenize and parse."""
    ast.parse(source)
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return " ".join(t.string for t in tokens if t.type != tokenize.COMMENT)


def test_comments_file_names_and_strings_stay_inert(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNC_PWNED", raising=False)
    payload = "__import__('os').environ.__setitem__('CNNC_PWNED', '1')"   # no '/': a file name
    comments = [f'# """ {payload} """', "# ''' " + payload,
                f"# \u2028{payload}", f"# \x0c{payload}", f"# \x00 {payload}",
                "# {{ 7 * 7 }} {% raw %} {# x #}", "# trailing backslash \\"]
    text = ("model m {\n" + "\n".join(f"    {c}" for c in comments) +
            "\n    input(4, 4, 1)\n    flatten()\n    dense(2, activation=softmax)\n}\n"
            f'train m {{ loss = categorical_crossentropy optimizer = adam '
            f'data = "x\\"); {payload}; (\\"" }}\n')
    path = tmp_path / f"evil\n{payload}\n#.cnn"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path / "cache"))
    model = cnnc.compile(path)               # writes and imports the generated module
    assert "CNNC_PWNED" not in os.environ
    source = model.source
    code = code_without_comments(source)
    assert "environ" not in code and "CNNC_PWNED" not in code
    assert "{{ 7 * 7 }}" in source and "# 49" not in source
    assert "# Model m from evil\\x0a__import__" in source     # the file name, escaped


def test_a_carriage_return_ends_a_line_as_in_editors(tmp_path, monkeypatch):
    """A lone CR is a line break (as editors, git and Python read it): what follows it in
    a comment is on the next line -- here a syntax error, reported, never run."""
    monkeypatch.delenv("CNNC_PWNED", raising=False)
    payload = "__import__('os').environ.__setitem__('CNNC_PWNED', '1')"
    path = tmp_path / "cr.cnn"
    path.write_text(f"model m {{\n    #\r{payload}\n    input(4, 4, 1)\n}}\n")
    with pytest.raises(CnncError, match="cr.cnn:3:"):
        cnnc.compile(path)
    assert "CNNC_PWNED" not in os.environ
