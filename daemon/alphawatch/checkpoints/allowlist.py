"""The only globals a checkpoint's pickle may name, on top of torch's own weights_only set.

Reviewed so that unpickling them constructs plain data and runs nothing else:

- numpy arrays and scalars (`_reconstruct`, `ndarray`, `dtype`, `scalar`, numpy dtype
  classes): hyper-parameters and metrics are often numpy values. Their elements are
  themselves unpickled by torch's restricted unpickler, so an object array cannot
  smuggle in anything.
- `argparse.Namespace`: the common `{"model": sd, "args": args}` pattern; it only
  gets attributes set.
- Lightning's `AttributeDict` (hyper_parameters in older Lightning versions) is read
  as a plain `dict`; `pathlib.PosixPath`/`WindowsPath` as their *Pure* counterparts
  (no file-system access); `torch.torch_version.TorchVersion` as `str`. These stand-ins
  mean Lightning is never imported and nothing but builtins is constructed.

Everything else (custom classes, whole nn.Modules, functions such as `os.system`) is
refused as `unsafe_pickle`. The list is applied with the `torch.serialization.safe_globals`
context manager around each load, never process-wide.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any

ATTRIBUTE_DICT_NAMES = (
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning.pytorch.utilities.parsing.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
)


def allowed_globals() -> list[Any]:
    """(object, "module.name") pairs for `torch.serialization.safe_globals`."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]

    entries: list[Any] = []
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        entries.append((multiarray._reconstruct, f"{mod}._reconstruct"))
        entries.append((multiarray.scalar, f"{mod}.scalar"))
    entries.append((np.ndarray, "numpy.ndarray"))
    entries.append((np.dtype, "numpy.dtype"))
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        for name in dir(dtypes):
            cls = getattr(dtypes, name)
            if isinstance(cls, type) and name.endswith("DType"):
                entries.append((cls, f"numpy.dtypes.{name}"))
    entries.append((argparse.Namespace, "argparse.Namespace"))
    entries.extend((dict, name) for name in ATTRIBUTE_DICT_NAMES)
    entries.append((pathlib.PurePosixPath, "pathlib.PosixPath"))
    entries.append((pathlib.PurePosixPath, "pathlib.PurePosixPath"))
    entries.append((pathlib.PureWindowsPath, "pathlib.WindowsPath"))
    entries.append((pathlib.PureWindowsPath, "pathlib.PureWindowsPath"))
    entries.append((str, "torch.torch_version.TorchVersion"))
    return entries


def allowed_names() -> list[str]:
    """The names above, for documentation and error messages."""
    return sorted({name for _obj, name in allowed_globals()})
