"""The contracts between interchangeable parts.

A model is an encoder, a posterior, a prior, a decoder and a likelihood. Each is an
``nn.Module`` registered by name (see :mod:`genlatent.registry`) and built from the data spec
and its own keyword parameters, so any encoder fits any posterior and any decoder fits any
likelihood whose data kinds it supports:

- ``Encoder(data, out_features, **params)``: ``forward(x, lengths=None) -> (B, out_features)``.
  ``out_features = posterior.num_params * latent_dim`` (or ``latent_dim`` for the AE).
- ``Posterior(latent_dim, **params)``: ``num_params`` values per latent dimension;
  ``forward(params) -> Distribution`` with batch shape ``(B,)``, event shape ``(latent_dim,)``
  and ``rsample``.
- ``Prior(latent_dim, **params)``: ``forward() -> Distribution`` with batch shape ``()`` and
  event shape ``(latent_dim,)``; may hold learnable parameters. A prior made from the model's
  own inference network (the VampPrior) sets ``needs_encoder = True``; the model then calls
  its ``attach(model)`` once, right after it is built (see :class:`Prior`). A prior that
  depends on the condition sets ``takes_condition = True`` (see below).
- ``Decoder(data, latent_dim, num_params, **params)``: ``forward(z, x=None, lengths=None) ->
  (B, num_params, *data.shape)`` for every kind; token data too: the categorical likelihood
  has ``num_params = vocab_size``, so ``(B, vocab_size, L)`` where ``L`` is the length of ``x``
  (teacher forcing). Autoregressive decoders also have ``generate``.
- ``Likelihood(data, **params)``: ``num_params`` parameter maps per data value;
  ``log_prob(params, x, lengths=None) -> (B,)`` in nats, summed over the data dimensions.

Conditions (:mod:`genlatent.conditions`): a conditional model (spec field ``"condition"``)
builds its encoder and decoder with the keyword ``condition_dim=C`` (the width of the
condition vector) and calls them with ``condition=`` a float tensor ``(B, C)``:
``Encoder.forward(x, lengths=None, condition=None)``, ``Decoder.forward(z, x=None,
lengths=None, condition=None)`` and ``Decoder.generate(z, ..., condition=None)``. A network
takes conditions by accepting ``condition_dim: int = 0`` and using ``condition`` when it is
> 0 (the built-in ones concatenate it to the input or z); with 0 it must be exactly the
unconditioned network. ``condition_dim`` is never recorded among the part's params (the
spec's ``"condition"`` field records it), and an unconditioned model never passes it (0) to
a constructor that does not name it, so networks written before conditions existed keep
working; asking such a network for a condition fails at build time with a
:class:`~genlatent.errors.SpecError` naming it.

A prior p(z | c) sets ``takes_condition = True``: it is built with ``condition_dim=C`` (like
a network, not recorded among its params; 0 for an unconditioned model, which it refuses
with a :class:`~genlatent.errors.SpecError`), and ``forward(condition)`` takes the
``(B, C)`` condition and returns a distribution with batch shape ``(B,)`` and event shape
``(latent_dim,)``; ``sample(n, condition=(n, C))`` gives ``(n, latent_dim)``. The model
passes the batch's condition wherever it scores or samples the prior. Priors without the
flag keep ``forward()`` and are used unchanged by conditional models.

Each class says which data kinds it supports in ``kinds``; :func:`genlatent.build` checks the
pairing and fails with a clear message before any weight is made. Likelihoods also declare the
values they can score in ``support`` (a ``torch.distributions.constraints`` object, as Pyro
distributions do), so the data can be checked against it before training.

Resolved parameters: :func:`genlatent.build` binds each part's keyword parameters to its
constructor's signature (defaults applied) and stores them in ``bound_params``; a saved model
records :meth:`Part.resolved_params`, which is those parameters with every automatic choice
("auto" / ``None`` meaning "decide from the data") replaced by the value actually used. A saved
model is rebuilt from exactly those values and never from the defaults of a later release.

Data readers (``registry.datasets``) meet the :class:`Reader` protocol below; one is chosen per
path by asking every registered reader's ``can_open``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from .dataspec import DataSpec


class Part(nn.Module):
    """What every part shares: the parameters it was built with, resolved for saving."""

    bound_params: dict[str, Any]
    #: For parameters added after models were saved: the value that reproduces those models
    #: (``{"out_conv": True}`` when a release adds ``out_conv`` defaulting to False). Loading
    #: fills a parameter a saved spec lacks from here; without an entry it takes today's
    #: default and warns.
    legacy_defaults: ClassVar[dict[str, Any]] = {}

    def resolved_params(self) -> dict[str, Any]:
        """Every keyword parameter of the constructor, defaults applied, with automatic
        choices replaced by their concrete values: building the part again from these gives
        the same architecture under any later release.

        The default returns ``bound_params`` (set by :func:`genlatent.build`). A part whose
        parameter means "decide from the data" overrides this and reports what it decided.
        """
        return dict(getattr(self, "bound_params", {}))


class Encoder(Part):
    """Maps a batch of data to the flat parameters of the posterior."""

    kinds: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, data: DataSpec, out_features: int) -> None:
        super().__init__()
        self.data = data
        self.out_features = out_features

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, condition: Tensor | None = None
    ) -> Tensor:  # pragma: no cover
        """``(B, out_features)``; ``condition`` ``(B, condition_dim)`` when conditioned."""
        raise NotImplementedError


class Decoder(Part):
    """Maps latent codes to the parameters of the likelihood."""

    kinds: ClassVar[frozenset[str]] = frozenset()
    autoregressive: ClassVar[bool] = False

    def __init__(self, data: DataSpec, latent_dim: int, num_params: int) -> None:
        super().__init__()
        self.data = data
        self.latent_dim = latent_dim
        self.num_params = num_params

    def forward(
        self,
        z: Tensor,
        x: Tensor | None = None,
        lengths: Tensor | None = None,
        condition: Tensor | None = None,
    ) -> Tensor:  # pragma: no cover
        """``(B, num_params, *data.shape)``; ``condition`` ``(B, condition_dim)`` when
        conditioned."""
        raise NotImplementedError

    def generate(
        self,
        z: Tensor,
        *,
        max_length: int | None = None,
        temperature: float = 1.0,
        greedy: bool = False,
        condition: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:  # pragma: no cover
        """Autoregressive decoders: token ids ``(B, L)`` and lengths ``(B,)``."""
        raise NotImplementedError(f"{type(self).__name__} is not autoregressive")


class Posterior(Part):
    """Turns the encoder's flat output into q(z|x)."""

    num_params: int = 2

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def forward(self, params: Tensor) -> Distribution:  # pragma: no cover
        raise NotImplementedError

    def point_code(self, q: Distribution) -> Tensor:
        """One code per example, ``(B, latent_dim)``, for ``encode``, reconstructions and
        maps: the mean of ``q`` by default. A posterior without a closed-form mean (a flow)
        says here what it uses instead."""
        return q.mean


