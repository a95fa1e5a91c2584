"""The model spec: a plain JSON-serialisable dict that names every part, and ``build``.

Example::

    spec = {
        "model": "vae",
        "latent_dim": 16,
        "data": {"kind": "grids", "shape": [1, 28, 28]},
        "encoder": {"name": "cnn", "params": {"channels": [32, 64]}},
        "decoder": "cnn",                   # a bare name means default parameters
        "posterior": "normal",
        "prior": {"name": "mixture", "params": {"components": 10}},
        "likelihood": "bernoulli",
        "objective": {"beta": 1.0, "kl_warmup_steps": 1000},
    }
    model = genlatent.build(spec)

Missing parts get defaults chosen from the data kind; :func:`normalize_spec` returns the
complete spec that the model records and saves.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from . import registry
from .dataspec import DataSpec
from .errors import GenlatentError, SpecError

if TYPE_CHECKING:
    from .models.base import LatentModel

SPEC_VERSION = 1
PART_KINDS = {  # spec field -> registry kind
    "encoder": "encoders",
    "decoder": "decoders",
    "posterior": "posteriors",
    "prior": "priors",
    "likelihood": "likelihoods",
}
DEFAULT_NETWORK = {"vectors": "mlp", "counts": "mlp", "grids": "cnn", "tokens": "gru"}
DEFAULT_LIKELIHOOD = {
    "vectors": "bernoulli",
    "grids": "bernoulli",
    "tokens": "categorical",
    "counts": "negative_binomial",
}
_KNOWN_FIELDS = {"genlatent_spec", "model", "latent_dim", "data", "objective", *PART_KINDS}


def part(name: str, **params: Any) -> dict[str, Any]:
    """A part entry for a spec: ``part("mlp", hidden=[400])``."""
    return {"name": name, "params": params}


def _normalize_part(field: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": value, "params": {}}
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        extra = set(value) - {"name", "params"}
        if extra:
            raise SpecError(
                f"spec field {field!r} takes 'name' and 'params', not {', '.join(sorted(extra))}"
            )
        params = value.get("params") or {}
        if not isinstance(params, dict):
            raise SpecError(f"spec field {field}.params must be a mapping, got {params!r}")
        return {"name": value["name"], "params": dict(params)}
    raise SpecError(
        f"spec field {field!r} must be a name or {{'name': ..., 'params': {{...}}}}, got {value!r}"
    )


def normalize_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and check the spec's form (not yet whether the parts exist)."""
    if not isinstance(spec, dict):
        raise SpecError(f"a model spec is a dict, got {type(spec).__name__}")
    unknown = set(spec) - _KNOWN_FIELDS
    if unknown:
        raise SpecError(
            f"unknown spec field(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(sorted(_KNOWN_FIELDS))}"
        )
    if "data" not in spec:
        raise SpecError("the spec needs 'data': {'kind': ..., 'shape': [...]}")
    data = DataSpec.from_dict(spec["data"])
    out: dict[str, Any] = {"genlatent_spec": SPEC_VERSION}
    out["model"] = spec.get("model", "vae")
    latent_dim = spec.get("latent_dim", 16)
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise SpecError(f"spec field 'latent_dim' must be a positive integer, got {latent_dim!r}")
    out["latent_dim"] = latent_dim
    out["data"] = data.to_dict()
    defaults = {
        "encoder": DEFAULT_NETWORK[data.kind],
        "decoder": DEFAULT_NETWORK[data.kind],
        "posterior": "normal",
        "prior": "standard_normal",
        "likelihood": DEFAULT_LIKELIHOOD[data.kind],
    }
    for field in PART_KINDS:
        out[field] = _normalize_part(field, spec.get(field, defaults[field]))
    objective = spec.get("objective") or {}
    if not isinstance(objective, dict):
        raise SpecError(f"spec field 'objective' must be a mapping, got {objective!r}")
    out["objective"] = dict(objective)
    try:
        json.dumps(out)
    except TypeError as exc:
        raise SpecError(f"the spec must be JSON-serialisable: {exc}") from None
    return out


def _make(field: str, entry: dict[str, Any], *args: Any) -> Any:
    cls = registry.get_part(PART_KINDS[field], entry["name"])
    try:
        return cls(*args, **entry["params"])
    except GenlatentError:
        raise
    except TypeError as exc:
        raise SpecError(
            f"{field} {entry['name']!r}: bad parameters {entry['params']}: {exc}"
        ) from None
    except ValueError as exc:
        raise SpecError(f"{field} {entry['name']!r}: {exc}") from None


def _check_kinds(field: str, name: str, obj: Any, data: DataSpec) -> None:
    kinds = getattr(obj, "kinds", None)
    if kinds and data.kind not in kinds:
        raise SpecError(
            f"{field} {name!r} does not fit {data.kind} data; it supports "
            f"{', '.join(sorted(kinds))}"
        )


def build(spec: dict[str, Any], *, seed: int | None = None) -> LatentModel:
    """Make a model, with fresh weights, from a spec (see the module docstring).

    With ``seed`` the weights are drawn from a torch generator seeded with it (inside
    ``torch.random.fork_rng``, so the caller's RNG state is untouched): the same spec and
    seed give bit-identical weights on the same machine. Without it they come from the
    global RNG, as ``torch.nn`` layers do.
    """
    if seed is None:
        return _build(spec)
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return _build(spec)


def _build(spec: dict[str, Any]) -> LatentModel:
    spec = normalize_spec(spec)
    data = DataSpec.from_dict(spec["data"])
    model_cls = registry.get_part("models", spec["model"])
    latent_dim = spec["latent_dim"]
    for field in ("encoder", "decoder", "likelihood"):
        cls = registry.get_part(PART_KINDS[field], spec[field]["name"])
        _check_kinds(field, spec[field]["name"], cls, data)
    likelihood = _make("likelihood", spec["likelihood"], data)
    decoder = _make("decoder", spec["decoder"], data, latent_dim, likelihood.num_params)
    if getattr(model_cls, "uses_posterior", True):
        posterior = _make("posterior", spec["posterior"], latent_dim)
        prior = _make("prior", spec["prior"], latent_dim)
        encoder_out = posterior.num_params * latent_dim
    else:
        posterior = prior = None
        encoder_out = latent_dim
    encoder = _make("encoder", spec["encoder"], data, encoder_out)
    try:
        model = model_cls(
            data=data,
            latent_dim=latent_dim,
            encoder=encoder,
            decoder=decoder,
            likelihood=likelihood,
            posterior=posterior,
            prior=prior,
            **spec["objective"],
        )
    except TypeError as exc:
        raise SpecError(
            f"model {spec['model']!r}: bad objective {spec['objective']}: {exc}"
        ) from None
    model.spec = copy.deepcopy(spec)
    return model


def parts_used(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For each part of a spec: registry kind, name and the package that provided it."""
    used = {"model": ("models", spec["model"])}
    used.update({f: (k, spec[f]["name"]) for f, k in PART_KINDS.items()})
    out = {}
    for field, (kind, name) in used.items():
        entry = registry.REGISTRIES[kind].entry(name)
        out[field] = {
            "kind": kind,
            "name": name,
            "provider": entry.provider,
            "version": entry.provider_version,
        }
    return out
