"""The `cnnc` command.

Exit status: 0 on success, 2 for bad input (model files, data, weights, options), 1 for
failures while running. Errors are printed as diagnostics, never as Python tracebacks;
``--debug`` (or CNNC_DEBUG=1) shows the traceback of an internal error and runs the IR
verifier after every pass (as CNNC_VERIFY=1 does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import targets
from .errors import CnncError, CnncRuntimeError, Diagnostic
from .passes.options import INFERENCE_RULES, RULES, Fusion
from .version import __version__

FUSE_HELP = ("all (the default), none, or a comma-separated list of fusion rules: " +
             ", ".join(INFERENCE_RULES))
TRAIN_FUSE_HELP = FUSE_HELP + ", and for training " + \
    ", ".join(r for r in RULES if r not in INFERENCE_RULES)


def _program(args):
    from .frontend import parse
    return parse(args.file)


def _model(program, name: str | None):
    from .compiler import select_model
    return select_model(program, name)


def cmd_check(args) -> int:
    program = _program(args)
    models = ", ".join(f"{m.name} ({m.param_count:,} params)" for m in program.models.values())
    trains = f"; train: {', '.join(program.trains)}" if program.trains else ""
    print(f"{program.file}: OK: {models}{trains}")
    return 0


def cmd_summary(args) -> int:
    from .reports.summary import summary
    program = _program(args)
    models = [_model(program, args.model)] if args.model else list(program.models.values())
    print("\n\n".join(summary(m) for m in models))
    return 0


def cmd_graph(args) -> int:
    from .reports import viz
    program = _program(args)
    if args.output:
        from .util import check_output
        check_output(args.output, inputs=[args.file])
    model = _model(program, args.model)
    fmt = args.format or (Path(args.output).suffix.lstrip(".") if args.output else "dot")
    if fmt not in ("dot", "svg", "png"):
        raise CnncError(Diagnostic(f"unknown graph format '{fmt}' (dot, svg or png)"))
    if args.fused:
        from .passes import run_inference
        graph, _ = run_inference(model.graph, Fusion.parse(args.fuse),
                                 targets.get(args.target).packs_kernels)
        dot = viz.to_dot_fused(graph, model.name)
    else:
        dot = viz.to_dot(model.graph, model.name)
    text = viz.write(dot, Path(args.output) if args.output else None, fmt)
    if text is not None:
        sys.stdout.write(text)
    return 0


def _positive(text: str) -> int:
    """An argparse type: a positive integer (argparse reports the error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expects a positive integer, got {value}")
    return value


def _cc(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise CnncError(Diagnostic(f"bad compute capability '{text}' (e.g. 9.0)"))
    return int(major), int(minor)


def cmd_compile(args) -> int:
    from .compiler import lower
    from .util import atomic_write_text, check_output
    target = targets.get(args.target)
    cc = _cc(args.cc)
    if args.output not in (None, "-"):
        check_output(args.output, inputs=[args.file])
    if args.ptx:
        check_output(args.ptx, inputs=[args.file], directory=True, flag="--ptx")
    compiled = lower(args.file, model=args.model, target=target, fuse=args.fuse)
    if args.ptx:
        print(target.write_device_code(compiled, Path(args.ptx), cc), file=sys.stderr)
    source = compiled.source()
    if args.output in (None, "-"):
        sys.stdout.write(source)
        return 0
    atomic_write_text(args.output, source)
    groups = compiled.kernel_groups()
    functions = len(set(compiled.forward_kernels()))
    training = ""
    if compiled.training is not None:
        count = len(compiled.generate().training_kernels)
        training = f"; a training step runs {count} kernel groups"
    print(f"{args.output}: {compiled.model.name}: inference runs {groups} kernel groups "
          f"({functions} kernel functions){training}; target {target.name}, fusion "
          f"{compiled.options.fusion}", file=sys.stderr)
    if not args.no_build:
        import time
        start = time.perf_counter()
        count = target.build_file(args.output, progress=sys.stderr.isatty())
        if count:
            print(f"{args.output}: compiled {count} kernels in "
                  f"{time.perf_counter() - start:.1f} s into Numba's cache beside it "
                  f"(importing it loads them)", file=sys.stderr)
    return 0


def cmd_explain(args) -> int:
    from .reports.explain import explain, explain_training, render
    program = _program(args)
    model = _model(program, args.model)
    target = targets.get(args.target)
    fusion = Fusion.parse(args.fuse)
    if args.train:
        config = program.trains.get(model.name)
        if config is None:
            raise CnncError(Diagnostic(f"model '{model.name}' has no train block",
                                       program.file))
        exp = explain_training(model, config, fusion, target.packs_kernels, args.dump_ir)
    else:
        exp = explain(model, fusion, target.packs_kernels, _disabled(args), args.dump_ir)
    if target.reports_resources:
        from .compiler import lower
        compiled = lower(args.file, model=model.name, target=target, fuse=fusion)
        exp.kernel_resources = target.kernel_resources(compiled, _cc(args.cc))
    if args.json:
        print(exp.to_json())
    else:
        print(render(exp, program.text.splitlines()))
    return 0


def cmd_profile(args) -> int:
    import json

    from .compiler import compile as compile_model
    from .reports.profile import compare, render, render_compare
    from .util import atomic_write_text, check_output
    program = _program(args)
    model_ir = _model(program, args.model)
    target = targets.get(args.target)
    plans = [Fusion.parse(args.fuse)] + ([Fusion.parse(args.compare)] if args.compare else [])
    batch = _count("--batch", args.batch)
    repeats = _count("--repeats", args.repeats)
    if args.train and model_ir.name not in program.trains:
        raise CnncError(Diagnostic(f"model '{model_ir.name}' has no train block: --train "
                                   f"profiles the training step", program.file))
    for flag, out in (("--trace", args.trace), ("--plot", args.plot)):
        if out:
            check_output(out, inputs=[args.file], flag=flag)
    if args.plot:
        from .reports.roofline import require_matplotlib
        require_matplotlib()           # missing matplotlib: one line, before measuring
    target.require()
    profiles = []
    for fusion in plans:
        model = compile_model(args.file, target=target, model=model_ir.name, fuse=fusion)
        profiles.append(model.profile(batch=batch, train=args.train, repeats=repeats,
                                      max_seconds=args.max_seconds,
                                      remeasure_roofs=args.remeasure_roofs and not profiles))
    if args.json:
        print(json.dumps(compare(*profiles), indent=2) if args.compare else
              profiles[0].to_json())
    elif args.compare:
        print(render_compare(*profiles, program.text.splitlines()))
    else:
        print(render(profiles[0]))
    if args.trace:
        events = []
        for pid, p in enumerate(profiles, 1):
            events += [dict(e, pid=pid) for e in p.trace()]
        atomic_write_text(args.trace, json.dumps(events) + "\n")
        print(f"{args.trace}: {len(events)} kernel calls as Chrome trace events "
              f"(open in Perfetto or chrome://tracing)", file=sys.stderr)
    if args.plot:
        from .reports.roofline import plot_roofline
        plot_roofline(profiles, args.plot)
        print(f"{args.plot}: the roofline of {len(profiles[0].kernels)} kernels",
              file=sys.stderr)
    return 0


def _count(flag: str, text: str | None) -> int | None:
    """A positive integer option given as text (None when absent): one line otherwise."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise CnncError(Diagnostic(f"{flag} expects a positive integer, got '{text}'"))
    return value


def _disabled(args) -> tuple[str, ...]:
    return tuple(p for p in (args.no_pass or "").split(",") if p)


def cmd_train(args) -> int:
    import time
    from pathlib import Path

    from . import data as datasets
    from .compiler import compile as compile_model
    from .runtime.fit import NonFiniteLoss
    from .util import check_output
    program = _program(args)
    model_ir = _model(program, args.model)
    config = program.trains.get(model_ir.name)
    if config is None:
        raise CnncError(Diagnostic(f"model '{model_ir.name}' has no train block",
                                   program.file, hint="add `train NAME { loss = ... "
                                                      "optimizer = ... }` to the file"))
    targets.get(args.target).require()        # before reading data: say what is missing now
    spec = args.data or config.data
    if spec is None:
        raise CnncError(Diagnostic("no data: give --data or `data = ...` in the train block",
                                   program.file))
    run_dir = Path(args.resume or args.output or f"runs/{model_ir.name}")
    inputs = [args.file] + ([spec] if Path(spec).exists() else [])
    flag = "--resume" if args.resume else "-o"
    check_output(run_dir, inputs=inputs, directory=True, flag=flag)
    for name in ("weights.npz", "checkpoint.npz", "history.json"):
        check_output(run_dir / name, inputs=inputs, flag=flag)
    if args.plot:
        check_output(args.plot, inputs=inputs, flag="--plot")
    if args.resume and not (run_dir / "checkpoint.npz").is_file():
        missing = "no such folder" if not run_dir.exists() else "no checkpoint.npz in it"
        raise CnncError(Diagnostic(f"--resume {run_dir}: nothing to resume ({missing})"))
    world = _world(args, program, model_ir.name, spec)
    if args.workers and args.workers > 1 and world is None:    # start the ranks
        from .runtime.launch import launch
        return launch(args.argv, args.workers, run_dir)
    epochs = args.epochs if args.epochs is not None else config.epochs
    batch = args.batch_size or config.batch_size
    if world is not None:
        if not world.main:                        # rank 0 speaks for all
            sys.stdout = open(os.devnull, "w")
        threads = _threads()
        print(f"data-parallel: {world.size} ranks x batch {batch} = global batch "
              f"{world.size * batch}, {threads} Numba thread{'s' * (threads > 1)} per rank")
        targets.get(args.target).bind_rank(world.local_rank)
    ds = datasets.load(spec)
    if ds.note:
        print(ds.note)
    from .ir.ops.training import LOSSES
    datasets.check_fits(ds, model_ir.input_type.shape, model_ir.output_type.shape[-1], spec,
                        LOSSES[config.loss].sparse)
    if world is not None and len(ds.x_train) < world.size:
        raise CnncError(Diagnostic(f"{world.size} workers for {len(ds.x_train)} training "
                                   f"samples: each worker needs at least one"))
    start = time.perf_counter()
    model = compile_model(args.file, target=args.target, model=model_ir.name, fuse=args.fuse)
    from .runtime.build import build_ranks
    built = build_ranks(model, world, progress=not args.quiet)
    kernels = f"; {built} kernels compiled" if built else ""
    print(f"compiled {model_ir.name} ({model_ir.param_count:,} parameters{kernels}) in "
          f"{time.perf_counter() - start:.1f} s; training on {len(ds.x_train):,} images "
          f"({ds.description})")
    x_val = y_val = None
    split = config.validation_split
    x, y = ds.x_train, ds.y_train
    if split:
        cut = int(len(x) * (1 - split))
        x, x_val, y, y_val = x[:cut], x[cut:], y[:cut], y[cut:]
    try:
        history = model.fit(x, y, epochs=epochs, batch_size=batch,
                            validation_data=(x_val, y_val) if x_val is not None else None,
                            run_dir=run_dir, resume=bool(args.resume),
                            verbose=2 if args.quiet else 1)
    except NonFiniteLoss as e:
        _error(f"cnnc: error: {e}", shared=True)
        return 1
    except KeyboardInterrupt as stop:
        return getattr(stop, "exit_status", 130)
    if world is not None:
        reduce_note(world, history)
        if not world.main:
            return 0
    model.save_weights(run_dir / "weights.npz")
    if ds.x_test is not None:
        loss, acc = model.evaluate(ds.x_test, ds.y_test)
        print(f"test: loss {loss:.4f}, accuracy {acc:.4f} ({len(ds.x_test):,} images)")
        history.history.setdefault("test_loss", []).append(loss)
        history.history.setdefault("test_accuracy", []).append(acc)
        from .util import atomic_write_text
        atomic_write_text(run_dir / "history.json", history.to_json())
    print(f"weights, checkpoint and history in {run_dir}/")
    if args.plot:
        from .reports.plot import plot_history
        plot_history(history, args.plot)
    return 0


def _world(args, program, model: str, spec: str):
    """The MPI world this `cnnc train` runs in (None: alone), its ranks checked to train
    the same model on the same data."""
    from .runtime import distributed
    size = distributed.launched_size()
    if args.workers and size > 1 and args.workers != size:
        raise CnncError(Diagnostic(f"--workers {args.workers}, but the launcher started "
                                   f"{size} processes: give one or the other"))
    if args.workers and size == 1:               # --workers 1: this process alone
        return None
    world = distributed.join(timeout=args.comm_timeout)
    if world is not None:
        world.check_same("model file, model or data", json.dumps(
            [program.text, model, spec, args.target, args.fuse, args.epochs,
             args.batch_size, bool(args.resume)]))
    return world


def _threads() -> int:
    import numba
    return numba.get_num_threads()


def reduce_note(world, history) -> None:
    """The communication of a data-parallel run, on rank 0's output."""
    steps = max(world.allreduce_calls, 1)
    seconds = sum(history.timing.get("seconds", [])) or 1e-9
    print(f"allreduce: {world.allreduce_calls:,} steps, {world.step_bytes / 1e6:.2f} MB per "
          f"step, {world.allreduce_seconds / steps * 1e3:.2f} ms per step "
          f"({100 * world.allreduce_seconds / seconds:.1f}% of the training time)")


def cmd_import(args) -> int:
    from .frontend.keras import import_keras, parse_defines
    from .runtime.weights import save_npz
    from .util import atomic_write_text, check_output
    inputs = [args.file, args.weights]
    out = check_output(args.output, inputs=inputs)
    npz = out.with_suffix(".npz")
    # weights come with --weights or inside a Keras file, never from code alone
    if args.weights is not None or Path(args.file).suffix.lower() != ".py":
        check_output(npz, inputs=inputs)
    result = import_keras(args.file, weights=args.weights, defines=parse_defines(args.define))
    weights = ""
    if result.params is not None:
        save_npz(npz, result.params)
        count = sum(int(a.size) for a in result.params.values())
        weights = f"; {npz}: {len(result.params)} weights ({count:,} parameters)"
    atomic_write_text(out, result.text)
    print(f"{out}: model {result.model_name}{weights}", file=sys.stderr)
    return 0


def cmd_export_onnx(args) -> int:
    from .compiler import compile as compile_model
    from .export.onnx import require_onnx
    from .util import check_output
    out = check_output(args.output, inputs=[args.file, args.weights])
    require_onnx()                 # missing onnx: one line, exit 1, before compiling
    model = compile_model(args.file, model=args.model)
    if args.weights:
        model.load_weights(args.weights)
    proto = model.export_onnx(out, layout=args.layout)
    print(f"{out}: {model.name}: ONNX opset {proto.opset_import[0].version}, "
          f"{len(proto.graph.node)} nodes, input {args.layout.upper()} "
          f"(N, {', '.join(map(str, _dims(proto.graph.input[0])))}) float32"
          f"{'' if args.weights else ' (initial weights: no --weights given)'}",
          file=sys.stderr)
    return 0


def _dims(value) -> list[int]:
    return [d.dim_value for d in value.type.tensor_type.shape.dim[1:]]


def cmd_data(args) -> int:
    from . import data as datasets
    if args.dir:
        from .util import check_output
        check_output(args.dir, directory=True, flag="--dir")
    path = datasets.fetch(args.name, args.dir, args.url)
    print(f"{args.name}: 4 files with matching MD5 sums in {path}")
    return 0


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
    p.add_argument("--target", choices=tuple(targets.TARGETS), default="cpu")
    p.add_argument("--fuse", default="all", help=TRAIN_FUSE_HELP)
    p.add_argument("-o", "--output", help="output .py file (default: stdout)")
    p.add_argument("--ptx", metavar="DIR", help="with --target cuda: write each kernel's "
                   "PTX to DIR (compiled by numba-cuda; no GPU needed)")
    p.add_argument("--cc", default="9.0", help="compute capability of --ptx (default 9.0)")
    p.add_argument("--no-build", action="store_true",
                   help="only write the module: do not compile its kernels into Numba's "
                        "cache beside it (with -o and --target cpu they are, on every core)")
    p.set_defaults(run=cmd_compile)

    p = sub.add_parser("train", help="train a model with its train block")
    p.add_argument("file")
    p.add_argument("--model")
    p.add_argument("--data", help="mnist, fashion_mnist, a folder of IDX files or an .npz")
    p.add_argument("--epochs", type=_positive, help="epochs in all (with --resume too)")
    p.add_argument("--batch-size", type=_positive, help="samples per step")
    p.add_argument("--target", choices=tuple(targets.TARGETS), default="cpu")
    p.add_argument("--fuse", default="all", help=TRAIN_FUSE_HELP)
    p.add_argument("-o", "--output", help="run directory (default runs/MODEL)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its checkpoint")
    p.add_argument("--plot", metavar="PNG", help="draw loss and accuracy curves (matplotlib)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, a line per epoch")
    p.add_argument("--workers", type=_positive, metavar="N",
                   help="train on N processes (MPI ranks) on this machine, each at "
                        "--batch-size: the global batch is N times it (needs cnnc[mpi]); "
                        "under mpiexec or srun, cnnc joins the launcher's ranks by itself")
    p.add_argument("--comm-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="with several ranks: how long a rank waits for the others before "
                        "it stops with an error (default 120; the first step, which "
                        "compiles, waits longer)")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("import", help="a Keras model (code, .keras or .h5) as a .cnn file "
                                      "(and its weights as .npz)")
    p.add_argument("file", help="Keras code (.py, read and never run), .keras or .h5")
    p.add_argument("--weights", help="weights for it: .weights.h5 or a weights-only .h5")
    p.add_argument("--define", action="append", metavar="NAME=VALUE",
                   help="a value for a name the code uses without defining it (a Python "
                        "literal, e.g. --define num_classes=10)")
    p.add_argument("-o", "--output", required=True, help="the .cnn file to write (weights "
                   "go to the .npz beside it)")
    p.set_defaults(run=cmd_import)

    p = sub.add_parser("export", help="a model to another format: `cnnc export onnx FILE`")
    export_sub = p.add_subparsers(dest="format", required=True)
    q = export_sub.add_parser("onnx", help="write the model as ONNX (opset 17), checked and "
                                           "with inferred shapes; see docs/onnx.md")
    q.add_argument("file")
    q.add_argument("--model", help="which model of the file (default: the only or first)")
    q.add_argument("--weights", help="parameters (.npz: save_weights, or cnnc train's "
                                     "weights.npz); default: the initial weights")
    q.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc",
                   help="the input's layout: nhwc as predict takes it (default), or nchw "
                        "(no input transpose in the graph)")
    q.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    q.set_defaults(run=cmd_export_onnx)

    p = sub.add_parser("data", help="datasets: `cnnc data fetch mnist|fashion_mnist`")
    data_sub = p.add_subparsers(dest="action", required=True)
    q = data_sub.add_parser("fetch", help="download a dataset, checking MD5 sums")
    q.add_argument("name", choices=("mnist", "fashion_mnist"))
    q.add_argument("--dir", help="destination (default: the user's cache directory)")
    q.add_argument("--url", help="base URL of a mirror")
    q.set_defaults(run=cmd_data)

    p = sub.add_parser("explain", help="what fused, what was refused and why, what it saves")
    p.add_argument("file")
    p.add_argument("--model")
    p.add_argument("--fuse", default="all", help=TRAIN_FUSE_HELP)
    p.add_argument("--no-pass", help="switch off passes (comma-separated): "
                                     "simplify_inference, fold_batchnorm")
    p.add_argument("--dump-ir", action="store_true",
                   help="print the IR after each pass before the report")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--train", action="store_true",
                   help="the training step's kernels (forward, loss, backward, updates)")
    p.add_argument("--target", choices=tuple(targets.TARGETS), default="cpu",
                   help="cuda: also each CUDA kernel's registers, shared memory and spills "
                        "(compiled to PTX and assembled by ptxas; no GPU needed)")
    p.add_argument("--cc", default="9.0", help="with --target cuda: the compute capability "
                                               "(default 9.0)")
    p.set_defaults(run=cmd_explain)

    p = sub.add_parser("profile", help="measured time of every kernel, on the roofline, by "
                                       "source line")
    p.add_argument("file")
    p.add_argument("--model")
    p.add_argument("--batch", metavar="B", help="samples per step (default: 256, with --train "
                                                "the train block's batch size)")
    p.add_argument("--train", action="store_true",
                   help="the whole training step (forward, loss, backward, updates)")
    p.add_argument("--fuse", default="all", help=TRAIN_FUSE_HELP)
    p.add_argument("--compare", metavar="RULES",
                   help="also profile these fusion rules; both plans side by side per "
                        "source line")
    p.add_argument("--target", choices=tuple(targets.TARGETS), default="cpu")
    p.add_argument("--json", action="store_true", help="machine-readable output "
                                                       "(docs/profile.md)")
    p.add_argument("--trace", metavar="OUT.json",
                   help="write each kernel call as Chrome trace events (Perfetto)")
    p.add_argument("--plot", metavar="OUT.png", help="draw the roofline (matplotlib)")
    p.add_argument("--repeats", metavar="N",
                   help="steps to time (default: until the medians are stable)")
    p.add_argument("--max-seconds", type=float, default=10.0,
                   help="stop repeating after this long, stable or not (default 10)")
    p.add_argument("--remeasure-roofs", action="store_true",
                   help="measure the machine's roofs again instead of reading the cache")
    p.set_defaults(run=cmd_profile)

    p = sub.add_parser("graph", help="write the IR graph as Graphviz dot, svg or png")
    p.add_argument("file")
    p.add_argument("--model")
    p.add_argument("--fused", action="store_true",
                   help="the graph after the passes, one cluster per kernel group")
    p.add_argument("--fuse", default="all", help="with --fused: " + FUSE_HELP)
    p.add_argument("--target", choices=tuple(targets.TARGETS), default="cpu",
                   help="with --fused: the target whose kernel layouts the passes choose")
    p.add_argument("--format", choices=("dot", "svg", "png"),
                   help="default: from the output file's suffix, else dot")
    p.add_argument("-o", "--output", help="output file (default: dot text on stdout)")
    p.set_defaults(run=cmd_graph)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    debug = args.debug or os.environ.get("CNNC_DEBUG") == "1"
    if debug:
        os.environ.setdefault("CNNC_VERIFY", "1")
    code = _run(args, debug)
    if argv is None:                          # the program, not a call from Python
        _skip_the_final_collection()
    from .runtime import distributed
    if distributed._WORLD is not None:        # a rank of a data-parallel run
        return distributed.leave(code)
    return code


