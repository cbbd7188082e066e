"""The `cnnc` command: subcommands, output and exit status."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import EXAMPLES


def cnnc(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "cnnc", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=cwd)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.cnn")))
def test_check_and_summary_every_example(example):
    result = cnnc("check", EXAMPLES / example)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(")") or "train:" in result.stdout
    assert ": OK: " in result.stdout
    result = cnnc("summary", EXAMPLES / example)
    assert result.returncode == 0, result.stderr
    assert "Total params:" in result.stdout


def test_summary_totals_for_mnist_cnn():
    out = cnnc("summary", EXAMPLES / "mnist_cnn.cnn").stdout
    assert "Total params: 693,962" in out
    assert "Trainable params: 693,962" in out
    assert "Non-trainable params: 0" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.startswith(" ") and "(" in line}
    assert rows["conv2d"][-2:] == ["320", "432,640"]
    assert rows["dense"][-2:] == ["692,352", "1,384,704"]
    assert rows["dense_1"][-2:] == ["1,290", "2,600"]
    assert "(None, 26, 26, 32)" in " ".join(rows["conv2d"])


def test_summary_unknown_model():
    result = cnnc("summary", EXAMPLES / "mnist_cnn.cnn", "--model", "mnist_cn")
    assert result.returncode == 2
    assert "no model named 'mnist_cn'" in result.stderr
    assert "did you mean 'mnist_cnn'?" in result.stderr


def test_graph_dot_text():
    result = cnnc("graph", EXAMPLES / "resnet_tiny.cnn")
    assert result.returncode == 0, result.stderr
    dot = result.stdout
    assert dot.startswith("digraph resnet_tiny {")
    import cnnc as api
    graph = api.parse(EXAMPLES / "resnet_tiny.cnn").model().graph
    data_edges = sum(1 for node in graph.nodes for value in node.inputs
                     if graph.values[value].role in ("activation", "input"))
    assert data_edges == len(graph.nodes) + 3     # a chain from the input, plus 3 shortcuts
    assert dot.count("->") == data_edges
    assert "add_2" in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("fmt, magic", [("svg", b"<?xml"), ("png", b"\x89PNG")])
def test_graph_renders(tmp_path, fmt, magic):
    out = tmp_path / f"g.{fmt}"
    result = cnnc("graph", EXAMPLES / "mnist_cnn.cnn", "-o", out)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(magic)


def test_graph_without_dot_says_what_is_missing(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))          # no `dot` on this PATH
    result = subprocess.run([sys.executable, "-m", "cnnc", "graph",
                             str(EXAMPLES / "mnist_cnn.cnn"), "-o", str(tmp_path / "g.svg")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert "needs Graphviz's 'dot' program" in result.stderr
    assert "--format dot" in result.stderr
    assert not (tmp_path / "g.svg").exists()


def test_missing_file_and_bad_arguments():
    result = cnnc("check", "no/such/file.cnn")
    assert result.returncode == 2
    assert result.stderr.strip() == "no/such/file.cnn: error: no such file"
    result = cnnc("frobnicate")
    assert result.returncode == 2                 # argparse's usage error


def test_version_and_help():
    assert cnnc("--version").stdout.startswith("cnnc ")
    result = cnnc("--help")
    assert result.returncode == 0
    for command in ("check", "summary", "graph"):
        assert command in result.stdout


def test_the_program_skips_the_final_collection_and_a_call_from_python_does_not(tmp_path):
    """`cnnc` as a program freezes what is alive when its command is done (its shutdown
    then skips collecting Numba's objects); exit handlers still run, and the command's
    output is complete. main() called from Python leaves the caller's collector alone."""
    import gc

    from cnnc.cli import main
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
            "from cnnc.cli import main\n"
            "sys.argv = ['cnnc', 'summary', sys.argv[1]]\n"
            "sys.exit(main())\n")
    result = subprocess.run([sys.executable, "-c", code, str(EXAMPLES / "mnist_cnn.cnn")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Total params: 693,962" in result.stdout
    assert result.stdout.rstrip().endswith("frozen at exit: True"), result.stdout
    before = gc.get_freeze_count()
    assert main(["check", str(EXAMPLES / "mnist_cnn.cnn")]) == 0
    assert gc.get_freeze_count() == before
