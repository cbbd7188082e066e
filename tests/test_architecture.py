"""The shape of the package: no import cycles, no target names compared outside the targets
package, no op or template names in the fusion rules. An AST walk over cnnc/."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "cnnc"
TARGET_NAMES = {"cpu", "cuda"}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of cnnc."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The cnnc modules an import statement (anywhere in the file, at module level or in a
    function) names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if node.level:
        base = package.split(".")
        base = base[:len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    found = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        if sub in MODULES:
            found.append(sub)              # `from . import passes`: the submodule
        elif target in MODULES:
            found.append(target)           # `from .errors import CnncError`
    return found


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(_resolve(module, path, node))
        graph[module] = edges - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _stage(module: str) -> str:
    """A module's stage: its subpackage of cnnc (cnnc.ir.ops -> cnnc.ir), or the module
    itself at the package root."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_the_import_graph_has_no_cycles_between_modules():
    assert _cycles(import_graph()) == []


def test_the_stages_import_each_other_in_one_direction():
    stages: dict[str, set[str]] = {}
    for module, edges in import_graph().items():
        stages.setdefault(_stage(module), set()).update(_stage(e) for e in edges)
    for stage in stages:
        stages[stage].discard(stage)
    assert _cycles(stages) == []
    # the pipeline's order: the IR knows nothing of the stages around it
    assert stages["cnnc.ir"] <= {"cnnc.errors"}
    assert "cnnc.frontend" not in stages["cnnc.passes"] | stages["cnnc.ir"]
    assert not stages["cnnc.codegen"] & {"cnnc.targets", "cnnc.runtime", "cnnc.passes"}


def test_the_import_walk_sees_cycles():
    """The walk itself: a cycle made on purpose is found, function-level imports too."""
    graph = import_graph()
    graph["cnnc.ir.graph"] = graph["cnnc.ir.graph"] | {"cnnc.compiler"}
    assert any("cnnc.ir.graph" in c for c in _cycles(graph))
    assert "cnnc.compiler" in graph["cnnc"]          # cnnc.compile's import, in a function


def _compares_target_name(node: ast.AST) -> bool:
    if not isinstance(node, ast.Compare):
        return False
    for operand in [node.left, *node.comparators]:
        items = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else \
            [operand]
        if any(isinstance(i, ast.Constant) and i.value in TARGET_NAMES for i in items):
            return True
    return False


def test_no_target_name_is_compared_outside_the_targets_package():
    found = []
    for module, path in MODULES.items():
        if module.startswith("cnnc.targets"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if _compares_target_name(node):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_the_target_check_sees_comparisons():
    tree = ast.parse('if target == "cuda": pass\nx = t in ("cpu", "gpu")\ny = t == "cpu2"')
    assert [n.lineno for n in ast.walk(tree) if _compares_target_name(n)] == [1, 2]


def test_fusion_rules_name_no_op_or_template():
    """passes/fuse.py and fuse_loss.py decide from categories and capabilities: no string
    in them is the name of an op or a template."""
    from cnnc.ir import ops
    from cnnc.passes.options import RULES
    names = (set(ops.OPS) | {op.template for op in ops.OPS.values() if op.template}) - \
        set(RULES)                      # the `loss` rule shares its name with the loss op
    for rule in ("fuse.py", "fuse_loss.py"):
        tree = ast.parse((PACKAGE / "passes" / rule).read_text(encoding="utf-8"))
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and
                   isinstance(n.value, str)}
        assert strings & names <= {"fused"}, (rule, strings & names)
