"""The Keras-style model summary, with FLOPs per layer."""

from __future__ import annotations

from ..frontend.program import Model

WIDTH = 88


def summary(model: Model) -> str:
    rows = [("Layer (type)", "Output Shape", "Param #", "FLOPs")]
    for layer in model.layers:
        rows.append(("  " * layer.depth + f"{layer.name} ({layer.op})", str(layer.output),
                     f"{layer.param_count:,}", f"{layer.flops:,}"))
    name_w = max(30, max(len(r[0]) for r in rows) + 2)
    width = max(WIDTH, name_w + 26 + 12 + 14 + 1)

    def fmt(row):
        return (" " + row[0].ljust(name_w) + row[1].ljust(26) + row[2].rjust(12)
                + row[3].rjust(14)).rstrip()

    trainable = model.trainable_count
    total = model.param_count
    lines = [f'Model: "{model.name}"', "_" * width, fmt(rows[0]), "=" * width]
    for i, row in enumerate(rows[1:]):
        lines.append(fmt(row))
        if i < len(rows) - 2:
            lines.append("")
    lines += [
        "=" * width,
        f"Total params: {total:,} ({_mib(total)})",
        f"Trainable params: {trainable:,} ({_mib(trainable)})",
        f"Non-trainable params: {total - trainable:,} ({_mib(total - trainable)})",
        f"FLOPs per sample: {model.flops:,} ({_flops(model.flops)}; a multiply-add counts 2)",
        "_" * width,
    ]
    return "\n".join(lines)


def _mib(count: int) -> str:
    nbytes = count * 4
    if nbytes < 1024 * 1024:
        return f"{nbytes / 1024:.2f} KB"
    return f"{nbytes / 1024 / 1024:.2f} MB"


def _flops(n: int) -> str:
    for unit, scale in (("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} FLOP"
