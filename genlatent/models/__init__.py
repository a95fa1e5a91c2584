"""Models: the :class:`LatentModel` base, the autoencoder and the VAE.

Importing this package registers ``"ae"`` and ``"vae"`` in ``registry.models``.
"""

from __future__ import annotations

from . import ae, base, vae
from .ae import AE
from .base import LatentModel
from .vae import VAE

__all__ = ["ae", "base", "vae", "AE", "LatentModel", "VAE"]
