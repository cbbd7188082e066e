"""The table of op test cases: every op of cnnc's op table in the configurations and
positions that reach every path of its templates, as model text.

Forward cases (FORWARD) run on every target against the torch oracle
(tests/ops/test_op_table.py; oracles/torch_ref.py, whose activations come from the one
table of torch references, oracles/activations.py). Gradient cases (gradient_cases) run
through tests/tools/grad_grid.py on every target. Tolerances: oracles/tolerances.py.

Activations are not listed by hand: every activation of cnnc's table (and a variant of
each with non-default parameters) gets the same cases, so an activation added to the op
table is tested in every position the others are.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnc.ir.ops import activation_ops
from helpers import pairwise, product

CONV = {"kernel": [1, 2, 3, 5], "height": [9, 10], "stride": [1, 2, 3],
        "padding": ["valid", "same"], "dilation": [1, 2], "cin": [1, 3, 16], "cout": [5, 8]}
POOL = {"op": ["maxpool2d", "avgpool2d"], "pool": [1, 2, 3], "stride": [1, 2, 3],
        "padding": ["valid", "same"], "height": [7, 8], "channels": [1, 3, 16]}


def conv_allowed(row):
    extent = (row["kernel"] - 1) * row["dilation"] + 1
    return (row["dilation"] == 1 or row["stride"] == 1) and extent <= row["height"]


def conv_text(row, fused: bool) -> str:
    extra = ", activation=relu" if fused else ""
    return (f"model m {{ input({row['height']}, {row['height'] + 3}, {row['cin']}) "
            f"conv2d({row['cout']}, kernel={row['kernel']}, strides={row['stride']}, "
            f"padding={row['padding']}, dilation={row['dilation']}{extra}) }}")


def pool_text(row) -> str:
    return (f"model m {{ input({row['height']}, {row['height'] + 1}, {row['channels']}) "
            f"{row['op']}({row['pool']}, strides={row['stride']}, padding={row['padding']}) }}")


CONV_ROWS = pairwise(CONV, seed=3, allowed=conv_allowed)
CONV_ALL = product(CONV, allowed=conv_allowed)
POOL_ROWS = pairwise(POOL, seed=5)
POOL_ALL = product(POOL)


def row_id(row) -> str:
    return "-".join(f"{k}{v}" for k, v in row.items())


def activation_variants() -> list[str]:
    """Every activation of cnnc's table as a model file writes it, then once more with
    each of its parameters away from the default (`elu(alpha=0.5)`)."""
    out = list(activation_ops())
    for name, op in activation_ops().items():
        for attr in op.attrs:
            out.append(f"{name}({attr.name}={attr.default / 2!r})")
    return out


def activation_name(variant: str) -> str:
    return variant.split("(")[0]


def activation_positions(variant: str) -> str:
    """A model with the activation in every position a kernel applies one: a conv2d's
    epilogue before its pooling (conv + bias + act + pool), after the pooling (the pool's
    epilogue), a conv2d's epilogue, after global pooling, a dense layer's epilogue; with
    fuse="none", each in a kernel of its own."""
    a = variant
    return (f"model m {{ input(6, 6, 2) conv2d(3, kernel=2, activation={a}) maxpool2d(2) "
            f"activation({a}) conv2d(3, kernel=1, activation={a}) "
            f"global_avgpool2d() activation({a}) dense(4, activation={a}) }}")


def stacked_activations(head: str = "") -> str:
    """Every activation variant in one model, one after the other behind a dense layer:
    with fuse="all" one chain in the dense kernel's epilogue (a softmax apart), with
    "none" a kernel each."""
    chain = " ".join(f"activation({a})" for a in activation_variants())
    return f"model m {{ input(2, 3, 2) flatten() dense(6) {chain} {head} }}"


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    fuse: str = "none"
    seed: int = 0
    jit: bool = True      # False: on the CPU, run with the JIT disabled (the kernels'
                          # logic; `every-activation` compiles each activation)
    batches: dict | None = None     # target -> batches, where not tolerances.BATCHES
    long_on: tuple[str, ...] = ()   # targets on which the case runs only with --long


def _forward() -> list[Case]:
    cases = []
    for i, row in enumerate(CONV_ROWS):
        # alternately the unfused kernels and the fused conv2d + bias + relu kernel
        # alternately the unfused kernels and the fused conv2d + bias + relu kernel; in
        # the simulator half the rows (both kinds) run in CI, all with --long
        fused = i % 2 == 1
        cases.append(Case(f"conv2d-{row_id(row)}", conv_text(row, fused),
                          "all" if fused else "none", i,
                          long_on=("cuda",) if i // 2 % 2 else ()))
    # more input channels than the CPU reads in place (targets/cpu_schedules.py,
    # IN_PLACE_MAX_CHANNELS): gathered patches, per output row when pooled in the kernel
    # (8 columns), else in blocks across rows (`flat`, 13 columns); 40 output channels, a
    # panel and a part of one
    for shape, pool in (("6, 8, 72", " maxpool2d(2)"), ("5, 13, 72", "")):
        name = "conv2d-gathered-pooled" if pool else "conv2d-gathered"
        cases.append(Case(f"{name}-{shape.replace(', ', 'x')}",
                          f"model m {{ input({shape}) conv2d(40, kernel=3, padding=same, "
                          f"activation=relu){pool} }}", "all", long_on=("cuda",)))
    for i, row in enumerate(POOL_ROWS):
        cases.append(Case(f"pool-{row_id(row)}", pool_text(row),
                          long_on=("cuda",) if i % 2 else ()))
    for op in ("global_avgpool2d", "global_maxpool2d"):
        for shape in ("5, 6, 3", "4, 4, 16"):
            cases.append(Case(f"{op}-{shape.replace(', ', 'x')}",
                              f"model m {{ input({shape}) {op}() }}"))
    for units, use_bias in ((1, True), (7, False), (70, True)):
        cases.append(Case(f"dense-{units}-bias{use_bias}",
                          f"model m {{ input(3, 4, 5) flatten() dense({units}, use_bias="
                          f"{str(use_bias).lower()}) dense(3) }}"))
    for variant in activation_variants():
        cases.append(Case(f"activation-{variant}", activation_positions(variant), "all",
                          jit=False, batches={"cuda": (2,)}))
    for fuse in ("none", "all"):
        cases.append(Case(f"every-activation-{fuse}", stacked_activations(), fuse))
        cases.append(Case(f"activations-on-feature-maps-{fuse}", (
            "model m { input(5, 6, 4) conv2d(4, kernel=1, activation=tanh) activation(elu) "
            "conv2d(6, kernel=2) activation(leaky_relu, alpha=0.2) activation(sigmoid) "
            "activation(softmax) }"), fuse))
        cases.append(Case(f"residual-{fuse}", (
            "model m { input(6, 7, 4) residual { conv2d(4, kernel=3, padding=same) "
            "activation(relu) } residual { activation(tanh) } flatten() dense(2) "
            "residual { dense(2, activation=sigmoid) } }"), fuse))
    # one input channel, pooled in the kernel (the CPU's `window` schedule: the patch under
    # each window in registers): valid and padded convolutions, strided, dilated, max and
    # average pooling, pools with gaps, an odd channel count
    for i, (shape, conv, pool) in enumerate((
            ("9, 10, 1", "16, kernel=3, activation=relu", "maxpool2d(2)"),
            ("8, 9, 1", "16, kernel=3, padding=same, activation=tanh", "avgpool2d(2)"),
            ("11, 12, 1", "17, kernel=2, strides=2, activation=elu", "maxpool2d(2, strides=3)"),
            ("12, 12, 1", "16, kernel=2, dilation=2, padding=same", "maxpool2d(2)"))):
        for fuse in ("all", "none"):
            # CPU schedules: in the simulator the first runs in CI, all with --long
            cases.append(Case(f"conv-pool-window-{i}-{fuse}",
                              f"model m {{ input({shape}) conv2d({conv}) {pool} }}", fuse, i,
                              long_on=("cuda",) if i else ()))
    # one input channel, not pooled (the CPU's `block` schedule: 2x2 or 1x4 blocks of
    # outputs, a last block of columns overlapping the one before): even and odd output
    # sizes, padded, strided, dilated
    for i, (shape, conv) in enumerate((
            ("8, 9, 1", "16, kernel=3, activation=tanh"),
            ("7, 11, 1", "16, kernel=3, padding=same, activation=relu"),
            ("9, 9, 1", "18, kernel=2, strides=2"),
            ("8, 10, 1", "16, kernel=3, dilation=2, padding=same, activation=elu"))):
        for fuse in ("all", "none"):
            cases.append(Case(f"conv-block-{i}-{fuse}",
                              f"model m {{ input({shape}) conv2d({conv}) }}", fuse, i,
                              long_on=("cuda",) if i else ()))
    # gathered patches in rows that whole tiles do not fit (9 columns, 8 channels): the
    # CPU's `flat` schedule, blocks of outputs across rows and images, its last block
    # partial, the residual add and relu in the tile's epilogue, 8 of a panel's 16
    # channels written
    cases.append(Case("conv-flat-residual", (
        "model m { input(7, 9, 8) conv2d(8, kernel=3, padding=same, activation=relu) "
        "residual { conv2d(8, kernel=3, padding=same) } activation(relu) }"), "all"))
    # several input channels read in place through the ring of input rows, pooled in the
    # kernel (the rows under two convolution rows per pooled row), an odd input height
    cases.append(Case("conv-pool-in-place", (
        "model m { input(7, 8, 4) conv2d(8, kernel=3, padding=same, activation=relu) "
        "maxpool2d(2) }"), "all"))
    # after pooling batchnorm cannot fold (an elementwise kernel); after conv2d/dense it
    # folds into the kernel and bias
    cases.append(Case("batchnorm-unfolded-and-folded", (
        "model m { input(6, 6, 3) maxpool2d(2) batchnorm() conv2d(4, kernel=3, "
        "use_bias=false) batchnorm(epsilon=0.01) flatten() dense(5) batchnorm() }")))
    return cases


FORWARD = _forward()


def gradient_activation_cases():
    """(name, text, loss, options) of every activation's gradient in the backward
    kernels' positions: a dense layer's input gradient (its epilogue), pooling's gradient
    (its epilogue), a convolution's input gradient; and with fuse="none" on its own."""
    for variant in activation_variants():
        text = (f"model m {{ input(5, 6, 2) conv2d(2, kernel=1) conv2d(3, kernel=2, "
                f"activation={variant}) maxpool2d(2) activation({variant}) flatten() "
                f"dense(4, activation={variant}) dense(3, activation=softmax) }}")
        for fuse in ("all", "none"):
            yield f"activation {variant} fuse={fuse}", text, "categorical_crossentropy", \
                {"fuse": fuse}
