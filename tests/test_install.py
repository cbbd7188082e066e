"""`pip install .` gives a working package: grammar and templates travel with it.

The wheel is built from the source tree and installed into an empty folder; a fresh
interpreter run from another directory imports cnnc from there only (the source tree is
not on its path) and checks a model with the installed grammar.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import EXAMPLES, ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                             str(out), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("cnnc-*.whl")
    return path


def test_wheel_carries_grammar_and_templates(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "cnnc/grammar/cnnc.lark" in names
    assert any(n.startswith("cnnc/templates/cpu/") and n.endswith(".j2") for n in names) or \
        not list((ROOT / "templates" / "cpu").glob("*.j2"))
    assert not any(n.startswith(("tests/", "examples/")) for n in names)


def test_installed_package_runs_outside_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, timeout=600)
    model = tmp_path / "m.cnn"
    model.write_text((EXAMPLES / "mnist_cnn.cnn").read_text())
    env = dict(os.environ, PYTHONPATH=str(target))
    code = ("import cnnc, sys; from cnnc.resources import grammar_path, templates_dir; "
            "print(cnnc.__file__); print(grammar_path()); print(templates_dir()); "
            "print(cnnc.parse(sys.argv[1]).model().param_count)")
    result = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    file, grammar, templates, count = result.stdout.split("\n")[:4]
    for path in (file, grammar, templates):
        assert path.startswith(str(target)), path
    assert count == "693962"
    # The console entry point of the installed package.
    result = subprocess.run([sys.executable, "-c", "from cnnc.cli import main; "
                             "raise SystemExit(main())", "check", str(model)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "OK: mnist_cnn" in result.stdout
