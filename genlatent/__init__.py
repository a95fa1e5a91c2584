"""genlatent: generative latent-variable models (AE, VAE) for scientific data in HDF5.

Quick use::

    import genlatent
    model = genlatent.build({"data": {"kind": "vectors", "shape": [784]}, "latent_dim": 16})
    model.save("run/model")
    same = genlatent.load("run/model")

Heavy imports (torch, pyro, h5py) happen on first use of an attribute, so ``import genlatent``
is fast; parts are discovered, plugins included, on the first registry lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import registry
from ._version import __version__
from .errors import (
    CheckpointError,
    DataError,
    GenlatentError,
    PluginError,
    RegistryError,
    SpecError,
    TrainingError,
)

if TYPE_CHECKING:
    from .data import H5Dataset
    from .dataspec import DataSpec
    from .distributions.kl import kl_divergence
    from .serialization import load_model as load
    from .spec import build, normalize_spec, part
    from .training.trainer import Trainer

_LAZY = {
    "build": ("genlatent.spec", "build"),
    "normalize_spec": ("genlatent.spec", "normalize_spec"),
    "part": ("genlatent.spec", "part"),
    "load": ("genlatent.serialization", "load_model"),
    "kl_divergence": ("genlatent.distributions.kl", "kl_divergence"),
    "Trainer": ("genlatent.training.trainer", "Trainer"),
    "H5Dataset": ("genlatent.data", "H5Dataset"),
    "DataSpec": ("genlatent.dataspec", "DataSpec"),
}

__all__ = [
    "__version__",
    "registry",
    "GenlatentError",
    "RegistryError",
    "PluginError",
    "SpecError",
    "DataError",
    "CheckpointError",
    "TrainingError",
    "build",
    "normalize_spec",
    "part",
    "load",
    "kl_divergence",
    "Trainer",
    "H5Dataset",
    "DataSpec",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'genlatent' has no attribute {name!r}")
