"""Spec format 1, frozen: the defaults genlatent 0.1.0 applied to specs that did not spell them.

Format-1 model files (``"genlatent_spec": 1``) recorded only the parameters the user typed.
They are rebuilt against this record of the defaults they were saved under, never against
today's defaults, so a later change of a default (an activation, Gaussian ``sigma``, the CNN's
``upsample``) cannot change what an old model computes. Do not edit these values: they
describe files that already exist. Parts not listed here (plugins) had no recorded defaults;
they are bound to the plugin's current signature. A parameter a part gains later is not listed
here either: the part declares the value that reproduces older models in its
``legacy_defaults`` (see :class:`genlatent.parts.Part`), which serves format-1 and format-2
files alike.
"""

from __future__ import annotations

import copy
from typing import Any

_MLP = {"hidden": [400], "activation": "relu", "norm": None, "dropout": 0.0}
_CNN = {
    "channels": [32, 64],
    "kernel": 3,
    "stride": 2,
    "padding_mode": None,
    "padding": None,
    "norm": None,
    "activation": "relu",
    "hidden": [],
    "dropout": 0.0,
}
_GRU = {"embedding_dim": 64, "hidden_size": 256, "num_layers": 1, "dropout": 0.0}

#: (registry kind, name) -> every parameter's format-1 default.
DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("encoders", "mlp"): {**_MLP, "log1p": None},
    ("decoders", "mlp"): dict(_MLP),
    ("encoders", "cnn"): dict(_CNN),
    ("decoders", "cnn"): {**_CNN, "upsample": None},
    ("encoders", "gru"): {**_GRU, "bidirectional": False},
    ("decoders", "gru"): {**_GRU, "condition": "both", "word_dropout": 0.0},
    ("posteriors", "normal"): {"min_scale": 1e-4},
    ("posteriors", "laplace"): {"min_scale": 1e-4},
    ("priors", "standard_normal"): {},
    ("priors", "laplace"): {"scale": 1.0, "learn_scale": False},
    ("priors", "mixture"): {"components": 10, "spread": 2.0, "scale": 1.0, "learn_weights": True},
    ("likelihoods", "bernoulli"): {},
    ("likelihoods", "gaussian"): {"variance": "fixed", "sigma": 1.0, "min_sigma": 1e-3},
    ("likelihoods", "categorical"): {},
    ("likelihoods", "poisson"): {"link": "exp"},
    ("likelihoods", "negative_binomial"): {"link": "exp", "theta": 1.0},
}

#: model name -> the objective's format-1 defaults.
OBJECTIVE_DEFAULTS: dict[str, dict[str, Any]] = {
    "vae": {"beta": 1.0, "kl_warmup_steps": 0, "kl_samples": 1},
    "ae": {},
}

_KINDS = {
    "encoder": "encoders",
    "decoder": "decoders",
    "posterior": "posteriors",
    "prior": "priors",
    "likelihood": "likelihoods",
}


def _auto(field: str, name: str, params: dict[str, Any], data_kind: str) -> None:
    """Fix the choices format 1 left to build time, by the format-1 rules."""
    if name == "mlp" and field == "encoder" and params.get("log1p") is None:
        params["log1p"] = data_kind == "counts"
    if name == "cnn":
        mode = params.get("padding_mode")
        if mode is None:
            mode = params.get("padding") or "zeros"
        params["padding_mode"], params["padding"] = mode, None
        if field == "decoder" and params.get("upsample") is None:
            params["upsample"] = "transpose" if mode == "zeros" else "nearest"


def upgrade(spec: dict[str, Any]) -> dict[str, Any]:
    """A format-1 spec with every built-in part's and the objective's parameters spelled out
    (format-1 defaults, then what the file recorded). The result is built like any spec."""
    out = copy.deepcopy(spec)
    data_kind = (out.get("data") or {}).get("kind")
    for field, kind in _KINDS.items():
        entry = out.get(field)
        if isinstance(entry, str):
            entry = {"name": entry, "params": {}}
        if not isinstance(entry, dict) or (kind, entry.get("name")) not in DEFAULTS:
            continue
        params = {**copy.deepcopy(DEFAULTS[kind, entry["name"]]), **(entry.get("params") or {})}
        _auto(field, entry["name"], params, data_kind)
        out[field] = {"name": entry["name"], "params": params}
    model = out.get("model", "vae")
    if model in OBJECTIVE_DEFAULTS:
        out["objective"] = {**OBJECTIVE_DEFAULTS[model], **(out.get("objective") or {})}
    return out
