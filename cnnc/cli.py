"""The `cnnc` command.

Exit status: 0 on success, 2 for bad input (model files, data, weights, options), 1 for
failures while running. Errors are printed as diagnostics, never as Python tracebacks;
``--debug`` (or CNNC_DEBUG=1) shows the traceback of an internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__
from .errors import CnncError, CnncRuntimeError, Diagnostic
from .ir.attrs import did_you_mean


FUSE_HELP = "a comma-separated list of epilogue, pool, row, elementwise"


def _program(args):
    from . import parse
    return parse(args.file)


def _model(program, name: str | None):
    if name is None:
        return program.model()
    if name not in program.models:
        raise CnncError(Diagnostic(f"no model named '{name}'", program.file,
                                   hint=did_you_mean(name, program.models) or
                                   "models: " + ", ".join(program.models)))
    return program.models[name]


def cmd_check(args) -> int:
    program = _program(args)
    models = ", ".join(f"{m.name} ({m.param_count:,} params)" for m in program.models.values())
    trains = f"; train: {', '.join(program.trains)}" if program.trains else ""
    print(f"{program.file}: OK: {models}{trains}")
    return 0


def cmd_summary(args) -> int:
    from .summary import summary
    program = _program(args)
    models = [_model(program, args.model)] if args.model else list(program.models.values())
    print("\n\n".join(summary(m) for m in models))
    return 0


def cmd_graph(args) -> int:
    from . import viz
    program = _program(args)
    model = _model(program, args.model)
    fmt = args.format or (Path(args.output).suffix.lstrip(".") if args.output else "dot")
    if fmt not in ("dot", "svg", "png"):
        raise CnncError(Diagnostic(f"unknown graph format '{fmt}' (dot, svg or png)"))
    if args.fused:
        from .passes import run_inference
        graph, _ = run_inference(model.graph, fuse=args.fuse)
        dot = viz.to_dot_fused(graph, model.name)
    else:
        dot = viz.to_dot(model.graph, model.name)
    text = viz.write(dot, Path(args.output) if args.output else None, fmt)
    if text is not None:
        sys.stdout.write(text)
    return 0


def cmd_compile(args) -> int:
    from .compiler import lower
    from .util import atomic_write_text
    compiled = lower(args.file, model=args.model, target=args.target, fuse=args.fuse)
    source = compiled.source()
    if args.output in (None, "-"):
        sys.stdout.write(source)
        return 0
    atomic_write_text(args.output, source)
    functions = source.count("@njit(")
    groups = compiled.kernel_groups()
    print(f"{args.output}: {compiled.model.name}, {groups} kernel group"
          f"{'s' * (groups != 1)} in {functions} kernel function{'s' * (functions != 1)}, "
          f"target {args.target}, fusion {compiled.options.fuse}", file=sys.stderr)
    return 0


def cmd_explain(args) -> int:
    from .explain import explain, render
    program = _program(args)
    model = _model(program, args.model)
    exp = explain(model, fuse=args.fuse, disable=_disabled(args))
    if args.json:
        print(exp.to_json())
    else:
        print(render(exp, program.text.splitlines()))
    return 0


def _disabled(args) -> tuple[str, ...]:
    return tuple(p for p in (args.no_pass or "").split(",") if p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnc", description="A compiler for convolutional neural networks.")
    parser.add_argument("--version", action="version", version=f"cnnc {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check", help="parse and check a model file")
    p.add_argument("file")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("summary", help="print a Keras-style summary of each model")
    p.add_argument("file")
    p.add_argument("--model", help="only this model")
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("compile", help="write the standalone generated module")
    p.add_argument("file")
    p.add_argument("--model")
    p.add_argument("--target", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--fuse", default="all", help="all, none, or rules: " + FUSE_HELP)
    p.add_argument("-o", "--output", help="output .py file (default: stdout)")
    p.set_defaults(run=cmd_compile)

    p = sub.add_parser("explain", help="what fused, what was refused and why, what it saves")
    p.add_argument("file")
    p.add_argument("--model")
    p.add_argument("--fuse", default="all", help="all, none, or rules: " + FUSE_HELP)
    p.add_argument("--no-pass", help="switch off passes (comma-separated): "
                                     "simplify_inference, fold_batchnorm")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_explain)

    p = sub.add_parser("graph", help="write the IR graph as Graphviz dot, svg or png")
    p.add_argument("file")
    p.add_argument("--model")
    p.add_argument("--fused", action="store_true",
                   help="the graph after the passes, one cluster per kernel group")
    p.add_argument("--fuse", default="all", help="with --fused: which rules")
    p.add_argument("--format", choices=("dot", "svg", "png"),
                   help="default: from the output file's suffix, else dot")
    p.add_argument("-o", "--output", help="output file (default: dot text on stdout)")
    p.set_defaults(run=cmd_graph)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("CNNC_DEBUG") == "1"
    try:
        return args.run(args)
    except CnncError as e:
        print(e.render(), file=sys.stderr)
        return 2
    except CnncRuntimeError as e:
        print(f"cnnc: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cnnc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # an internal error: a bug in cnnc, not bad input
        if debug:
            raise
        print(f"cnnc: internal error: {type(e).__name__}: {e}\n"
              f"(run with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1