class Prior(Part):
    """p(z): sampled, scored, possibly learned.

    A prior that is built from the model's encoder and posterior (the VampPrior: a mixture of
    the posteriors of learned pseudo-inputs) sets ``needs_encoder = True``. The model calls
    :meth:`attach` once, at the end of its constructor, before any weight is loaded; the prior
    keeps a plain (unregistered) reference to the model, so the encoder stays one submodule:
    ``state_dict``, ``.to(device)`` and save/load see it once, under ``encoder``. Parameters
    the prior makes in ``attach`` (pseudo-inputs) are its own and are saved with it.
    """

    #: True when ``forward`` needs the model's encoder and posterior (see :meth:`attach`).
    needs_encoder: ClassVar[bool] = False
    #: True for p(z | c): built with ``condition_dim``; ``forward(condition)`` with
    #: ``condition`` ``(B, C)`` returns batch shape ``(B,)``, event ``(latent_dim,)``.
    takes_condition: ClassVar[bool] = False

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def attach(self, model: nn.Module) -> None:
        """Called once by the model after it is built; the default does nothing. ``model``
        has ``data``, ``encoder``, ``posterior`` and ``likelihood``."""

    def forward(self) -> Distribution:  # pragma: no cover
        """p(z); a prior with ``takes_condition`` has ``forward(condition)`` instead."""
        raise NotImplementedError

    def sample(self, n: int, condition: Tensor | None = None) -> Tensor:
        """``n`` draws, shape ``(n, latent_dim)``; a prior that takes conditions draws one
        per row of ``condition`` (``(n, C)``, or one ``(C,)`` vector for all)."""
        with torch.no_grad():
            if not self.takes_condition:
                return self().sample((n,))
            if condition is None:
                raise ValueError(f"{type(self).__name__} needs condition= to sample")
            condition = condition.expand(n, -1) if condition.dim() == 1 else condition
            return self(condition).sample()

    def log_prob(self, z: Tensor, condition: Tensor | None = None) -> Tensor:
        """Log density of ``z`` of shape ``(..., latent_dim)`` (at ``condition`` ``(B, C)``
        for a prior that takes conditions)."""
        return (self(condition) if self.takes_condition else self()).log_prob(z)


