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

An optional ``"condition"`` field (a list of column encodings, see :mod:`genlatent.conditions`)
makes a conditional model: its width ``C`` is passed to the encoder and the decoder (and a
prior with ``takes_condition``) as ``condition_dim=C`` (never recorded among their params:
the field itself records it). Specs without the field, every one saved before conditions
existed included, are unconditioned.

Missing parts get defaults chosen from the data kind (and, given a summary of the data's
values, the likelihood from the values: see :mod:`genlatent.data.values`).

The spec a model records (``model.spec``, saved as ``spec.json``) is *resolved* (format 2): every
part's constructor parameters with defaults applied and automatic choices made concrete
(:meth:`genlatent.parts.Part.resolved_params`), and every objective parameter of the model's
constructor. A saved model is rebuilt from those values, never from today's defaults; format-1
files (which held only what the user typed) are resolved against the frozen format-1 defaults
in :mod:`genlatent.spec_v1`.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
from typing import TYPE_CHECKING, Any

from . import registry
from .dataspec import DataSpec
from .errors import DataError, GenlatentError, SpecError

if TYPE_CHECKING:
    from .data.values import ValueSummary
    from .models.base import LatentModel

SPEC_VERSION = 2
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
_KNOWN_FIELDS = {
    "genlatent_spec", "model", "latent_dim", "data", "objective", "condition", *PART_KINDS
}


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


def spec_version(spec: dict[str, Any]) -> int:
    """The spec format a spec says it is in. A spec without ``genlatent_spec`` is one a user
    wrote now (every saved spec carries the tag), so it is in the current format."""
    version = spec.get("genlatent_spec", SPEC_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SpecError(f"spec field 'genlatent_spec' must be a format number, got {version!r}")
    if version > SPEC_VERSION:
        raise SpecError(
            f"spec format {version} was written by a newer genlatent (this one reads formats "
            f"1 to {SPEC_VERSION}); upgrade genlatent"
        )
    return version


def default_likelihood(data: DataSpec, values: ValueSummary | None = None) -> str:
    """The likelihood a spec without one gets: by data kind, and for real-valued data by the
    values when they are known (Bernoulli only for values in [0, 1], else Gaussian)."""
    name = DEFAULT_LIKELIHOOD[data.kind]
    if values is not None and name == "bernoulli" and not values.unit_interval:
        return "gaussian"
    return name


def normalize_spec(spec: dict[str, Any], *, values: Any = None) -> dict[str, Any]:
    """Fill default part names and check the spec's form (not yet whether the parts exist).

    Part parameters are left as given; :func:`build` resolves them (``model.spec``). A
    format-1 spec gets the format-1 defaults spelled out here. ``values``: a
    :class:`~genlatent.data.values.ValueSummary` (or a dataset to summarise) that picks the
    default likelihood.
    """
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
    if spec_version(spec) == 1:
        from .spec_v1 import upgrade

        spec = upgrade(spec)
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
    }
    if "likelihood" not in spec:
        defaults["likelihood"] = default_likelihood(data, _summary(values))
    for field in PART_KINDS:
        out[field] = _normalize_part(field, spec.get(field, defaults.get(field)))
    objective = spec.get("objective") or {}
    if not isinstance(objective, dict):
        raise SpecError(f"spec field 'objective' must be a mapping, got {objective!r}")
    out["objective"] = dict(objective)
    if spec.get("condition"):
        from .conditions import ConditionEncoding

        out["condition"] = ConditionEncoding.from_spec(spec["condition"]).to_spec()
    try:
        json.dumps(out)
    except TypeError as exc:
        raise SpecError(f"the spec must be JSON-serialisable: {exc}") from None
    return out


def _summary(values: Any) -> ValueSummary | None:
    if values is None:
        return None
    from .data.values import ValueSummary, summarize_values

    return values if isinstance(values, ValueSummary) else summarize_values(values)


# --------------------------------------------------------------------------- parameters