def _skip_the_final_collection() -> None:
    """Spare the `cnnc` process the garbage collections of its interpreter's shutdown.

    Once Numba has compiled or loaded a kernel, Python's shutdown spends about 0.25 s in
    its final collections, freeing Numba's types, templates and compiled libraries one
    by one; the operating system reclaims that memory at once. The command's work is
    done here: its files are written and closed (atomically), and what is garbage now is
    collected as usual. gc.freeze() then leaves the objects still alive out of the
    collections that follow; exit handlers and the teardown of modules still run.
    """
    import gc

    from .util import flush_standard_streams
    flush_standard_streams()
    gc.collect()
    gc.freeze()


def _error(text: str, shared: bool = False) -> None:
    """Print an error line. In a data-parallel run, an error every rank meets alike
    (`shared`: bad input, a NaN loss) is said by rank 0 alone; others name their rank."""
    from .runtime import distributed
    world = distributed._WORLD
    if world is not None and not world.main:
        if shared:
            return
        if not text.startswith("cnnc: error: rank "):
            text = text.replace("cnnc: error: ", f"cnnc: error: rank {world.rank}: ", 1)
    print(text, file=sys.stderr)


def _run(args, debug: bool) -> int:
    try:
        return args.run(args)
    except CnncError as e:
        _error(e.render(), shared=True)
        return 2
    except CnncRuntimeError as e:
        _error(f"cnnc: error: {e}", shared=getattr(e, "shared", False))
        return 1
    except KeyboardInterrupt as stop:
        _error("cnnc: interrupted", shared=True)
        return getattr(stop, "exit_status", 130)
    except BrokenPipeError:
        return 0
    except MemoryError:
        if debug:
            raise
        _error("cnnc: error: out of memory (the model, its batch or the data does not fit "
               "this machine's memory)")
        return 1
    except OSError as e:                 # the machine's: disk full, permissions, ...
        if debug:
            raise
        where = f": {e.filename}" if e.filename else ""
        _error(f"cnnc: error: {e.strerror or e}{where}")
        return 1
    except Exception as e:  # an internal error: a bug in cnnc, not bad input
        if debug:
            raise
        _error(f"cnnc: internal error: {type(e).__name__}: {e}\n"
               f"(run with --debug for the traceback, and please report it)")
        return 1
