"""Saving and loading parameters as .npz files, atomically and with clear errors."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ..errors import FileError
from ..util import atomic_write_bytes


def save_npz(path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` to `path` as .npz; the old file survives any failure."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.ascontiguousarray(a) for name, a in arrays.items()})
    atomic_write_bytes(path, buffer.getvalue())


def read_npz(path) -> dict[str, np.ndarray]:
    """All arrays of an .npz file (pickles refused); FileError naming the file otherwise."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"PK\x03\x04" and magic[:1] != b"\x93":
            raise FileError(path, "not a valid .npz file (not a zip archive)")
        _check_members(path)
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise FileError(path, "not an .npz archive (a single .npy array?)")
            return {name: data[name] for name in data.files}
    except FileError:
        raise
    except FileNotFoundError:
        raise FileError(path, "no such file") from None
    except IsADirectoryError:
        raise FileError(path, "is a directory, not an .npz file") from None
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise FileError(path, f"not a valid .npz file ({_reason(e)})") from None
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise FileError(path, "holds Python objects (pickles are refused)") from None
        raise FileError(path, f"not a valid .npz file ({_reason(e)})") from None


def _check_members(path: Path) -> None:
    """Refuse, before anything is allocated, an .npz member whose header declares more
    data than the member holds or than this machine's memory (a shape bomb: numpy would
    allocate what the header says first)."""
    from ..frontend.limits import human, memory_bytes
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                header = member.tell()
            if dtype.hasobject:
                continue                        # refused as a pickle when it is read
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            name = info.filename[:-4]
            if declared > info.file_size - header or declared > memory_bytes() // 2:
                raise FileError(path, f"'{name}' declares shape {tuple(shape)} "
                                      f"({human(declared)}) but holds "
                                      f"{human(max(0, info.file_size - header))}")


def check_params(path, loaded: dict[str, np.ndarray], expected: dict[str, tuple]) -> dict:
    """Validate names, shapes and dtypes against `expected`; float32 copies, or FileError."""
    missing = [name for name in expected if name not in loaded]
    if missing:
        raise FileError(path, f"missing parameter '{missing[0]}'"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    extra = [name for name in loaded if name not in expected]
    if extra:
        raise FileError(path, f"unexpected parameter '{extra[0]}': this model has no such "
                              f"parameter")
    out = {}
    for name, shape in expected.items():
        array = loaded[name]
        if tuple(array.shape) != tuple(shape):
            raise FileError(path, f"parameter '{name}' has shape {tuple(array.shape)}, "
                                  f"expected {tuple(shape)}")
        if not np.issubdtype(array.dtype, np.floating):
            raise FileError(path, f"parameter '{name}' has dtype {array.dtype}, expected "
                                  f"float32")
        converted = array.astype(np.float32)
        if not np.all(np.isfinite(converted)):
            raise FileError(path, f"parameter '{name}' holds NaN or infinite values")
        out[name] = converted
    return out


def _reason(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:120]
