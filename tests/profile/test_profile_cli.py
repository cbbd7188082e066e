"""`cnnc profile`: the training step, the JSON schema, the trace, the plot, --compare, and
bad arguments (one line, exit 2). One tiny model, compiled once for the whole file."""

from __future__ import annotations

import json

import pytest

import cnnc
from cnnc.cli import main
from cnnc.reports.explain import explain, explain_training
from conftest import EXAMPLES
from profile_checks import check_bookkeeping

TINY = """# a tiny model for the profile tests
model tiny {
    input(6, 6, 1)
    conv2d(2, kernel=3, activation=relu)
    flatten()
    dense(3, activation=softmax)
}
train tiny {
    loss = categorical_crossentropy
    optimizer = sgd(learning_rate=0.1)
    batch_size = 16
}
"""

KERNEL_KEYS = {"kernel": int, "function": str, "host_function": str, "ops": list, "rule": str,
               "nodes": list, "layers": list, "lines": list, "calls": float,
               "median_ms": float, "q1_ms": float, "q3_ms": float, "share": float,
               "flops": int, "bytes": int, "gflops": float, "gbs": float,
               "intensity": float, "bound": str, "roofline": float}
TOP_KEYS = {"schema": str, "model": str, "fuse": str, "target": str, "step": str,
            "batch": int, "repeats": int, "threads": int, "timer": str, "roofs": dict,
            "kernels": list, "host": dict, "step_ms": float,
            "uninstrumented_step_ms": float, "kernel_ms": float, "agreement": float,
            "load": list, "notes": list}
ROOF_KEYS = {"device": str, "threads": int, "peak_gflops": float, "bandwidth_gbs": float,
             "peak_method": str, "bandwidth_method": str, "cached": bool, "ridge": float}
HOST_KEYS = {"median_ms": float, "q1_ms": float, "q3_ms": float, "share": float,
             "prepare_ms": float}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile") / "tiny.cnn"
    path.write_text(TINY)
    return path


def _has(data: dict, keys: dict):
    assert set(data) == set(keys), set(data) ^ set(keys)
    for key, kind in keys.items():
        value = data[key]
        if kind is float:
            assert isinstance(value, (int, float)) and not isinstance(value, bool), key
        else:
            assert isinstance(value, kind), (key, value)


def test_the_training_step_profile_times_every_kernel_and_leaves_the_model(tiny):
    model = cnnc.compile(tiny)
    before = {k: v.copy() for k, v in model.params.items()}
    p = model.profile(train=True, repeats=3)
    assert p.step == "training step" and p.batch == 16           # the train block's
    groups = explain_training(model.model, model.config, model.options.fusion, True).groups
    check_bookkeeping(p, groups)
    assert {k.host_function for k in p.kernels} == {"train_batch", "apply_updates"}
    assert p.host.prepare_ms > 0                                  # the packed dense kernel
    assert all((model.params[k] == v).all() for k, v in before.items())  # copies trained


def test_json_follows_the_schema_and_the_trace_is_chrome_trace(tiny, tmp_path, capsys):
    trace = tmp_path / "trace.json"
    assert main(["profile", str(tiny), "--json", "--repeats", "3", "--batch", "4",
                 "--trace", str(trace)]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    _has(data, TOP_KEYS)
    assert data["schema"] == "cnnc-profile/1"
    assert (data["model"], data["step"], data["batch"], data["repeats"], data["target"]) == \
        ("tiny", "forward", 4, 3, "cpu")
    _has(data["roofs"], ROOF_KEYS)
    _has(data["host"], HOST_KEYS)
    model = cnnc.parse(tiny).model()
    groups = explain(model, "all", True).groups
    assert [k["kernel"] for k in data["kernels"]] == [g.kernel for g in groups]
    for k in data["kernels"]:
        _has(k, KERNEL_KEYS)
        for layer in k["layers"]:
            assert set(layer) == {"name", "line"}
        assert k["median_ms"] > 0 and k["bound"] in ("compute", "memory")
    assert data["kernels"][0]["layers"] == [{"name": "conv2d", "line": 4}]
    # the trace: a JSON array of complete events, one per kernel call
    events = json.loads(trace.read_text())
    assert isinstance(events, list) and len(events) == 3 * len(groups)
    names = {k["function"] for k in data["kernels"]}
    for e in events:
        assert e["ph"] == "X" and e["name"] in names
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0 and e["dur"] > 0
        assert {"layers", "lines"} <= set(e["args"])
    assert [e["args"]["kernel"] for e in events] == [g.kernel for g in groups] * 3
    assert "3 kernel calls" not in err and f"{len(events)} kernel calls" in err


def test_the_table_and_compare(tiny, tmp_path, capsys):
    assert main(["profile", str(tiny), "--repeats", "2", "--batch", "4",
                 "--compare", "none"]) == 0
    out = capsys.readouterr().out
    assert "profile tiny: forward, batch 4, fusion epilogue" in out
    assert "profile tiny: forward, batch 4, fusion none" in out
    assert "host (step - kernels)" in out and "roofs (" in out
    assert "by source line: fusion" in out
    assert "line 4: conv2d(2, kernel=3, activation=relu)" in out


def test_the_roofline_plot(tiny, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "roofline.png"
    assert main(["profile", str(tiny), "--repeats", "2", "--batch", "4",
                 "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_one_line(tiny, tmp_path, capsys, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    png = tmp_path / "r.png"
    assert main(["profile", str(tiny), "--plot", str(png)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "cnnc: error: --plot needs matplotlib: pip install 'cnnc[plot]'"
    assert not png.exists()


@pytest.mark.parametrize("args, message", [
    (["--compare", "epilog"], "unknown fusion rule"),
    (["--fuse", "pools"], "unknown fusion rule"),
    (["--batch", "0"], "--batch expects a positive integer, got '0'"),
    (["--batch", "x"], "--batch expects a positive integer, got 'x'"),
    (["--repeats", "-2"], "--repeats expects a positive integer, got '-2'"),
    (["--train"], "no train block"),
    (["--trace", "SELF"], "no command writes over its own input"),
    (["--model", "nope"], "no model named 'nope'"),
])
def test_bad_arguments_are_one_line_exit_2(args, message, tmp_path, capsys):
    path = tmp_path / "m.cnn"
    path.write_text("model m {\n    input(4, 4, 1)\n    flatten()\n    dense(2)\n}\n")
    args = [str(path) if a == "SELF" else a for a in args]
    assert main(["profile", str(path), *args]) == 2
    out, err = capsys.readouterr()
    first = err.strip().splitlines()[0]
    assert message in first, err
    assert "Traceback" not in err and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.cnn"]    # nothing written


def test_bad_arguments_from_python(tiny):
    model = cnnc.compile(tiny)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(cnnc.CnncError, match="positive integer"):
            model.profile(batch=bad, repeats=1)
    no_train = cnnc.compile("model m { input(4, 4, 1) flatten() dense(2) }")
    with pytest.raises(cnnc.CnncError, match="no train block"):
        no_train.profile(train=True)


def test_the_example_files_are_not_written(capsys):
    before = (EXAMPLES / "mnist_cnn.cnn").read_bytes()
    assert main(["profile", str(EXAMPLES / "mnist_cnn.cnn"), "--plot",
                 str(EXAMPLES / "mnist_cnn.cnn")]) == 2
    assert (EXAMPLES / "mnist_cnn.cnn").read_bytes() == before
