"""Fusion options: which fusion rules a compilation applies, as one frozen value.

`Fusion.parse` reads what a user gives ("all", "none", "epilogue,pool" or a list) once,
where compilation starts; everything after -- the passes, the generated module's header,
the module cache's key, `cnnc explain` -- takes the value and spells it the same way:
`str(fusion)` lists exactly the enabled rules in pipeline order, or says `none`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CnncError, Diagnostic, did_you_mean

# name -> what it fuses. The inference rules, then the rules only training graphs use.
INFERENCE_RULES = {
    "epilogue": "elementwise/broadcast ops into the kernel of the complex op or reduction "
                "producing their input",
    "pool": "pooling into the kernel of the convolution producing its input",
    "row": "a row reduction (softmax) into the kernel of a dense layer",
    "elementwise": "chains of elementwise/broadcast ops into one kernel",
}
TRAINING_RULES = {
    "loss": "the last softmax/sigmoid into its cross-entropy: one stable kernel for the "
            "loss and its gradient (passes/fuse_loss.py; also in evaluation)",
    "siblings": "the bias gradient (a channel sum of dy) into the kernel of the weight "
                "gradient reading the same dy: dy is read once for both",
    "updates": "every optimizer update of a step into one kernel over the flat parameter "
               "buffer (horizontal fusion: the updates are independent and elementwise)",
}
RULES = {**INFERENCE_RULES, **TRAINING_RULES}


@dataclass(frozen=True)
class Fusion:
    """The enabled fusion rules, in the canonical (pipeline) order."""

    rules: tuple[str, ...]

    def __post_init__(self):
        assert all(r in RULES for r in self.rules), self.rules
        assert self.rules == tuple(r for r in RULES if r in self.rules), self.rules

    @classmethod
    def parse(cls, spec) -> "Fusion":
        """`spec` as a user gives it: "all" (or None), "none", "a,b" or a list of rule
        names, or a Fusion. Unknown rules are a CnncError with a suggestion."""
        if isinstance(spec, Fusion):
            return spec
        if spec is None or spec == "all":
            return cls(tuple(RULES))
        if spec == "none":
            return cls(())
        names = spec.split(",") if isinstance(spec, str) else list(spec)
        names = [n.strip() for n in names if n.strip()]
        for name in names:
            if name not in RULES:
                raise CnncError(Diagnostic(
                    f"unknown fusion rule '{name}'",
                    hint=did_you_mean(name, RULES) or
                    "rules: " + ", ".join(RULES) + " (or all, none)"))
        return cls(tuple(r for r in RULES if r in names))

    def __contains__(self, rule: str) -> bool:
        assert rule in RULES, rule
        return rule in self.rules

    def __str__(self) -> str:
        """The canonical spelling: the enabled rules, comma-separated, or `none`. It parses
        back to the same value."""
        return ",".join(self.rules) or "none"


ALL = Fusion(tuple(RULES))
NONE = Fusion(())
