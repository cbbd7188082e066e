"""CompiledModel: a model compiled to a generated module, with a Keras-like API."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CnncError, Diagnostic
from . import distributed
from .build import build, build_ranks
from .calls import _ModuleCall
from .fit import Position, run
from .labels import LabelError, check_labels
from .weights import check_params, read_npz, save_npz

if TYPE_CHECKING:
    from ..frontend.program import Model

DEFAULT_BATCH = 256


def _lowered_part(name: str, doc: str | None = None) -> property:
    """A CompiledModel attribute that compiling produced (CompiledModel._parts)."""
    return property(lambda self: getattr(self._parts(), name), doc=doc)


class CompiledModel:
    """A compiled model. `params` holds the parameters in Keras layouts (live views).

    Safe to call from several threads: the generated module keeps its reusable buffers
    per thread. Changing parameters (set_params, load_weights, fit) while another thread
    predicts gives that prediction the old or the new parameters, or a mix: do not.
    `report` is the fusion report (what fused, what was refused and why)."""

    def __init__(self, model: Model, graph, module, module_path, source: str, options,
                 program=None, report=None, config=None):
        self.name = model.name
        self.module = module
        self.module_path = module_path
        self.source = source
        self._lowered = SimpleNamespace(model=model, graph=graph, options=options,
                                        program=program, report=report, config=config)
        self._lower = None
        self.input_shape = tuple(model.input_type.shape)
        self.output_shape = tuple(model.output_type.shape)
        self._start(self._seed())

    @classmethod
    def from_cache(cls, name: str, module, module_path, source: str, seed: int, lower):
        """A model whose module came straight from the cache (runtime/direct.py): what
        compiling produced -- model, graph, options, program, report, train config, the
        attributes of `lower()`'s result (a cnnc.compiler.Compiled) -- is computed when
        first asked for."""
        self = cls.__new__(cls)
        self.name = name
        self.module = module
        self.module_path = module_path
        self.source = source
        self._lowered = None
        self._lower = lower
        self.input_shape = tuple(module.INPUT_SHAPE)
        self.output_shape = tuple(module.OUTPUT_SHAPE)
        self._start(seed)
        return self

    def _start(self, seed: int) -> None:
        self._params = self.module.init_params(seed)
        self._prepared = None          # module.prepare(params), rebuilt when params change
        self._built = False            # whether predict has compiled its cold kernels
        self._state = None             # optimizer state, created by the first fit
        self._position = Position()    # epochs and optimizer steps trained so far

    # --- what compiling produced (lowered on first use for a model from_cache) ---
    def _parts(self):
        if self._lowered is None:
            self._lowered = self._lower()
        return self._lowered

    model = _lowered_part("model")
    graph = _lowered_part("graph", "The inference graph after the passes.")
    options = _lowered_part("options")
    program = _lowered_part("program")
    report = _lowered_part("report", "The fusion report: what fused, what was refused and why.")

    @property
    def _config(self):
        parts = self._parts()
        return parts.config or (parts.program.trains.get(self.name) if parts.program else None)

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

    # --- where the parameters live (the CUDA model keeps them on the device) ---
    def _train_params(self):
        """The parameters the module's train_step updates in place."""
        return self._params

    def _host_params(self) -> dict:
        """The current parameters as host arrays (views of the live buffer on the CPU)."""
        return self._params

    def _host_state(self, state: dict) -> dict:
        return state

    def _restore(self, params: dict, state: dict, slots: dict) -> None:
        """Set parameters and optimizer state (a checkpoint's) in place."""
        for name, value in params.items():
            self._params[name][...] = value
        for name, value in slots.items():
            state[name][...] = value
        self._changed()

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
        if not self._built:                # a cold cache: the kernels compile in parallel
            build(self, train=False)
            self._built = True
        with _ModuleCall(self.module):
            params = self._prepared_params()
            if n <= batch:
                return self.module.forward_prepared(params, x)
            out = np.empty((n,) + self.output_shape, dtype=np.float32)
            for start in range(0, n, batch):
                out[start:start + batch] = self.module.forward_prepared(
                    params, x[start:start + batch])
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

    def export_onnx(self, path, layout: str = "nhwc"):
        """Write the model with its current parameters to `path` as ONNX (atomically);
        `layout` "nchw" makes the input (and an image output) NCHW. Needs the onnx
        package (cnnc[onnx]); see docs/onnx.md. Returns the onnx.ModelProto."""
        from ..export.onnx import export_onnx
        return export_onnx(self.model, self._host_params(), path, layout)

    def save_weights(self, path) -> None:
        """Write all parameters to an .npz file (atomically)."""
        save_npz(path, self._params)

    def load_weights(self, path) -> None:
        """Read parameters from an .npz file; on any problem nothing is changed."""
        arrays = check_params(path, read_npz(path), self.param_shapes())
        for name, array in arrays.items():
            self._params[name][...] = array
        self._changed()

    def build(self, progress: bool = False, jobs: int | None = None) -> int:
        """Compile the kernels Numba's cache does not hold yet, now rather than at their
        first call, `jobs` processes at once (default: one per core), with a progress bar
        when `progress`; returns how many were compiled (runtime/build.py)."""
        return build(self, progress, jobs)

    # --- training ---
    @property
    def config(self):
        return self._config

    def _require_training(self):
        if not hasattr(self.module, "train_step"):
            raise CnncError(Diagnostic(f"model '{self.name}' has no train block: give "
                                       f"loss= and optimizer= to cnnc.compile to train it"))

    def _opt_state(self) -> dict:
        self._require_training()
        if self._state is None:
            self._state = self.module.init_opt_state()
        return self._state

    def _labels(self, y, n: int, where: str) -> np.ndarray:
        """`y` checked against the model and its loss (the data loader's rules and words);
        ValueError naming `where` otherwise."""
        try:
            from ..ir.ops.training import LOSSES
            y = check_labels(y, self.output_shape[-1], LOSSES[self._config.loss].sparse)
        except LabelError as e:
            raise ValueError(f"{where}: labels {e}") from None
        if len(y) != n:
            raise ValueError(f"{where} got {n} inputs and {len(y)} labels")
        return y

    def gradients(self, x, y, dropout: bool = False, seed: int = 0):
        """(loss, {"<layer>/<param>": gradient}) of one batch in training mode: batchnorm
        on batch statistics, dropout with the masks of step 0 of `seed` when `dropout`."""
        self._require_training()
        x = self._check_input(x)
        y = self._labels(y, len(x), "gradients")
        key = self.module.step_seed(seed, 0) if dropout else -1
        with _ModuleCall(self.module):
            loss, _, grads = self.module.compute_gradients(self._train_params(), x, y, key)
        return loss, grads

    def fit(self, x, y, epochs: int | None = None, batch_size: int | None = None,
            validation_split: float = 0.0, validation_data=None, shuffle: bool = True,
            verbose: int = 1, seed: int | None = None, run_dir=None, resume: bool = False,
            comm=None):
        """Train (Keras-like); returns a History. Defaults come from the train block.

        The optimizer's state and step count carry over from one call to the next, as in
        tf.keras, and so does the epoch count (it keys the shuffle and the dropout
        masks): two calls of one epoch train as one call of two. With `resume`, training
        continues from `run_dir`'s checkpoint until `epochs` epochs are done in all.

        Data-parallel: in a process an MPI launcher started (`mpiexec -n N python ...`,
        `srun`), or given an mpi4py communicator `comm`, the ranks train together
        (cnnc.runtime.distributed): `batch_size` is each rank's, every rank passes the
        same data, and only rank 0 prints and writes `run_dir`."""
        self._require_training()
        cfg = self._config
        epochs = epochs if epochs is not None else cfg.epochs
        batch_size = batch_size or cfg.batch_size
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        seed = cfg.seed if seed is None else seed
        x = self._check_input(x)
        y = self._labels(y, len(x), "fit")
        x_val = y_val = None
        if validation_data is not None:
            x_val, y_val = validation_data
            x_val = self._check_input(x_val)
            y_val = self._labels(y_val, len(x_val), "fit (validation_data)")
        elif validation_split or cfg.validation_split:
            split = validation_split or cfg.validation_split
            cut = int(len(x) * (1 - split))          # Keras: the last samples, unshuffled
            x, x_val, y, y_val = x[:cut], x[cut:], y[:cut], y[cut:]
        world = distributed.world_from(comm) if comm is not None else distributed.join()
        if run_dir is not None and not resume and (world is None or world.main):
            from pathlib import Path  # a resume reads what is there
            Path(run_dir).mkdir(parents=True, exist_ok=True)
        total = epochs if resume else self._position.epoch + epochs
        if world is not None and len(x) < world.size:
            raise ValueError(f"fit got {len(x)} samples for {world.size} ranks: each rank "
                             f"needs at least one")
        build_ranks(self, world, progress=verbose == 1)     # cold kernels: compiled now
        with _ModuleCall(self.module):
            history = run(self, x, y, epochs=total, batch_size=batch_size, seed=seed,
                          x_val=x_val, y_val=y_val, shuffle=shuffle, verbose=verbose,
                          run_dir=run_dir, resume=resume, start=self._position,
                          world=world)
        self._changed()
        return history

    def evaluate(self, x, y, batch_size: int | None = None) -> tuple[float, float]:
        """(loss, accuracy) in inference mode, as Keras's evaluate."""
        self._require_training()
        x = self._check_input(x)
        y = self._labels(y, len(x), "evaluate")
        with _ModuleCall(self.module):
            return self.module.evaluate(self._train_params(), x, y,
                                        batch_size=batch_size or DEFAULT_BATCH)

    # --- profiling (cnnc profile; runtime/profile.py) ---
    _load_profiled = None          # set by cnnc.compile: model -> its profiled module

    def profile(self, batch: int | None = None, train: bool = False,
                repeats: int | None = None, max_seconds: float = 10.0,
                remeasure_roofs: bool = False):
        """Measure the step kernel by kernel: the forward pass (or with `train` the whole
        training step, on copies of the parameters) on random data of the model's
        shapes, against the roofs measured on this machine. Returns a
        reports.profile.Profile (its to_json() is `cnnc profile --json`). `repeats`:
        exactly that many timed steps (default: until the medians are stable, at most
        `max_seconds`); `remeasure_roofs`: measure the roofs again, not from the cache."""
        from .profile import measure
        if self._load_profiled is None:
            raise CnncError(Diagnostic("profile() needs a model made by cnnc.compile"))
        profiled = self._load_profiled()
        with _ModuleCall(self.module):
            return measure(self, profiled, batch, train, repeats, max_seconds,
                           remeasure_roofs=remeasure_roofs)

    def _params_for(self, module):
        """A copy of the parameters as `module`'s steps take them."""
        params = module.init_params(0)
        for name, value in self._host_params().items():
            params[name][...] = value
        return params

    def summary(self) -> None:
        from ..reports.summary import summary
        print(summary(self.model))

    def __repr__(self) -> str:
        return (f"<CompiledModel {self.name}: input {self.input_shape}, output "
                f"{self.output_shape}, target {self.options.target.name}, "
                f"module {self.module_path}>")
