"""A request compiled before loads its module without the compiler (runtime/direct.py)."""

from __future__ import annotations

import json

import numpy as np
from helpers import run_json

import cnnc
from cnnc.runtime import direct
from cnnc.targets import CPU, CUDA

SOURCE = """
model d {
    input(6, 6, 2)
    conv2d(4, kernel=3, activation=relu)
    flatten()
    dense(UNITS, activation=softmax)
}
"""

RUN = """
import json, sys
import numpy as np
import cnnc
model = cnnc.compile(sys.argv[1])
x = np.random.default_rng(3).standard_normal((5, 6, 6, 2)).astype(np.float32)
y = model.predict(x)
front_end = "cnnc.frontend.checker" in sys.modules
compiler = sorted(m for m in sys.modules if m.startswith(
    ("cnnc.frontend", "cnnc.ir", "cnnc.codegen", "cnnc.passes", "cnnc.compiler", "cnnc.train",
     "cnnc.targets.cpu_schedules")))
out = {"y": y.tobytes().hex(), "shape": list(y.shape), "front_end": front_end,
       "compiler": compiler}
out["params"] = sum(p.size for p in model.params.values())
out["graph_params"] = sum(int(np.prod(p.shape)) for p in model.graph.params)   # lowers
out["fusion"] = str(model.options.fusion)
out["front_end_after"] = "cnnc.frontend.checker" in sys.modules
print(json.dumps(out))
"""


def run(tmp_path, source):
    return run_json(RUN, tmp_path / "cache", source)


def test_a_second_process_loads_the_module_without_the_front_end(tmp_path):
    """The first process compiles; the second, with the same file, predicts the same
    bits without importing the front end, the IR, the passes or the code generator, and
    lowers the source only when asked for its graph (the same parameters, the same fusion
    rules). A changed file compiles again."""
    path = tmp_path / "d.cnn"
    path.write_text(SOURCE.replace("UNITS", "3"))
    first = run(tmp_path, str(path))
    assert first["front_end"] and first["shape"] == [5, 3]
    second = run(tmp_path, str(path))
    assert not second["front_end"] and second["front_end_after"]
    assert second["compiler"] == [] and first["compiler"]
    assert second["y"] == first["y"]
    assert second["params"] == second["graph_params"] == first["graph_params"]
    assert second["fusion"] == first["fusion"]
    path.write_text(SOURCE.replace("UNITS", "5"))          # the same path, new content
    changed = run(tmp_path, str(path))
    assert changed["front_end"] and changed["shape"] == [5, 5]


def test_the_same_request_in_one_process(tmp_path, monkeypatch):
    """Compiling the same text twice: the second model comes from the record, computes
    the same, and has the same model, graph and train config once lowered."""
    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path))
    text = SOURCE.replace("UNITS", "3")
    full = cnnc.compile(text)
    key = direct.request_key(text, CPU, None, "all", None, None, "float32")
    assert (tmp_path / direct.FOLDER / f"{key}.json").exists()
    again = cnnc.compile(text)
    assert again._lowered is None                         # not lowered yet
    x = np.random.default_rng(0).standard_normal((4, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(again.predict(x), full.predict(x))
    assert again.input_shape == full.input_shape and again.output_shape == full.output_shape
    assert again.model.name == full.model.name == "d"
    assert str(again.options.fusion) == str(full.options.fusion)
    assert [n.op for n in again.graph.nodes] == [n.op for n in full.graph.nodes]


def test_what_cannot_be_trusted_compiles_again(tmp_path, monkeypatch):
    """A damaged record, one pointing outside the cache's module folders, or a request
    that cannot be hashed (an optimizer given as an object): the full compile."""
    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path))
    text = SOURCE.replace("UNITS", "2")
    cnnc.compile(text)
    key = direct.request_key(text, CPU, None, "all", None, None, "float32")
    record = tmp_path / direct.FOLDER / f"{key}.json"
    assert record.exists()
    record.write_text("{ not json")                           # its hash no longer matches
    assert cnnc.compile(text)._lowered is not None             # compiled in full
    data = json.loads(record.read_text())                      # rewritten by that compile
    data["module"] = "../elsewhere-0123456789abcdef0123/elsewhere.py"
    from cnnc.runtime.cache import write_verified
    write_verified(record, json.dumps(data).encode())
    assert cnnc.compile(text)._lowered is not None
    assert direct.request_key(text, CPU, None, "all", None, object(), "float32") is None
    assert direct.request_key(text, CUDA, None, "all", None, None, "float32") is None
    assert direct.request_key(tmp_path / "missing.cnn", CPU, None, "all", None, None,
                              "float32") is None
