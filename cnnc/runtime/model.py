"""CompiledModel: a model compiled to a generated module, with a Keras-like API."""

from __future__ import annotations

import numpy as np

from ..program import Model
from .weights import check_params, read_npz, save_npz

DEFAULT_BATCH = 256


class CompiledModel:
    """A compiled model. `params` holds the parameters in Keras layouts (live views)."""

    def __init__(self, model: Model, graph, module, module_path, source: str, options,
                 program=None, report=None):
        self.model = model
        self.name = model.name
        self.graph = graph
        self.module = module
        self.module_path = module_path
        self.source = source
        self.options = options
        self.program = program
        self.report = report
        self.input_shape = tuple(model.input_type.shape)
        self.output_shape = tuple(model.output_type.shape)
        self.params = module.init_params(self._seed())

    def _seed(self) -> int:
        config = self.program.trains.get(self.name) if self.program else None
        return config.seed if config else 0

    # --- inference ---
    def predict(self, x, batch_size: int | None = None) -> np.ndarray:
        """The final layer's output for NHWC float32 input `x` of shape (N, H, W, C)."""
        x = self._check_input(x)
        batch = batch_size or DEFAULT_BATCH
        if not isinstance(batch, (int, np.integer)) or batch <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = x.shape[0]
        out = np.empty((n,) + self.output_shape, dtype=np.float32)
        for start in range(0, n, batch):
            out[start:start + batch] = self.module.forward(self.params, x[start:start + batch])
        return out

    def _check_input(self, x) -> np.ndarray:
        expected = f"float32 array of shape (N, {', '.join(map(str, self.input_shape))})"
        if not isinstance(x, np.ndarray):
            raise ValueError(f"predict expects a {expected}, received {type(x).__name__}")
        if x.dtype != np.float32:
            raise ValueError(f"predict expects a {expected}, received dtype {x.dtype} "
                             f"(convert with x.astype(np.float32))")
        if x.ndim != 1 + len(self.input_shape) or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"predict expects a {expected}, received shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"predict expects a {expected} with N >= 1, received N = 0")
        return np.ascontiguousarray(x)

    # --- parameters ---
    def param_shapes(self) -> dict[str, tuple]:
        return {p.name: p.shape for p in self.graph.params}

    def save_weights(self, path) -> None:
        """Write all parameters to an .npz file (atomically)."""
        save_npz(path, self.params)

    def load_weights(self, path) -> None:
        """Read parameters from an .npz file; on any problem nothing is changed."""
        arrays = check_params(path, read_npz(path), self.param_shapes())
        for name, array in arrays.items():
            self.params[name][...] = array

    def summary(self) -> None:
        from ..summary import summary
        print(summary(self.model))

    def __repr__(self) -> str:
        return (f"<CompiledModel {self.name}: input {self.input_shape}, output "
                f"{self.output_shape}, target {self.options.target}, module {self.module_path}>")
