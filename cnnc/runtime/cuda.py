"""Running the CUDA target: what it needs, and a compiled model whose state lives on the GPU.

The generated CUDA module needs the `numba-cuda` package (numba's own CUDA target is
deprecated) and either a CUDA GPU with its driver or Numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1, which runs the kernels on the CPU, one Python thread per GPU
thread: slow, for tests on small shapes). `require()` checks that before anything is
imported from the module and says what is missing.

:class:`CudaCompiledModel` keeps the parameters, the optimizer state and every
activation on the device. The host copy of the parameters behind `params`,
`save_weights` and checkpoints is refreshed from the device only when it is read after
training; `set_params` and `load_weights` write the host copy and upload it once, before
the next use on the device.
"""

from __future__ import annotations

import os

from ..errors import CnncRuntimeError
from .model import CompiledModel

SIMULATOR = "NUMBA_ENABLE_CUDASIM"
PACKAGE = "numba-cuda==0.30.4"


def simulated() -> bool:
    return os.environ.get(SIMULATOR, "") not in ("", "0")


def require() -> None:
    """Raise CnncRuntimeError (one message: what is missing, how to get it) unless CUDA
    kernels can run here: numba-cuda with a GPU, or with the simulator."""
    try:
        import numba_cuda  # noqa: F401  -- the package that provides numba.cuda
    except ImportError:
        raise CnncRuntimeError(
            f"the cuda target needs the numba-cuda package: pip install '{PACKAGE}' (or "
            f"pip install 'cnnc[cuda]')") from None
    from numba import cuda
    if simulated():
        return
    if cuda.is_available():
        return
    reason = "no CUDA GPU was found"
    try:
        cuda.get_current_device()
    except Exception as e:  # noqa: BLE001 -- the driver's own words, whatever they are
        text = " ".join(str(e).split())
        reason = f"no CUDA GPU is usable here ({text[:160]})" if text else reason
    raise CnncRuntimeError(
        f"the cuda target cannot run: {reason}. To run the CUDA kernels without a GPU, "
        f"in Numba's CUDA simulator (slow: for small tests), set {SIMULATOR}=1 before "
        f"starting Python; `cnnc compile --target cuda` writes the module (and --ptx the "
        f"kernels' PTX) without either")


class CudaCompiledModel(CompiledModel):
    """A model compiled for CUDA: the same API as on the CPU, with parameters, optimizer
    state and activations on the device."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._device = None            # DeviceParams, uploaded on first use
        self._host_stale = False       # the device holds newer parameters than _params

    # --- the two copies of the parameters ---
    def _sync_host(self) -> None:
        if self._host_stale:
            self._device.flat.copy_to_host(self._flat_host())
            self._host_stale = False

    def _flat_host(self):
        """The flat host buffer `_params` are views of."""
        first = self._params[self.module.FLAT_ORDER[0]]
        return first.base if first.base is not None else first

    def _device_params(self):
        if self._device is None:
            self._device = self.module.to_device(self._params)
        return self._device

    def _host_changed(self) -> None:
        """The host copy was written: upload it before the device is used again."""
        self._device = None
        self._changed()

    @property
    def params(self):
        self._sync_host()
        return super().params

    def set_params(self, values: dict) -> None:
        self._sync_host()
        super().set_params(values)
        self._host_changed()

    def load_weights(self, path) -> None:
        self._sync_host()
        super().load_weights(path)
        self._host_changed()

    def save_weights(self, path) -> None:
        self._sync_host()
        super().save_weights(path)

    def _prepared_params(self):
        if self._prepared is None:
            self._prepared = self.module.prepare(self._device_params())
        return self._prepared

    # --- training: the module updates the device parameters in place ---
    def _train_params(self):
        params = self._device_params()
        self._host_stale = bool(self.module.FLAT_ORDER)
        return params

    def _host_params(self) -> dict:
        self._sync_host()
        return self._params

    def _host_state(self, state: dict) -> dict:
        return {name: self.module.to_host(value) for name, value in state.items()}

    def _restore(self, params: dict, state: dict, slots: dict) -> None:
        self._sync_host()
        for name, value in params.items():
            self._params[name][...] = value
        for name, value in slots.items():
            state[name].copy_to_device(value.astype(state[name].dtype, copy=False))
        self._host_changed()

    def _params_for(self, module):
        """A copy of the parameters on the device, as `module`'s steps take them."""
        return module.to_device(self._host_params())
