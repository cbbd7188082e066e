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
        self._params = module.init_params(self._seed())
        self._prepared = None          # module.prepare(params), rebuilt when params change

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Parameters by "<layer>/<param>", Keras layouts, as read-only views: change them
        with set_params(), load_weights() or fit(), which keep derived parameters (folded
        batchnorm, packed kernels) in step."""
        views = {}
        for name, array in self._params.items():
            view = array.view()
            view.flags.writeable = False
            views[name] = view
        return views

    def set_params(self, values: dict) -> None:
        """Replace some or all parameters (checked against the model's names and shapes)."""
        shapes = self.param_shapes()
        for name, value in values.items():
            if name not in shapes:
                raise KeyError(f"no parameter named {name!r}")
            value = np.asarray(value)
            if value.shape != tuple(shapes[name]):
                raise ValueError(f"parameter {name!r} has shape {shapes[name]}, got "
                                 f"{value.shape}")
        for name, value in values.items():
            self._params[name][...] = value
        self._changed()

    def _changed(self) -> None:
        self._prepared = None

    def _prepared_params(self):
        if self._prepared is None:
            self._prepared = self.module.prepare(self._params)
        return self._prepared

    def _seed(self) -> int:
        config = self.program.trains.get(self.name) if self.program else None
        return config.seed if config else 0

    # --- inference ---
    def predict(self, x, batch_size: int | None = None) -> np.ndarray:
        """The final layer's output for NHWC float32 input `x` of shape (N, H, W, C)."""
        x = self._check_input(x)
        batch = DEFAULT_BATCH if batch_size is None else batch_size
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = x.shape[0]
        params = self._prepared_params()
        if n <= batch:
            return self.module.forward_prepared(params, x)
        out = np.empty((n,) + self.output_shape, dtype=np.float32)
        for start in range(0, n, batch):
            out[start:start + batch] = self.module.forward_prepared(params,
                                                                    x[start:start + batch])
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
        save_npz(path, self._params)

    def load_weights(self, path) -> None:
        """Read parameters from an .npz file; on any problem nothing is changed."""
        arrays = check_params(path, read_npz(path), self.param_shapes())
        for name, array in arrays.items():
            self._params[name][...] = array
        self._changed()

    def summary(self) -> None:
        from ..summary import summary
        print(summary(self.model))

    def __repr__(self) -> str:
        return (f"<CompiledModel {self.name}: input {self.input_shape}, output "
                f"{self.output_shape}, target {self.options.target}, module {self.module_path}>")