class Likelihood(Part):
    """p(x|z) from the decoder's parameter maps."""

    kinds: ClassVar[frozenset[str]] = frozenset()
    num_params: int = 1
    #: The data values this likelihood can score (``None``: not declared, not checked).
    support: ClassVar[constraints.Constraint | None] = None

    def __init__(self, data: DataSpec) -> None:
        super().__init__()
        self.data = data

    def log_prob(
        self, params: Tensor, x: Tensor, lengths: Tensor | None = None
    ) -> Tensor:  # pragma: no cover
        """Per-example log-likelihood in nats, summed over data dimensions: shape ``(B,)``."""
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:  # pragma: no cover
        """The expected data (reconstruction), shape ``(B, *data.shape)``."""
        raise NotImplementedError

    def sample(self, params: Tensor) -> Tensor:  # pragma: no cover
        """One draw of data, shape ``(B, *data.shape)``."""
        raise NotImplementedError


@runtime_checkable
class Reader(Protocol):
    """A dataset class in ``registry.datasets``: examples along axis 0 of some storage.

    :func:`genlatent.data.open_dataset` calls ``can_open(path)`` on every registered reader
    and builds the one that claims the path (several claims are an error naming them) as
    ``Reader(path, key, labels=..., **options)``; ``key`` is ``default_key`` unless the user
    gave one, ``labels`` is ``None``, a name, a list of names or ``True`` (every aligned 1-D
    label). A bad file raises :class:`~genlatent.errors.DataError` with a one-line message
    naming it.

    The easy way to meet it: subclass :class:`genlatent.data.ArrayDataset` (formats that load
    into NumPy arrays) or :class:`genlatent.data.RowDataset` (implement ``_read_into`` to read
    stored rows in contiguous runs, for data larger than memory); they provide everything below
    but ``can_open`` and ``__init__``.
    """

    default_key: ClassVar[str]  # the key when none is given ("x"; "X" for AnnData)
    description: ClassVar[str]  # what it opens, for "no reader opens it" messages

    path: str
    key: str
    spec: DataSpec  # kind, shape of one example, dtype, vocabulary: what models size from
    labels: dict[str, np.ndarray]  # aligned 1-D arrays asked for, one value per stored row
    label_categories: dict[str, list[str]]  # class names of labels that have them
    in_memory: bool  # the loader reads in-process (no workers) when True

    @classmethod
    def can_open(cls, path: Path) -> bool:
        """Whether this reader is the one for ``path``; cheap (suffix, signature, listing),
        never raising for foreign files."""
        ...

    @property
    def where(self) -> str:
        """``path:key``, the prefix of every message about this data."""
        ...

    def __len__(self) -> int: ...

    def read_batches(
        self, rows: np.ndarray, bounds: np.ndarray | None = None
    ) -> list[dict[str, Any]]:
        """Batch ``k`` holds rows ``rows[bounds[k]:bounds[k + 1]]`` (any order, repeats
        allowed): ``{"x", "index" (stored row ids), "lengths" (tokens), "labels"}``."""
        ...

    def read(self, rows: Any) -> dict[str, Any]:
        """One batch of the given rows."""
        ...

    def subset(self, start: int, stop: int) -> Reader:
        """The same data restricted to rows ``start:stop``."""
        ...

    def split(self, fraction: float) -> tuple[Reader, Reader]:
        """``(first, last)`` contiguous parts, the last holding ``fraction`` of the rows."""
        ...

    def describe(self) -> dict[str, Any]:
        """A summary for ``genlatent data info`` (path, key, rows, spec, labels, ...)."""
        ...

    def close(self) -> None:
        """Release open files; reading reopens them (called before forking workers)."""
        ...