def _keyword_names(sig: inspect.Signature, n_positional: int) -> tuple[list[str], bool]:
    """The parameters a spec may set (after the ``n_positional`` structural arguments) and
    whether the constructor takes any keyword (``**kwargs``)."""
    names, any_keyword = [], False
    for i, p in enumerate(sig.parameters.values()):
        if p.kind is p.VAR_KEYWORD:
            any_keyword = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and i >= n_positional:
            names.append(p.name)
    return names, any_keyword


def _unknown_parameter(what: str, name: str, accepted: list[str]) -> str:
    """``prior 'mixture' has no parameter 'componets'; did you mean 'components'? ...``."""
    close = difflib.get_close_matches(name, accepted, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    shown = ", ".join(sorted(accepted)) or "none"
    return f"{what} has no parameter {name!r}{hint} Accepted: {shown}"


def _plain(value: Any, where: str) -> Any:
    """A JSON value (tuples become lists); anything else cannot be recorded in a spec."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    raise SpecError(f"{where} = {value!r} cannot be recorded in a model spec (JSON values only)")


def bind_params(
    what: str,
    factory: Any,
    args: tuple[Any, ...] = (),
    params: dict[str, Any] | None = None,
    *,
    given: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``params`` checked against ``factory``'s signature, with its defaults applied.

    ``args`` (positional) and ``given`` (keywords) are the structural arguments the builder
    passes (data, sizes, parts); they are bound but not returned. An unknown name fails with
    a "did you mean" and the accepted names.
    """
    params = dict(params or {})
    given = dict(given or {})
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # no introspectable signature: pass through as given
        return params
    accepted, any_keyword = _keyword_names(sig, len(args))
    inherited: dict[str, Any] = {}
    if any_keyword and isinstance(factory, type):
        inherited, any_keyword = _inherited_defaults(factory, len(args))
        accepted += [name for name in inherited if name not in accepted]
    accepted = [name for name in accepted if name not in given]
    for name in params:
        if name in given:
            raise SpecError(f"{what}: {name!r} is set by the spec itself, not as a parameter")
        if name not in accepted and not any_keyword:
            raise SpecError(_unknown_parameter(what, name, accepted))
    try:
        bound = sig.bind(*args, **given, **params)
    except TypeError as exc:
        raise SpecError(f"{what}: {exc}") from None
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if name in accepted:
            out[name] = value
        elif sig.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            out.update({k: v for k, v in value.items() if k not in given})
    for name, default in inherited.items():  # defaults of a base class behind **kwargs
        if name not in given:
            out.setdefault(name, default)
    return {k: _plain(v, f"{what}: parameter {k!r}") for k, v in out.items()}


def _inherited_defaults(cls: type, n_positional: int) -> tuple[dict[str, Any], bool]:
    """Keyword defaults of the base classes a ``**kwargs`` constructor passes its options on
    to (``class MyVAE(VAE): def __init__(self, *, free_bits=0.0, **kw)``), and whether the
    chain still ends in ``**kwargs``."""
    defaults: dict[str, Any] = {}
    for base in cls.__mro__[1:]:
        init = base.__dict__.get("__init__")
        if init is None:
            continue
        if base is object:
            return defaults, False
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            return defaults, True
        params = list(sig.parameters.values())[1 + n_positional :]  # after self and the args
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty:
                defaults.setdefault(p.name, p.default)
            elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                defaults.setdefault(p.name, inspect.Parameter.empty)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return {k: v for k, v in defaults.items() if v is not inspect.Parameter.empty}, False
    return {k: v for k, v in defaults.items() if v is not inspect.Parameter.empty}, True


def _plain_params(what: str, resolved: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(v, f"{what}: resolved parameter {k!r}") for k, v in resolved.items()}


def _resolved(what: str, obj: Any, bound: dict[str, Any]) -> dict[str, Any]:
    method = getattr(obj, "resolved_params", None)
    return _plain_params(what, method() if callable(method) else bound)


def _accepts(factory: Any, name: str, by_name: bool = False) -> bool:
    """Whether ``factory`` takes the keyword ``name`` (by name, or through ``**kwargs``
    unless ``by_name``)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return not by_name
    return any(p.name == name or (p.kind is p.VAR_KEYWORD and not by_name) for p in params)


def _make(
    field: str, entry: dict[str, Any], *args: Any, given: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """The part and its resolved entry ``{"name": ..., "params": {...}}``; ``given`` are
    structural keywords (``condition_dim``) passed but not recorded among its params."""
    cls = registry.get_part(PART_KINDS[field], entry["name"])
    what = f"{field} {entry['name']!r}"
    # a zero (unconditioned) goes only to constructors that name it: plugin parts written
    # before conditions existed are built exactly as before
    given = {k: v for k, v in (given or {}).items() if v or _accepts(cls, k, by_name=True)}
    for name in given:
        if not _accepts(cls, name):
            raise SpecError(
                f"{what} cannot be conditioned: its constructor takes no {name!r} "
                f"(see the {field} contract in genlatent.parts)"
            )
    bound = bind_params(what, cls, args, entry["params"], given=given)
    try:
        obj = cls(*args, **given, **bound)
    except GenlatentError:
        raise
    except TypeError as exc:
        raise SpecError(f"{what}: bad parameters {entry['params']}: {exc}") from None
    except ValueError as exc:
        raise SpecError(f"{what}: {exc}") from None
    try:
        obj.bound_params = dict(bound)
    except (AttributeError, TypeError):  # a part that refuses attributes keeps its bound params
        pass
    return obj, {"name": entry["name"], "params": _resolved(what, obj, bound)}


def _check_kinds(field: str, name: str, obj: Any, data: DataSpec) -> None:
    kinds = getattr(obj, "kinds", None)
    if kinds and data.kind not in kinds:
        raise SpecError(
            f"{field} {name!r} does not fit {data.kind} data; it supports "
            f"{', '.join(sorted(kinds))}"
        )


def check_likelihood_values(name: str, data: DataSpec, values: ValueSummary) -> None:
    """Refuse likelihood ``name`` when the values leave its declared ``support``; the one-line
    error names the data source, the range found and the likelihoods that fit."""
    from .data.values import describe_support, fits

    support = getattr(registry.get_part("likelihoods", name), "support", None)
    if support is None or fits(support, values):
        return
    fitting = []
    for other in registry.likelihoods.names():
        cls = registry.likelihoods.get(other)
        kinds = getattr(cls, "kinds", None)
        other_support = getattr(cls, "support", None)
        if other_support is None or (kinds and data.kind not in kinds):
            continue
        if fits(other_support, values):
            fitting.append(other)
    raise DataError(
        f"{values.source}: {values.describe()}, outside the support of likelihood {name!r} "
        f"({describe_support(support)}); likelihoods that fit {data.kind} data like this: "
        f"{', '.join(fitting) or 'none'}"
    )


# --------------------------------------------------------------------------- build


def build(
    spec: dict[str, Any], *, seed: int | None = None, values: Any = None
) -> LatentModel:
    """Make a model, with fresh weights, from a spec (see the module docstring).

    With ``seed`` the weights are drawn from a torch generator seeded with it (inside
    ``torch.random.fork_rng``, so the caller's RNG state is untouched): the same spec and
    seed give bit-identical weights on the same machine. Without it they come from the
    global RNG, as ``torch.nn`` layers do.

    ``values``: a :class:`~genlatent.data.values.ValueSummary` of the training data (or the
    dataset itself, summarised in one streaming pass). A spec without a likelihood then gets
    one that fits the values, and a named likelihood whose support the values leave is
    refused before any weight is made.

    The model's ``spec`` attribute is the resolved spec (format 2): what ``model.save``
    records and what rebuilds exactly this architecture.
    """
    values = _summary(values)
    if seed is None:
        return _build(spec, values)
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return _build(spec, values)


def resolve_spec(spec: dict[str, Any], *, values: Any = None) -> dict[str, Any]:
    """The resolved spec ``build(spec).spec`` would record (builds the model once)."""
    return build(spec, seed=0, values=values).spec


def _build(spec: dict[str, Any], values: ValueSummary | None) -> LatentModel:
    spec = normalize_spec(spec, values=values)
    data = DataSpec.from_dict(spec["data"])
    model_cls = registry.get_part("models", spec["model"])
    latent_dim = spec["latent_dim"]
    for field in ("encoder", "decoder", "likelihood"):
        cls = registry.get_part(PART_KINDS[field], spec[field]["name"])
        _check_kinds(field, spec[field]["name"], cls, data)
    if values is not None:
        check_likelihood_values(spec["likelihood"]["name"], data, values)
    resolved = {k: spec[k] for k in ("genlatent_spec", "model", "latent_dim", "data")}
    from .conditions import ConditionEncoding

    conditions = ConditionEncoding.from_spec(spec.get("condition"))
    if conditions:
        resolved["condition"] = conditions.to_spec()
    conditioned = {"condition_dim": conditions.dim}
    likelihood, resolved["likelihood"] = _make("likelihood", spec["likelihood"], data)
    decoder, resolved["decoder"] = _make(
        "decoder", spec["decoder"], data, latent_dim, likelihood.num_params, given=conditioned
    )
    if getattr(model_cls, "uses_posterior", True):
        posterior, resolved["posterior"] = _make("posterior", spec["posterior"], latent_dim)
        # a prior p(z | c) gets condition_dim as networks do (0: it refuses the model)
        takes = getattr(registry.get_part("priors", spec["prior"]["name"]), "takes_condition", 0)
        prior, resolved["prior"] = _make(
            "prior", spec["prior"], latent_dim, given=conditioned if takes else None
        )
        if takes and not conditions:  # a plugin prior p(z | c) that did not refuse itself
            raise SpecError(
                f"prior {spec['prior']['name']!r} is p(z | c) and needs a conditional model: "
                "train with --condition COLUMN"
            )
        if conditions and getattr(prior, "needs_encoder", False):
            # its pseudo-inputs would need conditions of their own: not defined yet
            raise SpecError(
                f"prior {spec['prior']['name']!r} is made from the encoder and cannot be used "
                f"with conditions ({', '.join(conditions.names)}); use another prior"
            )
        encoder_out = posterior.num_params * latent_dim
    else:  # recorded as named, unused
        posterior = prior = None
        resolved["posterior"], resolved["prior"] = spec["posterior"], spec["prior"]
        encoder_out = latent_dim
    encoder, resolved["encoder"] = _make(
        "encoder", spec["encoder"], data, encoder_out, given=conditioned
    )
    structure = {
        "data": data,
        "latent_dim": latent_dim,
        "encoder": encoder,
        "decoder": decoder,
        "likelihood": likelihood,
        "posterior": posterior,
        "prior": prior,
    }
    what = f"model {spec['model']!r} objective"
    objective = bind_params(what, model_cls, (), spec["objective"], given=structure)
    try:
        model = model_cls(**structure, **objective)
    except GenlatentError:
        raise
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{what}: bad values {spec['objective']}: {exc}") from None
    if getattr(prior, "needs_encoder", False):  # resolved in Prior.attach, by the model
        resolved["prior"] = {
            "name": resolved["prior"]["name"],
            "params": _resolved(f"prior {resolved['prior']['name']!r}", prior, {}),
        }
    method = getattr(model, "resolved_objective", None)  # models with automatic choices
    resolved["objective"] = _plain_params(what, method() if callable(method) else objective)
    resolved = {field: resolved[field] for field in spec}  # the spec's own field order
    model.spec = copy.deepcopy(resolved)
    model.conditions = conditions
    return model


def with_legacy_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """A saved spec with the parameters it predates filled from each part's (and the model's)
    ``legacy_defaults``: the values that reproduce models saved before those parameters
    existed. Parts that cannot be found are left for :func:`build` to report."""
    out = copy.deepcopy(spec)
    for field, kind in [*PART_KINDS.items(), ("objective", "models")]:
        entry = out.get(field)
        if field == "objective":
            name, params = out.get("model", "vae"), out.setdefault("objective", {})
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            name, params = entry["name"], entry.setdefault("params", {})
        else:
            continue
        if not isinstance(params, dict):
            continue
        try:
            legacy = getattr(registry.get_part(kind, name), "legacy_defaults", None) or {}
        except GenlatentError:
            continue
        for key, value in legacy.items():
            params.setdefault(key, copy.deepcopy(value))
    return out


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
